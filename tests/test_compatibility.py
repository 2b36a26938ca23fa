"""Checkpoints written before issue 10 still evaluate to the same numbers and still resume.

tests/data/before_issue10/ holds checkpoints made by the earlier code (its README says how).
What could break them: the tasks' state_dict keys (evaluation), the callbacks' state keys
(Lightning restores a callback's state only under the same key: class name and monitor),
and the learning-rate schedule's state (resuming).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from helpers import SHORT, data_overrides, same_metric
from linzoo.run.evaluate import evaluate
from linzoo.run.train import train

BEFORE = Path(__file__).resolve().parent / "data" / "before_issue10"
EXPECTED = json.loads((BEFORE / "expected_test_metrics.json").read_text())


def read(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)


@pytest.mark.parametrize("model", sorted(EXPECTED))
def test_old_checkpoint_evaluates_to_the_same_metrics(compose_eval, fake_mnist_root, tmp_path, model: str) -> None:
    cfg = compose_eval([f"ckpt_path={BEFORE / f'{model}.ckpt'}", f"+data.root={fake_mnist_root}"], output_dir=tmp_path)
    metrics = evaluate(cfg)
    for name, value in EXPECTED[model].items():
        assert metrics[name] == same_metric(value), name


def test_old_checkpoint_resumes_with_its_callback_states_and_schedule(compose_train, fake_mnist_root, tmp_path) -> None:
    old = read(BEFORE / "mlp.ckpt")
    run = tmp_path / "resumed"
    overrides = ["model=mlp", "model.net.hidden_dims=[8]", *data_overrides(fake_mnist_root), *SHORT]
    overrides += ["scheduler.warmup_steps=3", "callbacks=early_stopping", "trainer.max_epochs=3"]
    metrics = train(compose_train([*overrides, f"ckpt_path={BEFORE / 'mlp.ckpt'}"], output_dir=run))
    assert metrics["global_steps"] == old["global_step"] + 4  # one more epoch of 4 batches
    new = read(run / "checkpoints" / "last.ckpt")
    # Same state keys: the old checkpoint's ModelCheckpoint and EarlyStopping states were restored.
    assert set(new["callbacks"]) == set(old["callbacks"])
    key = next(k for k in old["callbacks"] if k.startswith("ModelCheckpoint"))
    assert new["callbacks"][key]["best_model_score"] >= old["callbacks"][key]["best_model_score"]  # mode max
    assert metrics["monitor"]["metric"] == "val/acc" and metrics["monitor"]["mode"] == "max"
    # The schedule went on from step 8 of the old LambdaLR: cosine over 12 steps ends at lr 0.
    assert new["optimizer_states"][0]["param_groups"][0]["lr"] == pytest.approx(0.0, abs=1e-12)
    assert new["lr_schedulers"][0]["last_epoch"] == 12
