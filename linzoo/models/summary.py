"""Small facts about a built model."""

from __future__ import annotations

from torch import nn

__all__ = ["count_parameters"]


def count_parameters(module: nn.Module, *, trainable_only: bool = False) -> int:
    """Number of scalar parameters; tied (shared) Parameters are counted once."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
