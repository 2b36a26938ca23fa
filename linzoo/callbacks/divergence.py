"""Stop training at the first non-finite loss, before NaN weights reach a checkpoint."""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

__all__ = ["DivergenceError", "StopOnDivergence"]


class DivergenceError(RuntimeError):
    """The training loss became NaN or infinite; the message says what to change."""


class StopOnDivergence(Callback):
    """Raise :class:`DivergenceError` when a training loss is not finite.

    Every loss is checked before its backward pass, as a flag kept on the device (no host
    sync per step); the flag is read every step on CPU and every ``check_every_n_steps``
    steps on an accelerator, and always at the end of each training and validation epoch,
    where the weights are checked too. Lightning runs checkpoint callbacks after this one,
    so an epoch that diverged is never saved: the best and last checkpoints keep the last
    good weights. Under data parallelism the decision is taken over all ranks.
    """

    def __init__(self, *, check_every_n_steps: int = 50) -> None:
        self.check_every_n_steps = check_every_n_steps
        self._bad: torch.Tensor | None = None  # bool scalar on the device: a loss was not finite
        self.diverged_at_step: int | None = None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._bad = None

    def on_before_backward(self, trainer: L.Trainer, pl_module: L.LightningModule, loss: torch.Tensor) -> None:
        if trainer.world_size == 1 and loss.device.type == "cpu":
            # One process on the CPU: reading the loss costs no device sync and no collective,
            # and is a few tensor ops cheaper per step than the flag below (docs/benchmarks.md).
            if not math.isfinite(loss.detach().sum().item()):
                self._bad = torch.ones((), dtype=torch.bool)
                self.check(trainer, pl_module, what="the training loss")
            return
        bad = ~torch.isfinite(loss.detach()).all()
        self._bad = bad if self._bad is None else self._bad | bad
        if pl_module.device.type == "cpu" or trainer.global_step % self.check_every_n_steps == 0:
            self.check(trainer, pl_module, what="the training loss")

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.check(trainer, pl_module, what="the training loss", weights=True)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking and trainer.state.fn == "fit":
            self.check(trainer, pl_module, what="the training loss", weights=True)

    def check(self, trainer: L.Trainer, pl_module: L.LightningModule, *, what: str, weights: bool = False) -> None:
        """Raise :class:`DivergenceError` when a loss so far (or, with ``weights``, a weight) is not finite."""
        bad = self._bad if self._bad is not None else torch.zeros((), dtype=torch.bool, device=pl_module.device)
        if weights:
            finite = [p.detach().isfinite().all() for p in pl_module.parameters()]
            bad = bad | ~torch.stack(finite).all() if finite else bad
        if not trainer.strategy.reduce_boolean_decision(bool(bad), all=False):
            return
        self.diverged_at_step = trainer.global_step
        raise DivergenceError(divergence_message(trainer, what=what))


def divergence_message(trainer: L.Trainer, *, what: str) -> str:
    """What happened and what to change, in one paragraph."""
    lr = _learning_rate(trainer)
    lr_text = f"{lr:g}" if lr is not None else "?"
    best = getattr(trainer.checkpoint_callback, "best_model_path", "") or "none saved yet"
    return (
        f"Training diverged: {what} became NaN or infinite by step {trainer.global_step} "
        f"(epoch {trainer.current_epoch}, learning rate {lr_text}). Training stopped; the checkpoints keep "
        f"the last good weights (best: {best}). Fix: lower optimizer.lr (e.g. to a tenth), clip gradients "
        "(trainer.gradient_clip_val=1.0), train in full precision (trainer.precision=32-true) if you used "
        "16-bit, or use a warm-up schedule (scheduler=onecycle); check the data for NaN/inf."
    )


def _learning_rate(trainer: L.Trainer) -> float | None:
    optimizers: list[Any] = getattr(trainer, "optimizers", [])
    if not optimizers or not optimizers[0].param_groups:
        return None
    return float(optimizers[0].param_groups[0]["lr"])
