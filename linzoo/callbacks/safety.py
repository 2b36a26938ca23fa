"""linzoo's run safety as one callback: stop on divergence, save on SIGTERM/SIGINT, exact resume."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from linzoo.callbacks.divergence import StopOnDivergence, check_optimizer_state
from linzoo.callbacks.interruption import SaveOnInterrupt
from linzoo.callbacks.rng_state import RestoreRNGStates

__all__ = ["RunSafety"]


class RunSafety(Callback):
    """:class:`StopOnDivergence`, :class:`SaveOnInterrupt` and :class:`RestoreRNGStates` in one,
    and, on resume, :func:`check_optimizer_state` of the restored optimizer before training starts.

    Lightning calls every hook of every callback at every step, whether the callback uses
    it or not (about 40 us per callback and step on a 2-core CPU: docs/benchmarks.md), so the
    three parts, each in its own module, are reached through this one callback, which
    forwards each hook to the parts that use it (as ``Pictures`` does for the drawers).
    ``linzoo.run.train`` adds it to every training run.
    """

    def __init__(self) -> None:
        self.divergence = StopOnDivergence()
        self.interruption = SaveOnInterrupt()
        self.rng_states = RestoreRNGStates()

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.ckpt_path:  # resumed: the optimizer state just restored must be one to train from
            check_optimizer_state(trainer.optimizers, ckpt_path=str(trainer.ckpt_path))
        self.divergence.on_train_start(trainer, pl_module)
        self.interruption.on_train_start(trainer, pl_module)
        self.rng_states.on_train_start(trainer, pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.interruption.on_train_end(trainer, pl_module)

    def on_before_backward(self, trainer: L.Trainer, pl_module: L.LightningModule, loss: torch.Tensor) -> None:
        self.divergence.on_before_backward(trainer, pl_module, loss)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.divergence.on_train_epoch_end(trainer, pl_module)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.divergence.on_validation_end(trainer, pl_module)

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self.interruption.on_exception(trainer, pl_module, exception)

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        self.rng_states.on_save_checkpoint(trainer, pl_module, checkpoint)

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        self.rng_states.on_load_checkpoint(trainer, pl_module, checkpoint)
