"""A Linear that reuses another Linear's weight, transposed (tied autoencoder decoders)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from linzoo.layers.linear import BIAS_INITS, LinearSpec, as_linear_spec

__all__ = ["TransposedLinear"]


class TransposedLinear(nn.Module):
    """y = x W + b, where W [out_src, in_src] is ``source.weight`` (shared, not copied).

    Maps ``source.out_features -> source.in_features``: the mirror image of ``source``.
    Only the bias is its own; it is initialised by the factory's bias scheme for ``role``.
    """

    def __init__(
        self,
        source: nn.Linear,
        *,
        role: str,
        linear: LinearSpec | Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.role = role
        self.spec = as_linear_spec(linear).for_role(role)
        self.in_features = source.out_features
        self.out_features = source.in_features
        self.weight = source.weight  # the same Parameter: tied, counted once
        if self.spec.bias:
            self.bias = nn.Parameter(
                torch.empty(self.out_features, device=source.weight.device, dtype=source.weight.dtype)
            )
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Re-initialise the bias only (the weight belongs to ``source``)."""
        if self.bias is not None:
            with torch.no_grad():
                BIAS_INITS[self.spec.bias_init](self.bias, self.spec, self.in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [..., source.out_features] -> [..., source.in_features]."""
        return F.linear(x, self.weight.t(), self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, role={self.role}, tied=True"
