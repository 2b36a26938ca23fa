"""Pre-norm transformer block: attention and feed-forward, each in a residual branch."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from linzoo.layers.attention import Attention
from linzoo.layers.kv_cache import KVCache
from linzoo.layers.linear import LinearSpec
from linzoo.layers.mlp import FeedForward

__all__ = ["TransformerBlock"]


class TransformerBlock(nn.Module):
    """x = x + dropout(attn(norm1(x))); x = x + dropout(ffn(norm2(x))). [B, T, dim] -> [B, T, dim].

    The FFN hidden width is ``round(mlp_ratio * dim)``. For the ``gpt2`` policy the
    caller passes a spec that already carries the model depth (``spec.with_depth``).
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        *,
        mlp_ratio: float = 4.0,
        activation: str = "gelu",
        gated: bool = False,
        fused_qkv: bool = False,
        qkv_bias: bool = True,
        causal: bool = False,
        dropout: float = 0.0,
        attn_dropout: float = 0.0,
        linear: LinearSpec | Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(
            dim, num_heads, fused_qkv=fused_qkv, qkv_bias=qkv_bias, causal=causal, dropout=attn_dropout, linear=linear
        )
        self.norm2 = nn.LayerNorm(dim)
        self.ffn = FeedForward(
            dim, round(mlp_ratio * dim), activation=activation, gated=gated, dropout=dropout, linear=linear
        )
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, *, cache: KVCache | None = None) -> torch.Tensor:
        """x: [B, T, dim] -> [B, T, dim]; ``cache`` is this block's attention KV cache."""
        x = x + self.dropout(self.attn(self.norm1(x), cache=cache))
        return x + self.dropout(self.ffn(self.norm2(x)))
