"""The per-role quantization policy: roles -> the Linears quantized (module paths), never names."""

from __future__ import annotations

import pytest

import linzoo
from linzoo.tools.quantize import quantize_options
from linzoo.tools.quantize_policy import check_roles, linear_roles, quantized_paths


def test_roles_translate_into_module_paths() -> None:
    vit = linzoo.create_model("transformer", dim=16, depth=2, num_heads=2, patch_size=7)
    everything = quantized_paths(vit)
    assert everything == list(linear_roles(vit))  # the default: every Linear
    assert len(everything) == 1 + 2 * 6 + 1  # patch, 2 x (q, k, v, out, ffn in, ffn out), head
    kept = quantized_paths(vit, {"head": "none", "patch": "none"})
    assert sorted(set(everything) - set(kept)) == ["head.layers.0", "patch_embedding.proj"]
    assert {linear_roles(vit)[path] for path in kept} == {"qkv", "attn_out", "ffn_in", "ffn_out"}
    assert quantized_paths(vit, {"qkv": "none", "head": None}) == [  # null: the default (int8)
        path for path, role in linear_roles(vit).items() if role != "qkv"
    ]


def test_mixer_and_mlp_roles() -> None:
    mixer = linzoo.create_model("mixer", dim=16, depth=2, patch_size=7)
    assert {linear_roles(mixer)[p] for p in quantized_paths(mixer, {"token_mix": "none"})} == {
        "patch",
        "channel_mix",
        "head",
    }
    mlp = linzoo.create_model("mlp", hidden_dims=[16, 8])
    assert quantized_paths(mlp, {"hidden": "none"}) == ["head.layers.0"]
    assert quantized_paths(linzoo.create_model("cnn", channels=[4]), {"head": "none"}) == []


def test_a_tied_lm_head_stays_float() -> None:
    lm = linzoo.create_model("lm", vocab_size=3, seq_len=16, dim=16, depth=1)
    assert "lm_head.proj" in linear_roles(lm) and "lm_head.proj" not in quantized_paths(lm)


def test_bad_policies_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="quantize.roles.haed: no linzoo model has a Linear of role 'haed'"):
        check_roles({"haed": "none"})
    with pytest.raises(ValueError, match="quantize.roles.head=fp8: expected int8 or none"):
        check_roles({"head": "fp8"})
    with pytest.raises(ValueError, match="quantize.roles.\\* is set but nothing is quantized"):
        quantize_options({"mode": None, "roles": {"head": "none"}})
    assert quantize_options({"mode": "int8", "roles": {"head": "none", "qkv": None}}) == ("int8", {"head": "none"})
    assert quantize_options("int8") == ("int8", {}) and quantize_options(None) == (None, {})
