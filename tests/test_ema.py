"""callbacks=ema: the checkpoints hold the averaged weights, and the test after training,
eval.py and load_task all use them (the raw ones are kept only for resuming)."""

from __future__ import annotations

import pytest
import torch

from helpers import SHORT, TINY, data_overrides, same_metric
from linzoo.callbacks import EMA
from linzoo.run.evaluate import evaluate
from linzoo.run.train import train
from linzoo.run.trainer import instantiate_all
from linzoo.tasks.loading import load_task


def test_callbacks_ema_adds_lightnings_weight_averaging_to_the_defaults(compose_train) -> None:
    cfg = compose_train(["callbacks=ema"])
    callbacks = instantiate_all(cfg.callbacks)
    assert sum(isinstance(callback, EMA) for callback in callbacks) == 1
    assert "model_checkpoint" in cfg.callbacks and "confusion_matrix" in cfg.callbacks.pictures


def test_ema_weights_differ_from_the_raw_ones_and_evaluation_uses_them(
    compose_train, compose_eval, fake_mnist_root, tmp_path
) -> None:
    cfg = compose_train(
        [
            "model=mlp",
            *TINY["mlp"],
            *data_overrides(fake_mnist_root),
            *SHORT,
            "callbacks=ema",
            "callbacks.ema.decay=0.9",
            "print_config=false",
        ]
    )
    trained = train(cfg)
    checkpoint = torch.load(trained["best_checkpoint"], weights_only=False)
    averaged, raw = checkpoint["state_dict"], checkpoint["current_model_state"]
    assert averaged.keys() == raw.keys()
    assert all(not torch.equal(averaged[name], raw[name]) for name in averaged if name.startswith("net."))

    task, _ = load_task(trained["best_checkpoint"])
    assert all(torch.equal(value, averaged[name]) for name, value in task.state_dict().items() if name in averaged)

    evaluated = evaluate(compose_eval([f"ckpt_path={trained['best_checkpoint']}"], output_dir=tmp_path / "eval"))
    raw_path = tmp_path / "raw.ckpt"
    torch.save({**checkpoint, "state_dict": raw}, raw_path)
    evaluated_raw = evaluate(compose_eval([f"ckpt_path={raw_path}"], output_dir=tmp_path / "eval_raw"))
    assert evaluated["test/loss"] == same_metric(trained["test/loss"])  # test after training: EMA
    assert evaluated_raw["test/loss"] != pytest.approx(evaluated["test/loss"], abs=1e-4)
