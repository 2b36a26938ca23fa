"""Image classification: cross-entropy loss, accuracy, best validation accuracy."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MaxMetric
from torchmetrics.classification import MulticlassAccuracy

from linzoo.tasks.base import Task
from linzoo.tasks.optim import OptimizerFactory, SchedulerFactory


class Classifier(Task):
    """Trains ``net: [B, C, H, W] -> logits [B, num_classes]`` with cross-entropy.

    Logs ``{train,val,test}/loss``, ``{train,val,test}/acc`` and ``val/acc_best``.
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
        self.train_acc = MulticlassAccuracy(num_classes, average="micro")
        self.val_acc = MulticlassAccuracy(num_classes, average="micro")
        self.test_acc = MulticlassAccuracy(num_classes, average="micro")
        self.val_acc_best = MaxMetric()

    def step(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> torch.Tensor:
        images, labels = batch
        logits = self(images)
        loss = F.cross_entropy(logits, labels, label_smoothing=self.label_smoothing)
        accuracy: MulticlassAccuracy = getattr(self, f"{stage}_acc")
        accuracy.update(logits.detach().argmax(dim=-1), labels)
        self.log_epoch_means(stage, {"loss": loss.detach(), "acc": accuracy}, batch_size=labels.shape[0])
        return loss

    def on_train_start(self) -> None:
        # The sanity-check validation must not count towards the best accuracy.
        self.val_acc_best.reset()

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            return
        self.val_acc_best.update(self.val_acc.compute())
        self.log("val/acc_best", self.val_acc_best.compute(), prog_bar=True)
