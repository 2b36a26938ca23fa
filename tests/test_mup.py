"""muP by role (linear=mup): init, output multiplier, attention scale, lr groups, errors, coord check."""

from __future__ import annotations

import functools
import math

import pytest
import torch
import torch.nn.functional as F
from hydra.errors import ConfigCompositionException, InstantiationException
from hydra.utils import instantiate

from linzoo import create_model
from linzoo.common.errors import UserValueError
from linzoo.layers.linear import FactoryLinear
from linzoo.tasks.param_groups import build_optimizer

LR, WD = 0.01, 0.1
SIZES = {"mlp": {"hidden_dims": [64, 32]}, "transformer": {"dim": 64}, "mixer": {"dim": 64}, "lm": {"dim": 64}}
INPUTS = {"lm": lambda: torch.randint(0, 3, (2, 10))}


def build(model: str, *, seed: int = 0, **options) -> torch.nn.Module:
    torch.manual_seed(seed)
    return create_model(model, **{**SIZES[model], **options})


def mup(base_width: int = 64, **options) -> dict:
    return {"mup": {"base_width": base_width, **options}}


@pytest.mark.parametrize("model", sorted(SIZES))
def test_at_the_base_width_mup_is_sp_bit_for_bit(model: str) -> None:
    sp, mu = build(model), build(model, linear=mup())
    for (name, a), b in zip(sp.state_dict().items(), mu.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    x = INPUTS.get(model, lambda: torch.rand(2, 1, 28, 28))()
    assert torch.equal(sp.eval()(x), mu.eval()(x))


def linears(net: torch.nn.Module, role: str) -> list[FactoryLinear]:
    return [m for m in net.modules() if isinstance(m, FactoryLinear) and m.role == role]


def test_init_scales_by_role_at_four_times_the_base_width() -> None:
    # Same seed, same widths: muP's init is SP's with the output weight and hidden/output biases x sqrt(m).
    sp = build("transformer", dim=128)
    mu = build("transformer", dim=128, linear=mup(base_width=32))
    for role in ("patch", "qkv", "attn_out", "ffn_in"):
        for a, b in zip(linears(sp, role), linears(mu, role), strict=True):
            assert torch.equal(a.weight, b.weight), role
            factor = 1.0 if role == "patch" else 2.0
            torch.testing.assert_close(b.bias, a.bias * factor)
    (head_sp,), (head_mu,) = linears(sp, "head"), linears(mu, "head")
    torch.testing.assert_close(head_mu.weight, head_sp.weight * 2.0)
    torch.testing.assert_close(head_mu.bias, head_sp.bias * 2.0)
    # The output layer computes F.linear(x * output_mult / m, W, b).
    features = torch.randn(5, 128)
    torch.testing.assert_close(head_mu(features), F.linear(features / 4, head_mu.weight, head_mu.bias))


def test_output_mult_and_mlp_first_layer_is_an_input_layer() -> None:
    net = build("mlp", hidden_dims=[256, 128], linear=mup(base_width=64, output_mult=2.0))
    first, second = linears(net, "hidden")
    assert (first.mup_class, second.mup_class) == ("input", "hidden")
    (head,) = linears(net, "head")
    assert head.input_scale == pytest.approx(2.0 / 4)


@pytest.mark.parametrize("fused", [False, True])
def test_attention_scale_and_zero_query(fused: bool) -> None:
    net = build("transformer", dim=128, num_heads=4, fused_qkv=fused, linear=mup(base_width=32, zero_query=True))
    attention = net.blocks[0].attn
    assert attention.scale == pytest.approx(math.sqrt(32 / 4) / 32)  # sqrt(d_base) / d, d = 128 / 4 heads
    q_weight = attention.qkv_proj.weight[:128] if fused else attention.q_proj.weight
    kv_weight = attention.qkv_proj.weight[128:] if fused else attention.k_proj.weight
    assert bool((q_weight == 0).all()) and bool((kv_weight != 0).any())
    sp = build("transformer", dim=128, num_heads=4, fused_qkv=fused)
    assert sp.blocks[0].attn.scale is None  # SDPA's own 1/sqrt(d)


def test_attention_uses_the_mup_scale() -> None:
    net = build("transformer", dim=64, num_heads=2, linear=mup(base_width=16)).eval()
    attention = net.blocks[0].attn
    x = torch.randn(2, 5, 64)
    q, k, v = (attention._split_heads(t) for t in attention._project_qkv(x))
    # head dim d = 32, m = 64 / 16 = 4, d_base = 8: logits times sqrt(8) / 32 (SP would be 1 / sqrt(32))
    weights = torch.softmax(q @ k.transpose(-1, -2) * math.sqrt(8) / 32, dim=-1)
    expected = attention.out_proj((weights @ v).transpose(1, 2).reshape(2, 5, 64))
    torch.testing.assert_close(attention(x), expected, rtol=1e-5, atol=1e-6)


def test_zero_readout_zeroes_the_head_but_not_a_tied_embedding() -> None:
    net = build("mlp", linear=mup(zero_readout=True))
    (head,) = linears(net, "head")
    assert bool((head.weight == 0).all()) and bool((head.bias == 0).all())
    lm = build("lm", linear=mup(base_width=16, zero_readout=True))
    assert lm.tied and bool((lm.token_embedding.weight != 0).any())
    assert lm.lm_head.proj.input_scale == pytest.approx(1 / 4)


def groups_by_parameter(optimizer: torch.optim.Optimizer) -> dict[int, dict]:
    return {id(p): g for g in optimizer.param_groups for p in g["params"]}


@pytest.mark.parametrize("kind", ["adamw", "sgd"])
def test_lr_multipliers_by_role_for_adam_and_sgd(kind: str) -> None:
    net = build("transformer", dim=128, linear=mup(base_width=32))  # m = 4
    cls = torch.optim.AdamW if kind == "adamw" else torch.optim.SGD
    groups = groups_by_parameter(build_optimizer(net, functools.partial(cls, lr=LR, weight_decay=WD)))
    block = net.blocks[0]
    adam = kind == "adamw"
    expected = {  # parameter: (lr, weight decay)
        "hidden weight": (block.ffn.in_proj.weight, LR / 4 if adam else LR, WD * 4 if adam else WD),
        "hidden bias": (block.ffn.in_proj.bias, LR if adam else LR * 4, 0.0),
        "input weight": (net.patch_embedding.proj.weight, LR if adam else LR * 4, WD if adam else WD / 4),
        "output weight": (net.head.layers[0].weight, LR if adam else LR * 4, WD if adam else WD / 4),
        "output bias": (net.head.layers[0].bias, LR, 0.0),
        "layer norm": (block.norm1.weight, LR if adam else LR * 4, 0.0),
        "position embedding": (net.position_embedding, LR if adam else LR * 4, WD if adam else WD / 4),
    }
    for name, (parameter, lr, wd) in expected.items():
        group = groups[id(parameter)]
        assert group["lr"] == pytest.approx(lr), name
        assert group["weight_decay"] == pytest.approx(wd), name


def test_tied_lm_head_follows_the_embedding_rule() -> None:
    lm = build("lm", linear=mup(base_width=16))
    groups = groups_by_parameter(build_optimizer(lm, functools.partial(torch.optim.SGD, lr=LR)))
    assert groups[id(lm.token_embedding.weight)]["role"] == "other"
    assert groups[id(lm.token_embedding.weight)]["lr"] == pytest.approx(LR * 4)


def test_role_lr_mult_without_mup_and_plain_groups_otherwise() -> None:
    net = build("mlp")
    plain = build_optimizer(net, functools.partial(torch.optim.AdamW, lr=LR))
    assert len(plain.param_groups) == 2 and "role" not in plain.param_groups[0]  # as before (old checkpoints)
    optimizer = build_optimizer(net, functools.partial(torch.optim.AdamW, lr=LR, roles={"head": {"lr_mult": 0.1}}))
    groups = groups_by_parameter(optimizer)
    assert groups[id(net.head.layers[0].weight)]["lr"] == pytest.approx(LR * 0.1)
    assert groups[id(net.features[1].weight)]["lr"] == pytest.approx(LR)


def test_frozen_parameters_stay_out() -> None:
    net = build("mlp", linear=mup(base_width=32))
    net.features[1].weight.requires_grad_(False)
    optimizer = build_optimizer(net, functools.partial(torch.optim.AdamW, lr=LR))
    assert id(net.features[1].weight) not in groups_by_parameter(optimizer)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: create_model("cnn", linear=mup()), "needs the model's width"),
        (lambda: create_model("mlp", linear={"init": "xavier_uniform", **mup()}), "fan_in"),
        (lambda: create_model("cnn", head_hidden_dims=[32], linear={**mup(), "width": 64}), "one-Linear head"),
        (lambda: create_model("mlp", linear=mup(base_width=0)), "base_width"),
        (lambda: create_model("mlp", linear={"mup": {"base_widht": 64}}), "base_width"),
        (
            lambda: build_optimizer(build("mlp", linear=mup(32)), functools.partial(torch.optim.RMSprop, lr=LR)),
            "SGD and Adam",
        ),
        (
            lambda: build_optimizer(build("mlp"), functools.partial(torch.optim.SGD, lr=LR, roles={"haed": {}})),
            "Did you mean head",
        ),
        (
            lambda: build_optimizer(
                build("mlp"), functools.partial(torch.optim.SGD, lr=LR, roles={"head": {"lr_mult": -1}})
            ),
            "lr_mult=-1",
        ),
    ],
)
def test_bad_values_are_refused_with_the_fix(make, message: str) -> None:
    with pytest.raises(UserValueError, match=message):
        make()


# --- configs --------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["mlp", "transformer", "mixer", "lm"])
def test_linear_mup_config_builds_and_trains_by_role(compose_train, model: str) -> None:
    cfg = compose_train([f"model={model}", "linear=mup", "linear.mup.base_width=16", "optimizer.roles.qkv.lr_mult=0.5"])
    task = instantiate(cfg.model)
    optimizer = build_optimizer(task.net, task.optimizer_factory)
    assert any(group["width_mult"] > 1 for group in optimizer.param_groups)


@pytest.mark.parametrize("model", ["cnn", "autoencoder"])
def test_linear_mup_refuses_models_without_a_width(compose_train, model: str) -> None:
    cfg = compose_train([f"model={model}", "linear=mup"])
    with pytest.raises(InstantiationException, match="width"):
        instantiate(cfg.model)


def test_optimizer_roles_typo_is_refused_at_composition(compose_train) -> None:
    with pytest.raises(ConfigCompositionException):
        compose_train(["optimizer.roles.haed.lr_mult=0.1"])


# --- coordinate check -----------------------------------------------------------------------------


def test_coord_check_mup_is_flat_and_sp_output_grows(tmp_path) -> None:
    from linzoo.run.coord_check import main

    out = tmp_path / "cc.json"
    result = main(["model=mlp", "widths=[64,256,1024]", "steps=3", "seeds=[0]", f"out={out}"])
    assert out.is_file() and (tmp_path / "cc_sp.png").is_file() and (tmp_path / "cc_mup.png").is_file()
    assert result["steps"] == 3 and set(result["mup"]) == {"hidden", "head"}
    for role, by_width in result["mup"].items():
        values = [by_width[w] for w in sorted(by_width)]
        assert max(values) / min(values) <= 2.0, (role, values)
    sp_head = result["sp"]["head"]
    assert sp_head[1024] > 2.0 * sp_head[64], sp_head


@pytest.mark.parametrize("model", ["transformer", "mixer"])
def test_coord_check_runs_for_transformer_and_mixer(tmp_path, model: str) -> None:
    from linzoo.run.coord_check import coord_check

    result = coord_check(model=model, widths=[32, 64], steps=2, seeds=[0], overrides=["model.net.depth=1"])
    roles = {"patch", "head", *(("q", "k", "v", "attn_out", "ffn_in", "ffn_out") if model == "transformer" else ())}
    roles |= {"token_mix", "channel_mix"} if model == "mixer" else set()
    assert set(result["mup"]) == set(result["sp"]) == roles
    assert all(len(steps) == 2 for steps in result["by_step"]["mup"]["head"].values())
    # at the base width (the narrowest) muP is SP: the same numbers
    assert result["mup"]["head"][32] == result["sp"]["head"][32]


def test_optimizer_roles_of_absent_roles_are_warned_about(caplog) -> None:
    from linzoo.run.validation import warn_unused_role_overrides

    net = build("mlp")
    optimizer = {"roles": {"qkv": {"lr_mult": 0.5}, "head": {"lr_mult": 2.0}, "patch": {"lr_mult": None}}}
    assert warn_unused_role_overrides(optimizer, net, setting="optimizer.roles") == ["qkv"]
    assert "optimizer.roles.qkv.*" in caplog.text


def test_coord_check_command_reports_a_bad_model_in_one_line(monkeypatch, capsys) -> None:
    from linzoo.run import cli

    monkeypatch.setattr("sys.argv", ["coord_check.py", "model=cnn"])
    with pytest.raises(SystemExit) as exit_info:
        cli.coord_check()
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "Error: coord_check: model=cnn has no width muP can scale; it checks mlp, transformer, mixer. Fix: model=mlp"
    )
