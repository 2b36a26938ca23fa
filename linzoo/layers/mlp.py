"""Position-wise feed-forward network (plain or gated), built from the Linear factory."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from linzoo.layers.activations import make_activation
from linzoo.layers.linear import LinearSpec, as_linear_spec, make_linear

__all__ = ["FeedForward", "hidden_layers"]


def hidden_layers(
    in_features: int,
    hidden_dims: Sequence[int],
    *,
    role: str,
    activation: str,
    dropout: float,
    spec: LinearSpec,
    reads_input: bool = False,
) -> tuple[list[nn.Module], int]:
    """[Linear(role), activation, Dropout] per entry of ``hidden_dims``; returns (layers, output width).

    ``reads_input``: the first Linear reads the net's fixed-size input (muP: an input layer).
    """
    layers: list[nn.Module] = []
    width = in_features
    for index, hidden in enumerate(hidden_dims):
        in_is_width = not (reads_input and index == 0)
        layer = make_linear(width, hidden, role=role, spec=spec, in_is_width=in_is_width)
        layers += [layer, make_activation(activation), nn.Dropout(dropout)]
        width = hidden
    return layers, width


class FeedForward(nn.Module):
    """Two-layer MLP applied to the last axis: [..., dim] -> [..., dim].

    Plain:  y = W_out · dropout(act(W_in x + b_in)) + b_out
    Gated (SwiGLU-style, ``gated=True``): y = W_out · dropout(act(W_gate x) * (W_in x))

    ``in_role``/``out_role`` name the factory roles (``ffn_in``/``ffn_out`` in a
    transformer, ``token_mix``/``channel_mix`` in MLP-Mixer); the gate uses ``in_role``.
    """

    def __init__(
        self,
        dim: int,
        hidden_dim: int,
        *,
        activation: str = "gelu",
        gated: bool = False,
        dropout: float = 0.0,
        in_role: str = "ffn_in",
        out_role: str = "ffn_out",
        linear: LinearSpec | Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        spec = as_linear_spec(linear)
        self.gated = gated
        self.in_proj = make_linear(dim, hidden_dim, role=in_role, spec=spec)
        self.gate_proj = make_linear(dim, hidden_dim, role=in_role, spec=spec) if gated else None
        self.activation = make_activation(activation)
        self.dropout = nn.Dropout(dropout)
        self.out_proj = make_linear(hidden_dim, dim, role=out_role, spec=spec)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [..., dim] -> [..., dim]."""
        if self.gate_proj is not None:
            hidden = self.activation(self.gate_proj(x)) * self.in_proj(x)
        else:
            hidden = self.activation(self.in_proj(x))
        return self.out_proj(self.dropout(hidden))
