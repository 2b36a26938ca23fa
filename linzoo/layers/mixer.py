"""MLP-Mixer block: a token-mixing MLP across patches, then a channel-mixing MLP."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from linzoo.layers.linear import LinearSpec
from linzoo.layers.mlp import FeedForward

__all__ = ["MixerBlock"]


class MixerBlock(nn.Module):
    """[B, N, dim] -> [B, N, dim] with N = num_patches:

    x = x + token_mix(norm1(x)ᵀ)ᵀ   (FeedForward over the patch axis, roles ``token_mix``)
    x = x + channel_mix(norm2(x))   (FeedForward over the channel axis, roles ``channel_mix``)
    """

    def __init__(
        self,
        num_patches: int,
        dim: int,
        *,
        token_mlp_dim: int,
        channel_mlp_dim: int,
        activation: str = "gelu",
        dropout: float = 0.0,
        linear: LinearSpec | Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.token_mix = FeedForward(
            num_patches,
            token_mlp_dim,
            activation=activation,
            dropout=dropout,
            in_role="token_mix",
            out_role="token_mix",
            linear=linear,
        )
        self.norm2 = nn.LayerNorm(dim)
        self.channel_mix = FeedForward(
            dim,
            channel_mlp_dim,
            activation=activation,
            dropout=dropout,
            in_role="channel_mix",
            out_role="channel_mix",
            linear=linear,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [B, N, dim] -> [B, N, dim]."""
        x = x + self.token_mix(self.norm1(x).transpose(1, 2)).transpose(1, 2)
        return x + self.channel_mix(self.norm2(x))
