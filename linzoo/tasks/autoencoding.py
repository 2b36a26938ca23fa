"""Reconstruction of images by an autoencoder, optionally denoising."""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from linzoo.common.errors import UserValueError
from linzoo.tasks.base import Task
from linzoo.tasks.optim import OptimizerFactory, SchedulerFactory


class Autoencoding(Task):
    """Trains ``net`` (with ``encode``/``decode_logits``) to reconstruct images in [0, 1].

    ``task(images)`` is ``net(images)``: reconstructions [B, C, H, W] in [0, 1].

    Loss per pixel: ``bce`` = binary cross-entropy on the decoder logits (AMP-safe), or
    ``mse`` on ``sigmoid(logits)``. Also logs, per image (summed over pixels, averaged
    over images), ``sse_per_image`` = sum (x_hat - x)^2 and ``bce_per_image`` in nats.

    ``noise_std > 0`` trains a denoising autoencoder: Gaussian noise is added to the
    input only (never to the target), and only while training.
    """

    main_metric = "val/loss"
    main_metric_mode = "min"
    curve_metric = "val/sse_per_image"

    def __init__(
        self,
        *,
        net: nn.Module,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        compile: bool = False,
        loss: Literal["bce", "mse"] = "bce",
        noise_std: float = 0.0,
    ) -> None:
        super().__init__(net=net, optimizer=optimizer, scheduler=scheduler, compile=compile)
        if loss not in ("bce", "mse"):
            raise UserValueError(f"Unknown autoencoder loss {loss!r}; use model.loss=bce or model.loss=mse.")
        if noise_std < 0:
            raise UserValueError(f"noise_std must be >= 0, got {noise_std}.")
        self.loss_name = loss
        self.noise_std = noise_std

    def predict_step(self, batch: Any, batch_idx: int = 0) -> torch.Tensor:
        """``trainer.predict``: images [B, C, H, W] (or ``(images, labels)``) -> reconstructions, same shape, in [0, 1]."""
        return self(self.predict_images(batch))

    def step(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> torch.Tensor:
        images, _ = batch
        inputs = images
        if stage == "train" and self.noise_std > 0:
            inputs = images + self.noise_std * torch.randn_like(images)
        logits = self.net.decode_logits(self.net.encode(inputs)).float()
        reconstruction = torch.sigmoid(logits)
        bce_per_pixel = F.binary_cross_entropy_with_logits(logits, images, reduction="none")
        squared_error = (reconstruction - images).square()
        loss = bce_per_pixel.mean() if self.loss_name == "bce" else squared_error.mean()
        per_image = {
            "loss": loss.detach(),
            "sse_per_image": squared_error.detach().flatten(1).sum(1).mean(),
            "bce_per_image": bce_per_pixel.detach().flatten(1).sum(1).mean(),
        }
        self.log_epoch_means(stage, per_image, batch_size=images.shape[0])
        return loss
