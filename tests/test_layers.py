"""Attention, feed-forward, transformer block, heads: formulas, equivalences and errors."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from linzoo.layers import (
    Attention,
    ClassificationHead,
    FactoryLinear,
    FeedForward,
    KVCache,
    LMHead,
    PatchEmbedding,
    TransformerBlock,
    TransposedLinear,
    make_linear,
)

FLOAT64 = {"dtype": "float64"}


def _copy_into_fused(separate: Attention, fused: Attention) -> None:
    with torch.no_grad():
        fused.qkv_proj.weight.copy_(torch.cat([separate.q_proj.weight, separate.k_proj.weight, separate.v_proj.weight]))
        fused.qkv_proj.bias.copy_(torch.cat([separate.q_proj.bias, separate.k_proj.bias, separate.v_proj.bias]))
        fused.out_proj.load_state_dict(separate.out_proj.state_dict())


def _reference_attention(attn: Attention, x: torch.Tensor, *, causal: bool) -> torch.Tensor:
    """softmax(Q Kᵀ / sqrt(d) [+ causal mask]) V per head, written out by hand."""
    batch, length, dim = x.shape
    heads, head_dim = attn.num_heads, dim // attn.num_heads

    def split(t: torch.Tensor) -> torch.Tensor:
        return t.reshape(batch, length, heads, head_dim).permute(0, 2, 1, 3)

    q, k, v = split(attn.q_proj(x)), split(attn.k_proj(x)), split(attn.v_proj(x))
    scores = q @ k.transpose(-1, -2) / math.sqrt(head_dim)
    if causal:
        future = torch.ones(length, length, dtype=torch.bool).triu(1)
        scores = scores.masked_fill(future, float("-inf"))
    out = torch.softmax(scores, dim=-1) @ v  # [B, H, T, Dh]
    return attn.out_proj(out.permute(0, 2, 1, 3).reshape(batch, length, dim))


# --- attention -----------------------------------------------------------------------


@pytest.mark.parametrize("causal", [False, True])
def test_fused_and_separate_qkv_agree_once_weights_are_copied(causal: bool) -> None:
    torch.manual_seed(0)
    separate = Attention(16, 4, causal=causal).eval()
    fused = Attention(16, 4, fused_qkv=True, causal=causal).eval()
    x = torch.randn(2, 5, 16)
    assert not torch.allclose(separate(x), fused(x))  # different weights before copying
    _copy_into_fused(separate, fused)
    torch.testing.assert_close(fused(x), separate(x))
    fused_linears = [m for m in fused.modules() if isinstance(m, FactoryLinear)]
    assert [(m.role, m.out_features) for m in fused_linears] == [("qkv", 48), ("attn_out", 16)]


@pytest.mark.parametrize("causal", [False, True])
def test_sdpa_equals_hand_written_softmax_attention(causal: bool) -> None:
    torch.manual_seed(0)
    attn = Attention(12, 3, causal=causal, dropout=0.5, linear=FLOAT64).eval()  # eval: no dropout
    x = torch.randn(2, 6, 12, dtype=torch.float64)
    torch.testing.assert_close(attn(x), _reference_attention(attn, x, causal=causal))


@pytest.mark.parametrize("causal", [False, True])
def test_causal_attention_ignores_later_tokens(causal: bool) -> None:
    torch.manual_seed(0)
    attn = Attention(8, 2, causal=causal).eval()
    x = torch.randn(1, 6, 8)
    changed = x.clone()
    changed[:, 4] = torch.randn(8)
    out, out_changed = attn(x), attn(changed)
    earlier_equal = torch.allclose(out[:, :4], out_changed[:, :4], rtol=0, atol=1e-6)
    assert earlier_equal is causal  # without the mask, every position sees token 4
    assert not torch.allclose(out[:, 4:], out_changed[:, 4:])


@pytest.mark.parametrize("max_length", [None, 9, 12])  # growing by torch.cat, or preallocated
@pytest.mark.parametrize("fused_qkv", [False, True])
def test_kv_cache_decoding_matches_full_causal_pass(fused_qkv: bool, max_length: int | None) -> None:
    """Prompt of 4, then single steps, then a 2-token chunk (needs the offset causal mask)."""
    torch.manual_seed(0)
    attn = Attention(8, 2, causal=True, fused_qkv=fused_qkv, linear=FLOAT64).eval()
    x = torch.randn(2, 9, 8, dtype=torch.float64)
    cache = KVCache(max_length)
    pieces = [attn(x[:, :4], cache=cache), attn(x[:, 4:5], cache=cache), attn(x[:, 5:7], cache=cache)]
    pieces.append(attn(x[:, 7:9], cache=cache))
    assert len(cache) == 9 and cache.keys.shape == (2, 2, 9, 4)
    torch.testing.assert_close(torch.cat(pieces, dim=1), attn(x))
    if max_length == 9:
        with pytest.raises(ValueError, match="holds 9 steps"):
            attn(x[:, :1], cache=cache)
    cache.reset()  # a new sequence in the same (preallocated) cache
    torch.testing.assert_close(attn(x[:, :3], cache=cache), attn(x[:, :3]))


def test_attention_rejects_dim_not_divisible_by_heads() -> None:
    with pytest.raises(ValueError, match="divisible by num_heads"):
        Attention(10, 4)


def test_qkv_bias_false_removes_only_qkv_biases() -> None:
    attn = Attention(8, 2, qkv_bias=False)
    assert attn.q_proj.bias is None and attn.k_proj.bias is None and attn.v_proj.bias is None
    assert attn.out_proj.bias is not None


# --- feed-forward and block ----------------------------------------------------------


def test_feed_forward_plain_and_gated_formulas() -> None:
    torch.manual_seed(0)
    x = torch.randn(3, 4, 6)
    plain = FeedForward(6, 10, activation="relu")
    torch.testing.assert_close(plain(x), plain.out_proj(F.relu(plain.in_proj(x))))
    gated = FeedForward(6, 10, activation="silu", gated=True)
    expected = gated.out_proj(F.silu(gated.gate_proj(x)) * gated.in_proj(x))
    torch.testing.assert_close(gated(x), expected)
    assert {m.role for m in gated.modules() if isinstance(m, FactoryLinear)} == {"ffn_in", "ffn_out"}


def test_bad_activation_lists_valid_names() -> None:
    with pytest.raises(ValueError, match="gelu.*relu.*silu"):
        FeedForward(4, 8, activation="foo")


def test_transformer_block_is_pre_norm_residual() -> None:
    torch.manual_seed(0)
    block = TransformerBlock(8, 2, mlp_ratio=2.0).eval()
    x = torch.randn(2, 5, 8)
    h = x + block.attn(block.norm1(x))
    torch.testing.assert_close(block(x), h + block.ffn(block.norm2(h)))
    assert block.ffn.in_proj.out_features == 16


# --- heads, tying, patches -----------------------------------------------------------


def test_classification_head_uses_role_head_everywhere() -> None:
    head = ClassificationHead(12, 3, hidden_dims=(8, 5), activation="relu")
    linears = [m for m in head.modules() if isinstance(m, FactoryLinear)]
    shapes_and_roles = [(m.in_features, m.out_features, m.role) for m in linears]
    assert shapes_and_roles == [(12, 8, "head"), (8, 5, "head"), (5, 3, "head")]
    assert head(torch.randn(4, 12)).shape == (4, 3)


def test_lm_head_tied_to_embedding_shares_the_parameter() -> None:
    embedding = nn.Embedding(7, 4)
    head = LMHead(4, 7, tie_to=embedding)
    assert head.weight is embedding.weight
    model = nn.ModuleDict({"embedding": embedding, "head": head})
    assert sum(p is embedding.weight for p in model.parameters()) == 1
    with pytest.raises(ValueError, match=r"nn.Embedding\(7, 5\)"):
        LMHead(5, 7, tie_to=embedding)


def test_transposed_linear_shares_the_source_weight() -> None:
    torch.manual_seed(0)
    source = make_linear(6, 3, role="enc")
    mirror = TransposedLinear(source, role="dec", linear={"bias_init": "zeros"})
    assert mirror.weight is source.weight
    z = torch.randn(2, 3)
    torch.testing.assert_close(mirror(z), z @ source.weight)


def test_patch_embedding_orders_patches_row_major() -> None:
    embed = PatchEmbedding(image_size=4, patch_size=2, in_channels=1, dim=4, linear={"bias": False})
    with torch.no_grad():
        embed.proj.weight.copy_(torch.eye(4))
    image = torch.arange(16.0).reshape(1, 1, 4, 4)
    expected = torch.tensor([[0.0, 1, 4, 5], [2, 3, 6, 7], [8, 9, 12, 13], [10, 11, 14, 15]])
    torch.testing.assert_close(embed(image)[0], expected)
    with pytest.raises(ValueError, match="not divisible by patch_size"):
        PatchEmbedding(image_size=28, patch_size=5, in_channels=1, dim=4)
