"""Optimizer and learning-rate schedule helpers shared by every task.

Configs pass optimizers and schedules as factories (Hydra ``_partial_: true``):

    optimizer(params) -> torch.optim.Optimizer
    scheduler(optimizer, *, total_steps) -> torch.optim.lr_scheduler.LRScheduler
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

OptimizerFactory = Callable[..., torch.optim.Optimizer]
SchedulerFactory = Callable[..., torch.optim.lr_scheduler.LRScheduler]


def weight_decay_groups(module: nn.Module) -> list[dict[str, Any]]:
    """Two parameter groups: >=2-D weights decay, biases/norms/1-D params do not.

    Embeddings and Linear/conv weights (>=2-D) take the optimizer's weight_decay; the
    second group sets ``weight_decay=0``. Shared (tied) parameters appear once.
    """
    decay, no_decay = [], []
    for parameter in module.parameters():
        if parameter.requires_grad:
            (decay if parameter.dim() >= 2 else no_decay).append(parameter)
    return [{"params": decay}, {"params": no_decay, "weight_decay": 0.0}]


def cosine(
    optimizer: torch.optim.Optimizer,
    *,
    total_steps: int,
    warmup_steps: int = 0,
    min_lr_ratio: float = 0.0,
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up, then cosine decay from lr to ``min_lr_ratio * lr`` at ``total_steps``."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


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
