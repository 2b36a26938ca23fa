"""Optimizer and learning-rate schedule helpers shared by every task.

Configs pass optimizers and schedules as factories (Hydra ``_partial_: true``):

    optimizer(params) -> torch.optim.Optimizer
    scheduler(optimizer, *, total_steps) -> torch.optim.lr_scheduler.LRScheduler
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

OptimizerFactory = Callable[..., torch.optim.Optimizer]
SchedulerFactory = Callable[..., torch.optim.lr_scheduler.LRScheduler]


def weight_decay_groups(module: nn.Module) -> list[dict[str, Any]]:
    """Two parameter groups: >=2-D weights decay, biases/norms/1-D params do not.

    Embeddings and Linear/conv weights (>=2-D) take the optimizer's weight_decay; the
    second group sets ``weight_decay=0``. Shared (tied) parameters appear once. Frozen
    parameters (``requires_grad=False``, e.g. ``finetune.train_roles``) are in neither group,
    so the optimizer keeps no state for them.
    """
    decay, no_decay = [], []
    for parameter in module.parameters():
        if parameter.requires_grad:
            (decay if parameter.dim() >= 2 else no_decay).append(parameter)
    return [{"params": decay}, {"params": no_decay, "weight_decay": 0.0}]


class GroupCosine(torch.optim.lr_scheduler.CosineAnnealingLR):
    """Cosine decay of every group from its base lr b to ``min_lr_ratio * b`` over ``T_max`` steps:
    lr = b (r + (1 - r) (1 + cos(pi min(t, T_max) / T_max)) / 2), closed form, one eta_min per group
    (torch's CosineAnnealingLR has one eta_min for all groups)."""

    def __init__(self, optimizer: torch.optim.Optimizer, *, T_max: int, min_lr_ratio: float) -> None:
        self.min_lr_ratio = min_lr_ratio
        super().__init__(optimizer, T_max=T_max)

    def get_lr(self) -> list[float]:  # type: ignore[override]
        progress = min(self.last_epoch, self.T_max) / self.T_max
        factor = self.min_lr_ratio + (1 - self.min_lr_ratio) * (1 + math.cos(math.pi * progress)) / 2
        return [base_lr * factor for base_lr in self.base_lrs]

    _get_closed_form_lr = get_lr


class WarmupCosine(torch.optim.lr_scheduler.SequentialLR):
    """torch's ``LinearLR`` warm-up, then ``CosineAnnealingLR``, as one ``SequentialLR``.

    Factor of the base lr at step s (W = ``warmup_steps``, T = ``total_steps``, r = ``min_lr_ratio``):
    (s + 1) / W while s < W, then r + (1 - r) (1 + cos(pi (s - W) / max(1, T - W))) / 2.
    Also resumes from the state of the ``LambdaLR`` that computed this formula by hand
    before (checkpoints written by earlier linzoo versions): it replays their steps.
    Groups with different base lrs (linear=mup, optimizer.roles) and r > 0 decay with
    :class:`GroupCosine` (each group to r times its own lr).
    """

    def __init__(
        self, optimizer: torch.optim.Optimizer, *, total_steps: int, warmup_steps: int = 0, min_lr_ratio: float = 0.0
    ) -> None:
        base_lrs = [group.get("initial_lr", group["lr"]) for group in optimizer.param_groups]
        warmup = torch.optim.lr_scheduler.LinearLR(
            optimizer, start_factor=1 / max(1, warmup_steps), end_factor=1.0, total_iters=max(1, warmup_steps - 1)
        )
        decay_steps = max(1, total_steps - warmup_steps)
        decay: torch.optim.lr_scheduler.LRScheduler
        if len(set(base_lrs)) > 1 and min_lr_ratio:  # groups with their own lrs (linear=mup, optimizer.roles)
            decay = GroupCosine(optimizer, T_max=decay_steps, min_lr_ratio=min_lr_ratio)
        else:
            decay = torch.optim.lr_scheduler.CosineAnnealingLR(
                optimizer, T_max=decay_steps, eta_min=min_lr_ratio * base_lrs[0]
            )
        super().__init__(optimizer, schedulers=[warmup, decay], milestones=[warmup_steps])
        self._first_lrs = [group["lr"] for group in optimizer.param_groups]  # step 0's

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if "_schedulers" in state_dict:
            super().load_state_dict(state_dict)
            return
        # A LambdaLR state from before: replay its steps from step 0 (torch's schedules are recursive in lr).
        for group, lr in zip(self.optimizer.param_groups, self._first_lrs, strict=True):
            group["lr"] = lr
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "scheduler.step() before optimizer.step()"
            for _ in range(state_dict["last_epoch"]):
                self.step()


def cosine(
    optimizer: torch.optim.Optimizer,
    *,
    total_steps: int,
    warmup_steps: int = 0,
    min_lr_ratio: float = 0.0,
) -> WarmupCosine:
    """Linear warm-up, then cosine decay from lr to ``min_lr_ratio * lr`` at ``total_steps`` (:class:`WarmupCosine`)."""
    return WarmupCosine(optimizer, total_steps=total_steps, warmup_steps=warmup_steps, min_lr_ratio=min_lr_ratio)


def one_cycle(
    optimizer: torch.optim.Optimizer,
    *,
    total_steps: int,
    max_lr: float | None = None,
    pct_start: float = 0.25,
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
) -> torch.optim.lr_scheduler.OneCycleLR:
    """torch's OneCycleLR over ``total_steps``; ``max_lr`` defaults to the optimizer's lr."""
    peak = max_lr if max_lr is not None else [group["lr"] for group in optimizer.param_groups]
    return torch.optim.lr_scheduler.OneCycleLR(
        optimizer,
        max_lr=peak,
        total_steps=total_steps,
        pct_start=pct_start,
        div_factor=div_factor,
        final_div_factor=final_div_factor,
    )
