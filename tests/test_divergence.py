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
    """A NaN loss stops training with a message naming the fixes (optimizer.lr, gradient_clip_val) and the best checkpoint, keeps only finite checkpoints, and writes strict-JSON metrics.json with status diverged."""
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
    assert f"best: {metrics['best_checkpoint']})" in str(stopped.value)
    assert metrics["best_checkpoint"].startswith(str(tmp_path / "run" / "checkpoints"))
    assert metrics["monitor"]["best"] is not None


def test_the_divergence_message_names_only_this_runs_best_checkpoint(tmp_path) -> None:
    """A resumed run's checkpoint callback may carry the best path of the run it came from:
    the message names a best only when it is a file of this run's checkpoint folder."""
    from types import SimpleNamespace

    from linzoo.callbacks.divergence import divergence_message

    other, here = tmp_path / "other" / "checkpoints", tmp_path / "here" / "checkpoints"
    for folder in (other, here):
        folder.mkdir(parents=True)
        (folder / "epoch_000.ckpt").write_bytes(b"x")

    def message(best, dirpath) -> str:
        callback = SimpleNamespace(best_model_path=str(best), dirpath=str(dirpath))
        trainer = SimpleNamespace(checkpoint_callback=callback, optimizers=[], global_step=3, current_epoch=1)
        return divergence_message(trainer, what="the training loss")

    assert "best: none saved in this run yet" in message(other / "epoch_000.ckpt", here)
    assert str(other) not in message(other / "epoch_000.ckpt", here)
    assert f"best: {here / 'epoch_000.ckpt'})" in message(here / "epoch_000.ckpt", here)
    assert "best: none saved in this run yet" in message("", here)


def test_metrics_json_is_strict_json(tmp_path) -> None:
    path = write_metrics(tmp_path, {"test/loss": math.nan, "nested": {"x": math.inf, "y": [1.0, -math.inf]}, "ok": 0.5})
    assert strict_json(path.read_text()) == {"test/loss": None, "nested": {"x": None, "y": [1.0, None]}, "ok": 0.5}
    assert list(tmp_path.iterdir()) == [path]  # no temp file left
