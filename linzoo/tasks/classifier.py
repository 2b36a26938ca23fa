"""Image classification: cross-entropy loss, accuracy, best validation accuracy."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MaxMetric
from torchmetrics.classification import MulticlassAccuracy

from linzoo.tasks.base import Task
from linzoo.tasks.optim import OptimizerFactory, SchedulerFactory


class Classifier(Task):
    """Trains ``net: [B, C, H, W] -> logits [B, num_classes]`` with cross-entropy.

    Logs ``{train,val,test}/loss``, ``{train,val,test}/acc`` (micro accuracy: correct
    predictions over all examples of the epoch) and ``val/acc_best``.
    """

    main_metric = "val/acc"
    main_metric_mode = "max"

    def __init__(
        self,
        *,
        net: nn.Module,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        compile: bool = False,
        num_classes: int = 10,
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__(net=net, optimizer=optimizer, scheduler=scheduler, compile=compile)
        self.num_classes = num_classes
        self.label_smoothing = label_smoothing
        self.val_acc = MulticlassAccuracy(num_classes, average="micro")
        self.test_acc = MulticlassAccuracy(num_classes, average="micro")
        self.val_acc_best = MaxMetric()

    def step(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> torch.Tensor:
        return self.loss_and_predictions(batch, stage)[0]

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> dict[str, torch.Tensor]:
        """Logs like every stage; returns ``{"preds": int64 [B]}`` for callbacks (confusion matrix)."""
        loss, predictions = self.loss_and_predictions(batch, "test")
        return {"loss": loss, "preds": predictions}

    def predict_step(self, batch: Any, batch_idx: int = 0) -> torch.Tensor:
        """``trainer.predict``: images [B, C, H, W] (or ``(images, labels)``) -> class probabilities [B, num_classes]."""
        return self(self.predict_images(batch)).float().softmax(dim=-1)

    def loss_and_predictions(
        self, batch: tuple[torch.Tensor, torch.Tensor], stage: str
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(cross-entropy loss, predicted labels [B]) of one batch; logs ``{stage}/loss`` and ``{stage}/acc``."""
        images, labels = batch
        logits = self(images)
        loss = F.cross_entropy(logits, labels, label_smoothing=self.label_smoothing)
        predictions = logits.detach().argmax(dim=-1)
        values = {"loss": loss.detach()}
        if stage == "train":
            # A running tensor sum: its batch-size-weighted epoch mean is the exact micro
            # accuracy, without a torchmetrics update (and its input checks) every
            # training step, which costs measurable time (docs/benchmarks.md).
            values["acc"] = (predictions == labels).float().mean()
        self.log_epoch_means(stage, values, batch_size=labels.shape[0])
        if stage != "train":  # validation and test accuracy through torchmetrics
            accuracy = self.val_acc if stage == "val" else self.test_acc
            accuracy.update(predictions, labels)
            self.log(f"{stage}/acc", accuracy, on_step=False, on_epoch=True, prog_bar=True)
        return loss, predictions

    def on_train_start(self) -> None:
        # The sanity-check validation must not count towards the best accuracy.
        self.val_acc_best.reset()

    def on_validation_epoch_end(self) -> None:
        means = self.log_stage_means("val")
        if self.trainer.sanity_checking or not means:
            return
        self.val_acc_best.update(self.val_acc.compute())
        self.log("val/acc_best", self.val_acc_best.compute(), prog_bar=True)
