"""Stop training at the first non-finite loss, before NaN weights reach a checkpoint."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from linzoo.common.errors import UserValueError

__all__ = ["DivergenceError", "StopOnDivergence", "check_optimizer_state"]


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
    best = _this_runs_best(trainer) or "none saved in this run yet"
    return (
        f"Training diverged: {what} became NaN or infinite by step {trainer.global_step} "
        f"(epoch {trainer.current_epoch}, learning rate {lr_text}). Training stopped; the checkpoints keep "
        f"the last good weights (best: {best}). Fix: lower optimizer.lr (e.g. to a tenth), clip gradients "
        "(trainer.gradient_clip_val=1.0), train in full precision (trainer.precision=32-true) if you used "
        "16-bit, or use a warm-up schedule (scheduler=onecycle); check the data for NaN/inf."
    )


def _this_runs_best(trainer: L.Trainer) -> str:
    """The best checkpoint, when it is a file of this run's checkpoint folder ("" otherwise: a
    resumed run may carry the best path of the run it was resumed from)."""
    callback = trainer.checkpoint_callback
    best, folder = getattr(callback, "best_model_path", ""), getattr(callback, "dirpath", None)
    if not best or not folder or not Path(best).is_file():
        return ""
    return best if Path(best).resolve().parent == Path(folder).resolve() else ""


# Optimizer states that hold one value per parameter element (torch.optim's names).
ELEMENTWISE_STATES = frozenset(
    {"exp_avg", "exp_avg_sq", "max_exp_avg_sq", "momentum_buffer", "square_avg", "acc_delta", "sum", "grad_avg", "ax"}
)


def check_optimizer_state(optimizers: list[Any], *, ckpt_path: str) -> None:
    """Refuse (one line naming ``ckpt_path``) an optimizer state restored from a checkpoint that
    cannot be trained from: a non-finite value, or a per-element state whose shape is not its
    parameter's. Training from it would diverge (and be reported as a too-high learning rate)
    or fail inside ``optimizer.step``."""
    for number, optimizer in enumerate(optimizers):
        index = 0
        for group in optimizer.param_groups:
            for param in group["params"]:
                for name, value in optimizer.state.get(param, {}).items():
                    problem = _state_problem(name, value, param)
                    if problem:
                        raise UserValueError(
                            f"ckpt_path={ckpt_path} holds a corrupt optimizer state (optimizer {number}, "
                            f"parameter {index}, {name!r}: {problem}); resuming from it cannot train. Fix: "
                            "resume from another checkpoint of that run (e.g. its epoch_*.ckpt), or start a "
                            "new run without ckpt_path."
                        )
                index += 1


def _state_problem(name: str, value: Any, param: torch.Tensor) -> str:
    if not isinstance(value, torch.Tensor):
        return ""
    if name in ELEMENTWISE_STATES and value.shape != param.shape:
        return f"shape {tuple(value.shape)}, its parameter's is {tuple(param.shape)}"
    if value.is_floating_point() and not bool(value.detach().isfinite().all()):
        return "NaN or infinite values"
    return ""


def _learning_rate(trainer: L.Trainer) -> float | None:
    optimizers: list[Any] = getattr(trainer, "optimizers", [])
    if not optimizers or not optimizers[0].param_groups:
        return None
    return float(optimizers[0].param_groups[0]["lr"])
