"""A non-finite loss stops training with a clear error; metrics.json stays strict JSON."""

from __future__ import annotations

import json
import math

import pytest
import torch

from helpers import SHORT, TINY, data_overrides
from linzoo.callbacks.divergence import DivergenceError
from linzoo.run.run_dirs import write_metrics
from linzoo.run.train import train


def strict_json(text: str):
    """json.loads that refuses NaN, Infinity and -Infinity (Python's json accepts them by default)."""

    def refuse(constant: str):
        raise ValueError(f"not strict JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


def test_divergence_stops_with_a_fix_keeps_good_checkpoints_and_writes_strict_json(
    compose_train, fake_mnist_root, tmp_path
) -> None:
    # lr=1e6 with the warm-up-free cosine: finite through epoch 0, NaN early in epoch 1.
    cfg = compose_train(
        [
            "model=mlp",
            *TINY["mlp"],
            *data_overrides(fake_mnist_root),
            *SHORT,
            "trainer.max_epochs=3",
            "optimizer.lr=1e6",
        ],
        output_dir=tmp_path / "run",
    )
    with pytest.raises(DivergenceError, match=r"lower optimizer\.lr.*gradient_clip_val") as stopped:
        train(cfg)
    metrics = strict_json((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["status"] == "diverged" and "test/acc" not in metrics
    assert metrics["error"] == str(stopped.value)
    assert metrics["monitor"]["metric"] == "val/acc" and metrics["monitor"]["mode"] == "max"
    assert metrics["global_steps"] < 12  # stopped, not trained to the end
    for checkpoint in (tmp_path / "run" / "checkpoints").glob("*.ckpt"):
        state = torch.load(checkpoint, map_location="cpu", weights_only=False)["state_dict"]
        assert all(torch.isfinite(t).all() for t in state.values() if t.is_floating_point()), checkpoint.name
    assert metrics["best_checkpoint"].endswith(".ckpt")  # epoch 0 was still good: kept as the best
    assert metrics["monitor"]["best"] is not None


def test_metrics_json_is_strict_json(tmp_path) -> None:
    path = write_metrics(tmp_path, {"test/loss": math.nan, "nested": {"x": math.inf, "y": [1.0, -math.inf]}, "ok": 0.5})
    assert strict_json(path.read_text()) == {"test/loss": None, "nested": {"x": None, "y": [1.0, None]}, "ok": 0.5}
    assert list(tmp_path.iterdir()) == [path]  # no temp file left
