"""The warm-up + cosine schedule (torch's SequentialLR of LinearLR and CosineAnnealingLR) keeps its numbers."""

from __future__ import annotations

import math

import pytest
import torch

from linzoo.tasks.optim import WarmupCosine, cosine


def former_factor(step: int, *, total: int, warmup: int, min_ratio: float) -> float:
    """The hand-written LambdaLR factor that linzoo used before (the reference values)."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def optimizer(lr: float = 0.1) -> torch.optim.Optimizer:
    weight, bias = torch.nn.Parameter(torch.zeros(2, 2)), torch.nn.Parameter(torch.zeros(2))
    return torch.optim.SGD([{"params": [weight]}, {"params": [bias], "weight_decay": 0.0}], lr=lr)


@pytest.mark.parametrize(("total", "warmup", "min_ratio"), [(100, 0, 0.0), (100, 10, 0.0), (60, 20, 0.1), (9, 1, 0.5)])
def test_lr_curve_equals_the_former_formula(total: int, warmup: int, min_ratio: float) -> None:
    opt = optimizer()
    schedule = cosine(opt, total_steps=total, warmup_steps=warmup, min_lr_ratio=min_ratio)
    assert isinstance(schedule, torch.optim.lr_scheduler.SequentialLR)
    for step in range(total + 1):
        expected = 0.1 * former_factor(step, total=total, warmup=warmup, min_ratio=min_ratio)
        assert [group["lr"] for group in opt.param_groups] == pytest.approx([expected] * 2, abs=1e-12), step
        opt.step()
        schedule.step()


def test_resumes_from_its_own_state_and_from_the_former_lambdalr_state() -> None:
    total, warmup = 50, 5
    # A schedule stepped 17 times, saved by the current and by the former (LambdaLR) implementation.
    current_opt = optimizer()
    current = cosine(current_opt, total_steps=total, warmup_steps=warmup)
    former_opt = optimizer()
    former = torch.optim.lr_scheduler.LambdaLR(
        former_opt, lambda s: former_factor(s, total=total, warmup=warmup, min_ratio=0.0)
    )
    for _ in range(17):
        current_opt.step(), current.step(), former_opt.step(), former.step()
    for saved in (current.state_dict(), former.state_dict()):
        # As Lightning resumes: build optimizer and schedule, restore the optimizer (its lr), then the schedule.
        opt = optimizer()
        resumed = WarmupCosine(opt, total_steps=total, warmup_steps=warmup)
        opt.load_state_dict(current_opt.state_dict())
        resumed.load_state_dict(saved)
        for step in range(17, total + 1):
            expected = 0.1 * former_factor(step, total=total, warmup=warmup, min_ratio=0.0)
            assert opt.param_groups[0]["lr"] == pytest.approx(expected, abs=1e-12), step
            opt.step()
            resumed.step()


@pytest.mark.parametrize("warmup", [0, 3])
def test_min_lr_ratio_with_several_base_lrs_decays_each_group_to_its_own_floor(warmup: int) -> None:
    # Parameter groups with their own lrs (linear=mup, optimizer.roles.<role>.lr_mult).
    weight, bias = torch.nn.Parameter(torch.zeros(2, 2)), torch.nn.Parameter(torch.zeros(2))
    opt = torch.optim.SGD([{"params": [weight]}, {"params": [bias], "lr": 0.5}], lr=0.1)
    schedule = cosine(opt, total_steps=20, warmup_steps=warmup, min_lr_ratio=0.1)
    for step in range(21):
        factor = former_factor(step, total=20, warmup=warmup, min_ratio=0.1)
        assert [group["lr"] for group in opt.param_groups] == pytest.approx([0.1 * factor, 0.5 * factor]), step
        opt.step()
        schedule.step()
    state = schedule.state_dict()
    resumed = WarmupCosine(opt, total_steps=20, warmup_steps=warmup, min_lr_ratio=0.1)
    resumed.load_state_dict(state)
    assert resumed.last_epoch == schedule.last_epoch
