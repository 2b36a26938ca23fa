"""The one hand-written training loop every benchmark section measures linzoo against.

It is the loop one writes by hand in plain PyTorch: move the batch, forward (inside
``torch.autocast`` for bf16, as Lightning's bf16-mixed does), cross-entropy, backward,
optimizer step, schedule step. ``track=True`` also keeps the epoch's training loss and
accuracy as tensors (no host sync per step), the bookkeeping linzoo's Classifier does.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import nullcontext
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


class ReferenceLoop:
    """Trains ``net`` with ``optimizer`` (and ``scheduler``, stepped every batch) by hand.

    ``step(images, labels)`` is one training step; ``train_epoch(batches)`` runs a whole
    epoch; ``epoch_metrics()`` returns the tracked ``train/loss`` and ``train/acc``;
    ``evaluate(batches)`` returns loss and accuracy over ``batches`` (eval mode, no grad).
    """

    def __init__(
        self,
        net: nn.Module,
        optimizer: torch.optim.Optimizer,
        *,
        scheduler: Any = None,
        label_smoothing: float = 0.0,
        bf16: bool = False,
        track: bool = False,
    ) -> None:
        self.net = net
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.label_smoothing = label_smoothing
        self.bf16 = bf16
        self.track = track
        self.device = next(net.parameters()).device
        self.start_epoch()

    def _autocast(self) -> Any:
        return torch.autocast(self.device.type, dtype=torch.bfloat16) if self.bf16 else nullcontext()

    def start_epoch(self) -> None:
        """Training mode and fresh sums for the tracked metrics."""
        self.net.train()
        self._loss_sum = torch.zeros((), device=self.device)
        self._correct = torch.zeros((), dtype=torch.int64, device=self.device)
        self._seen = 0

    def step(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        """One training step on a batch: images [B, C, H, W], labels [B]."""
        images = images.to(self.device, non_blocking=True)
        labels = labels.to(self.device, non_blocking=True)
        with self._autocast():
            logits = self.net(images)
            loss = F.cross_entropy(logits, labels, label_smoothing=self.label_smoothing)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        if self.track:
            self._loss_sum += loss.detach() * len(labels)
            self._correct += (logits.detach().argmax(-1) == labels).sum()
            self._seen += len(labels)

    def train_epoch(self, batches: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> None:
        self.start_epoch()
        for images, labels in batches:
            self.step(images, labels)

    def epoch_metrics(self) -> dict[str, float]:
        """``train/loss`` and ``train/acc`` of the steps since ``start_epoch`` (needs ``track=True``)."""
        seen = max(self._seen, 1)
        return {"train/loss": float(self._loss_sum) / seen, "train/acc": float(self._correct) / seen}

    @torch.no_grad()
    def evaluate(self, batches: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> dict[str, float]:
        """Mean cross-entropy (no smoothing) and accuracy over ``batches``; the net returns to training mode."""
        self.net.eval()
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), dtype=torch.int64, device=self.device)
        seen = 0
        for images, labels in batches:
            images, labels = images.to(self.device), labels.to(self.device)
            with self._autocast():
                logits = self.net(images)
            loss_sum += F.cross_entropy(logits.float(), labels, reduction="sum")
            correct += (logits.argmax(-1) == labels).sum()
            seen += len(labels)
        self.net.train()
        return {"loss": float(loss_sum) / max(seen, 1), "acc": float(correct) / max(seen, 1)}
