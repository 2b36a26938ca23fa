"""Multi-head self-attention whose projections all come from the Linear factory."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from linzoo.common.errors import UserValueError
from linzoo.layers.kv_cache import KVCache
from linzoo.layers.linear import SUB_ROLES, LinearSpec, as_linear_spec, make_linear
from linzoo.layers.mup import attention_scale

__all__ = ["Attention"]


class Attention(nn.Module):
    """softmax(Q Kᵀ / sqrt(head_dim)) V over ``num_heads`` heads, then an out-projection.

    Under muP (``linear.mup``) the logits are scaled by 1 / sqrt(head_dim * m) = sqrt(d_base) / d
    instead (linzoo.layers.mup.attention_scale): 1/sqrt(d) at the base width, ~1/d as width grows.

    x: [B, T, dim] -> [B, T, dim]. Q, K, V are three Linears of role ``"qkv"`` with sub-roles
    ``q``, ``k``, ``v`` (or one fused ``dim -> 3 * dim`` Linear whose row blocks are the sub-roles
    q, k, v, initialised like three separate layers); the out-projection has role ``"attn_out"``.

    Args:
        dim: model width; must be divisible by ``num_heads``.
        num_heads: number of heads, each of width ``dim // num_heads``.
        fused_qkv: one fused Q/K/V projection instead of three.
        qkv_bias: whether Q/K/V have a bias (False overrides the spec's ``bias``).
        causal: position t attends only to positions <= t.
        dropout: dropout on the attention probabilities (training only).
        linear: Linear factory spec.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        *,
        fused_qkv: bool = False,
        qkv_bias: bool = True,
        causal: bool = False,
        dropout: float = 0.0,
        linear: LinearSpec | Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if num_heads < 1 or dim % num_heads != 0:
            raise UserValueError(
                f"dim={dim} must be divisible by num_heads={num_heads}; "
                "pick num_heads that divides dim (e.g. dim=64, num_heads=4)."
            )
        if not 0.0 <= dropout < 1.0:
            raise UserValueError(f"Attention dropout must be in [0, 1), got {dropout}.")
        spec = as_linear_spec(linear)
        qkv_spec = spec
        if not qkv_bias:  # the model's switch wins over per-role bias overrides
            for role in ("qkv", *SUB_ROLES["qkv"]):
                qkv_spec = qkv_spec.with_role(role, bias=False)
        self.dim = dim
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.causal = causal
        self.dropout = dropout
        self.fused_qkv = fused_qkv
        # None: scaled_dot_product_attention's own 1/sqrt(head_dim).
        self.scale = None if spec.mup is None else attention_scale(self.head_dim, spec.width_mult)
        if fused_qkv:
            self.qkv_proj = make_linear(dim, 3 * dim, role="qkv", spec=qkv_spec, sub_roles=("q", "k", "v"))
        else:
            self.q_proj = make_linear(dim, dim, role="qkv", spec=qkv_spec, sub_roles=("q",))
            self.k_proj = make_linear(dim, dim, role="qkv", spec=qkv_spec, sub_roles=("k",))
            self.v_proj = make_linear(dim, dim, role="qkv", spec=qkv_spec, sub_roles=("v",))
        self.out_proj = make_linear(dim, dim, role="attn_out", spec=spec)

    def forward(self, x: torch.Tensor, *, cache: KVCache | None = None) -> torch.Tensor:
        """x: [B, T, dim] -> [B, T, dim].

        With ``cache``, ``x`` holds only the new time steps; their keys/values are
        appended to the cache and the queries attend to every cached step (and, if
        causal, to the new steps up to their own position).
        """
        batch, length, _ = x.shape
        q, k, v = (self._split_heads(t) for t in self._project_qkv(x))  # each [B, H, T, Dh]
        past = 0
        if cache is not None:
            past = len(cache)
            k, v = cache.update(k, v)
        attn_mask = None
        if self.causal and past > 0 and length > 1:
            # New step i sits at position past + i and sees keys 0 .. past + i.
            attn_mask = torch.ones(length, past + length, dtype=torch.bool, device=x.device).tril(past)
        out = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=attn_mask,
            dropout_p=self.dropout if self.training else 0.0,
            is_causal=self.causal and past == 0,
            scale=self.scale,
        )
        out = out.transpose(1, 2).reshape(batch, length, self.dim)
        return self.out_proj(out)

    def _project_qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x: [B, T, dim] -> Q, K, V, each [B, T, dim]."""
        if self.fused_qkv:
            q, k, v = self.qkv_proj(x).chunk(3, dim=-1)
            return q, k, v
        return self.q_proj(x), self.k_proj(x), self.v_proj(x)

    def _split_heads(self, t: torch.Tensor) -> torch.Tensor:
        """[B, T, dim] -> [B, H, T, head_dim]."""
        batch, length, _ = t.shape
        return t.view(batch, length, self.num_heads, self.head_dim).transpose(1, 2)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, num_heads={self.num_heads}, causal={self.causal}, fused_qkv={self.fused_qkv}"
