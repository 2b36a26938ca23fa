"""Activation functions by name, so configs can say ``activation: gelu``."""

from __future__ import annotations

from torch import nn

from linzoo.common.errors import UserValueError

__all__ = ["ACTIVATIONS", "make_activation"]

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "gelu": nn.GELU,
    "relu": nn.ReLU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
}


def make_activation(name: str) -> nn.Module:
    """A fresh activation module for ``name`` (one of :data:`ACTIVATIONS`)."""
    if name not in ACTIVATIONS:
        raise UserValueError(f"Unknown activation {name!r}; valid: {', '.join(sorted(ACTIVATIONS))}.")
    return ACTIVATIONS[name]()
