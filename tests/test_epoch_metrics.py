"""The epoch metrics are logged once per epoch and equal the exact epoch means."""

from __future__ import annotations

import warnings

import lightning as L
import pytest
import torch
import torch.nn.functional as F

from linzoo.data import MNISTDataModule
from linzoo.models import create_model
from linzoo.tasks import Classifier


def test_val_metrics_are_the_exact_means_over_uneven_batches(fake_mnist_root, tmp_path) -> None:
    # 200 validation images in batches of 64: 64, 64, 64, 8 -> the means must weight by batch size.
    datamodule = MNISTDataModule(
        root=fake_mnist_root, download=False, val_size=200, batch_size=64, eval_batch_size=64, seed=0
    )
    torch.manual_seed(0)
    task = Classifier(
        net=create_model("mlp", hidden_dims=(16,), dropout=0.0),
        optimizer=lambda params: torch.optim.SGD(params, lr=0.05),
    )
    trainer = L.Trainer(
        max_epochs=1,
        limit_train_batches=3,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(task, datamodule=datamodule)
    task.eval()
    with torch.no_grad():
        logits = task(datamodule.val_set.images.float() / 255)
    labels = datamodule.val_set.labels
    metrics = trainer.callback_metrics
    assert float(metrics["val/acc"]) == pytest.approx(float((logits.argmax(-1) == labels).float().mean()), abs=1e-6)
    assert float(metrics["val/loss"]) == pytest.approx(float(F.cross_entropy(logits, labels)), rel=1e-5)
    assert float(metrics["val/acc_best"]) == pytest.approx(float(metrics["val/acc"]))
    assert {"train/loss", "train/acc"} <= set(metrics)
    assert not task._epoch_sums  # every stage's sums were logged and cleared
