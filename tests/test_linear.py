"""The Linear factory: inits, errors, roles, policies, lazy/meta layers, gradients, compile."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from linzoo import create_model
from linzoo.layers.linear import (
    BIAS_INITS,
    RESIDUAL_ROLES,
    WEIGHT_INITS,
    FactoryLazyLinear,
    FactoryLinear,
    LinearSpec,
    make_linear,
)

SIZE = 512  # square layer for init statistics: 262,144 weights, sample std within ~0.3 %


def _weight(spec: LinearSpec | dict, in_features: int = SIZE, out_features: int = SIZE) -> torch.Tensor:
    torch.manual_seed(0)
    return make_linear(in_features, out_features, role="hidden", spec=spec).weight.detach()


# --- init = "default" reproduces nn.Linear -------------------------------------------


@pytest.mark.parametrize("shape", [(20, 30), (1, 7), (64, 3)])
def test_default_init_equals_nn_linear_bit_for_bit(shape: tuple[int, int]) -> None:
    torch.manual_seed(123)
    reference = nn.Linear(*shape)
    torch.manual_seed(123)
    layer = make_linear(*shape, role="hidden", spec={"init": "default"})
    assert isinstance(layer, nn.Linear)
    assert torch.equal(layer.weight, reference.weight)
    assert torch.equal(layer.bias, reference.bias)


# --- weight schemes: sample statistics match their formulas --------------------------

KAIMING_STD = math.sqrt(2.0) / math.sqrt(SIZE)  # gain(leaky_relu, a=0) = sqrt(2), fan_in
XAVIER_STD = math.sqrt(2.0 / (SIZE + SIZE))  # gain 1
EXPECTED_STD = {
    "default": 1.0 / math.sqrt(3 * SIZE),  # U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    "kaiming_uniform": KAIMING_STD,
    "kaiming_normal": KAIMING_STD,
    "xavier_uniform": XAVIER_STD,
    "xavier_normal": XAVIER_STD,
    "trunc_normal": 0.02 * 0.8796,  # N(0, 0.02^2) cut at +-2 std
    "lecun_normal": 1.0 / math.sqrt(SIZE),
    "normal": 0.02,
}
UNIFORM = {"default", "kaiming_uniform", "xavier_uniform"}


def test_every_weight_scheme_is_tested() -> None:
    assert set(WEIGHT_INITS) == set(EXPECTED_STD) | {"orthogonal", "zeros"}


@pytest.mark.parametrize("init", sorted(EXPECTED_STD))
def test_weight_scheme_std_matches_formula(init: str) -> None:
    weight = _weight({"init": init})
    expected = EXPECTED_STD[init]
    assert abs(weight.mean().item()) < 0.01 * expected * 5
    assert weight.std().item() == pytest.approx(expected, rel=0.02)
    largest = weight.abs().max().item()
    if init in UNIFORM:  # U(-b, b) with b = sqrt(3) std: bounded and reaching the bound
        assert math.sqrt(3) * expected * 0.99 < largest <= math.sqrt(3) * expected * (1 + 1e-6)
    elif init in ("trunc_normal", "lecun_normal"):  # truncated at 2 sigma of the untruncated normal
        assert largest <= 2 * expected / 0.8796 * (1 + 1e-6)
    else:  # a full normal has tails far beyond 2 std
        assert largest > 3.5 * expected


def test_trunc_normal_is_cut_at_two_std() -> None:
    weight = _weight({"init": "trunc_normal", "std": 0.05})
    assert weight.abs().max().item() <= 2 * 0.05
    assert weight.std().item() == pytest.approx(0.05 * 0.8796, rel=0.02)


@pytest.mark.parametrize("gain", [1.0, 2.0])
def test_orthogonal_rows_are_orthonormal_times_gain(gain: float) -> None:
    weight = _weight({"init": "orthogonal", "gain": gain}, in_features=128, out_features=64).double()
    torch.testing.assert_close(weight @ weight.T, torch.eye(64, dtype=torch.float64) * gain**2, atol=1e-4, rtol=0)


def test_zeros_weight() -> None:
    assert torch.count_nonzero(_weight({"init": "zeros"})) == 0


def test_bias_schemes() -> None:
    torch.manual_seed(0)
    fan_in = 64
    default = make_linear(fan_in, 8192, role="hidden", spec={"bias_init": "default"}).bias.detach()
    assert default.abs().max().item() <= 1 / math.sqrt(fan_in)
    assert default.std().item() == pytest.approx(1 / math.sqrt(3 * fan_in), rel=0.05)
    zeros = make_linear(fan_in, 16, role="hidden", spec={"bias_init": "zeros"}).bias
    assert torch.count_nonzero(zeros) == 0
    constant = make_linear(fan_in, 16, role="hidden", spec={"bias_init": "constant", "bias_value": 0.3}).bias
    assert torch.equal(constant, torch.full((16,), 0.3))
    assert make_linear(fan_in, 16, role="hidden", spec={"bias": False}).bias is None
    assert set(BIAS_INITS) == {"default", "zeros", "constant"}


def test_fused_chunks_are_initialised_like_separate_layers() -> None:
    """Orthogonal init of a fused [3d, d] weight: each [d, d] block is orthogonal on its own."""
    torch.manual_seed(0)
    fused = make_linear(32, 96, role="qkv", spec={"init": "orthogonal"}, chunks=3).weight.detach().double()
    for block in fused.chunk(3, dim=0):
        torch.testing.assert_close(block @ block.T, torch.eye(32, dtype=torch.float64), atol=1e-4, rtol=0)
    # Unchunked, a [96, 32] orthogonal matrix has orthonormal columns, not rows.
    whole = make_linear(32, 96, role="qkv", spec={"init": "orthogonal"}).weight.detach().double()
    assert not torch.allclose(whole[:32] @ whole[:32].T, torch.eye(32, dtype=torch.float64), atol=1e-2)


# --- unknown names are rejected with the valid ones listed ---------------------------


@pytest.mark.parametrize(
    ("options", "listed"),
    [
        ({"init": "kaiming"}, "kaiming_uniform"),
        ({"bias_init": "one"}, "constant"),
        ({"policy": "gpt3"}, "gpt2"),
        ({"roles": {"attention_out": {"init": "zeros"}}}, "attn_out"),
        ({"roles": {"attn_out": {"init": "zero"}}}, "zeros"),
        ({"roles": {"attn_out": {"colour": 1}}}, "bias_init"),
        ({"inti": "zeros"}, "init"),
    ],
)
def test_unknown_option_values_raise_value_error_listing_valid(options: dict, listed: str) -> None:
    with pytest.raises(ValueError, match=listed):
        make_linear(4, 4, role="hidden", spec=options)


def test_unknown_role_raises_value_error_listing_valid() -> None:
    with pytest.raises(ValueError, match="attn_out.*lm_head|lm_head.*attn_out"):
        make_linear(4, 4, role="attention")


# --- roles and policies --------------------------------------------------------------


def _factory_linears(model: nn.Module) -> list[FactoryLinear]:
    return [m for m in model.modules() if isinstance(m, FactoryLinear)]


def test_role_override_changes_only_that_role() -> None:
    torch.manual_seed(0)
    model = create_model("transformer", dim=16, depth=2, num_heads=2, linear={"roles": {"attn_out": {"init": "zeros"}}})
    linears = _factory_linears(model)
    attn_out = [m for m in linears if m.role == "attn_out"]
    assert len(attn_out) == 2
    assert all(torch.count_nonzero(m.weight) == 0 for m in attn_out)
    others = [m for m in linears if m.role != "attn_out"]
    assert {m.role for m in others} == {"patch", "qkv", "ffn_in", "ffn_out", "head"}
    assert all(torch.count_nonzero(m.weight) == m.weight.numel() for m in others)


def test_gpt2_policy_scales_exactly_the_residual_projections_of_every_block() -> None:
    depth = 3
    torch.manual_seed(0)
    model = create_model("transformer", dim=64, depth=depth, num_heads=4, linear={"policy": "gpt2"})
    linears = _factory_linears(model)
    residual_std = 0.02 / math.sqrt(2 * depth)
    for role in RESIDUAL_ROLES:
        assert sum(m.role == role for m in linears) == depth  # one of each per block
    for layer in linears:
        assert layer.spec.init == "normal"
        assert layer.spec.std == pytest.approx(residual_std if layer.role in RESIDUAL_ROLES else 0.02)
    residual = torch.cat([m.weight.flatten() for m in linears if m.role in RESIDUAL_ROLES])
    others = torch.cat([m.weight.flatten() for m in linears if m.role not in RESIDUAL_ROLES])
    assert residual.std().item() == pytest.approx(residual_std, rel=0.05)
    assert others.std().item() == pytest.approx(0.02, rel=0.05)


def test_gpt2_policy_without_depth_names_the_fix() -> None:
    with pytest.raises(ValueError, match="with_depth"):
        make_linear(8, 8, role="ffn_out", spec={"policy": "gpt2"})


# --- lazy and meta-device layers -----------------------------------------------------


def test_lazy_layer_materialises_with_the_chosen_init() -> None:
    spec = {"init": "normal", "std": 0.1, "bias_init": "constant", "bias_value": 0.5}
    layer = make_linear(None, SIZE, role="hidden", spec=spec)
    assert isinstance(layer, FactoryLazyLinear)
    out = layer(torch.randn(3, SIZE))
    assert out.shape == (3, SIZE)
    assert type(layer) is FactoryLinear
    assert layer.in_features == SIZE and layer.weight.shape == (SIZE, SIZE)
    assert layer.weight.std().item() == pytest.approx(0.1, rel=0.02)
    assert torch.equal(layer.bias, torch.full((SIZE,), 0.5))


def test_lazy_layer_without_bias() -> None:
    layer = make_linear(None, 4, role="head", spec={"bias": False, "init": "zeros"})
    assert torch.equal(layer(torch.ones(2, 3)), torch.zeros(2, 4))
    assert layer.bias is None and type(layer) is FactoryLinear


def test_meta_device_then_to_empty_then_reset_parameters() -> None:
    layer = make_linear(SIZE, SIZE, role="hidden", spec=LinearSpec(device="meta", init="xavier_normal"))
    assert layer.weight.is_meta and layer.bias.is_meta
    layer.to_empty(device="cpu")
    layer.reset_parameters()
    assert layer.weight.device.type == "cpu"
    assert torch.isfinite(layer.weight).all() and torch.isfinite(layer.bias).all()
    assert layer.weight.std().item() == pytest.approx(XAVIER_STD, rel=0.02)
    assert layer.bias.abs().max().item() <= 1 / math.sqrt(SIZE)


def test_state_dict_round_trip_through_plain_nn_linear() -> None:
    torch.manual_seed(0)
    factory = make_linear(7, 5, role="hidden", spec={"init": "xavier_uniform"})
    plain = nn.Linear(7, 5)
    plain.load_state_dict(factory.state_dict())
    back = make_linear(7, 5, role="head", spec={"init": "zeros"})
    back.load_state_dict(plain.state_dict())
    x = torch.randn(4, 7)
    torch.testing.assert_close(plain(x), factory(x), rtol=0, atol=0)
    torch.testing.assert_close(back(x), factory(x), rtol=0, atol=0)


# --- gradients match the closed forms ------------------------------------------------


@pytest.mark.parametrize("leading", [(6,), (2, 3)])
def test_gradients_equal_closed_forms(leading: tuple[int, ...]) -> None:
    """L = sum(Y * G), Y = X Wᵀ + b: dL/dW = Gᵀ X, dL/db = sum_rows G, dL/dX = G W."""
    torch.manual_seed(0)
    layer = make_linear(4, 3, role="hidden", spec={"dtype": "float64", "init": "normal", "std": 1.0})
    x = torch.randn(*leading, 4, dtype=torch.float64, requires_grad=True)
    g = torch.randn(*leading, 3, dtype=torch.float64)
    (layer(x) * g).sum().backward()
    x_rows, g_rows = x.detach().reshape(-1, 4), g.reshape(-1, 3)
    torch.testing.assert_close(layer.weight.grad, g_rows.T @ x_rows)
    torch.testing.assert_close(layer.bias.grad, g_rows.sum(dim=0))
    torch.testing.assert_close(x.grad, g @ layer.weight.detach())


# --- input errors and leading dimensions ---------------------------------------------


def test_wrong_last_dimension_names_both_sizes_and_the_role() -> None:
    layer = make_linear(5, 3, role="ffn_in")
    with pytest.raises(ValueError, match=r"in_features=5.*last dimension 7") as info:
        layer(torch.randn(2, 7))
    assert "'ffn_in'" in str(info.value)


def test_integer_input_raises_type_error_naming_float() -> None:
    layer = make_linear(5, 3, role="hidden")
    with pytest.raises(TypeError, match=r"\.float\(\)"):
        layer(torch.ones(2, 5, dtype=torch.long))


@pytest.mark.parametrize("shape", [(2, 5), (3, 7, 5), (1, 1, 1, 1, 5)])
def test_any_leading_dimensions_work(shape: tuple[int, ...]) -> None:
    layer = make_linear(5, 3, role="hidden")
    x = torch.randn(*shape)
    y = layer(x)
    assert y.shape == (*shape[:-1], 3)
    torch.testing.assert_close(y, x @ layer.weight.T + layer.bias)


# --- torch.compile -------------------------------------------------------------------


def test_factory_linear_compiles_without_graph_break() -> None:
    """fullgraph=True raises on any graph break, e.g. from the try/except in forward."""
    torch._dynamo.reset()
    model = nn.Sequential(make_linear(8, 16, role="hidden"), nn.ReLU(), make_linear(16, 4, role="head"))
    compiled = torch.compile(model, fullgraph=True, backend="eager")
    x = torch.randn(3, 8)
    torch.testing.assert_close(compiled(x), model(x))
    explanation = torch._dynamo.explain(model)(x)
    assert explanation.graph_break_count == 0 and explanation.graph_count == 1
