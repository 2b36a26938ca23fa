"""LoRA by role (issue 21, points 3 and 4): sub-roles q/k/v, fresh adapters, merging, freezing,
parity with peft's LoRA, checkpoints and export."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import linzoo
from linzoo.checkpoint import build_net
from linzoo.common.errors import ConfigError
from linzoo.layers import Attention, LinearSpec, make_linear
from linzoo.layers.lora import LoRA
from linzoo.models import create_model
from linzoo.models.adapters import (
    adapted_layers,
    adapter_parameters,
    add_adapters,
    lora_options,
    merge_adapters,
    train_only_adapters,
)
from linzoo.tasks.optim import weight_decay_groups

TINY_NETS = {  # every model, tiny; the transformer with fused and separate Q/K/V
    "mlp": ("mlp", {"hidden_dims": [16]}),
    "cnn": ("cnn", {"channels": [4, 8]}),
    "transformer": ("transformer", {"dim": 16, "depth": 1, "num_heads": 2, "patch_size": 7}),
    "transformer_fused": ("transformer", {"dim": 16, "depth": 1, "num_heads": 2, "patch_size": 7, "fused_qkv": True}),
    "mixer": ("mixer", {"dim": 16, "depth": 1, "patch_size": 7}),
    "autoencoder": ("autoencoder", {"hidden_dims": [16], "latent_dim": 4}),
    "lm": ("lm", {"vocab_size": 3, "seq_len": 49, "dim": 16, "depth": 1}),
}
LORA = {"kind": "lora", "rank": 4, "alpha": 8.0, "dropout": 0.0, "roles": "all"}


def inputs_for(name: str, batch: int = 3) -> torch.Tensor:
    return torch.randint(0, 3, (batch, 49)) if name == "lm" else torch.rand(batch, 1, 28, 28)


def randomize_adapters(net: nn.Module) -> None:
    """Give every B non-zero values (a fresh B is zero), as training would."""
    with torch.no_grad():
        for layer in adapted_layers(net).values():
            layer.adapter.lora_B.normal_(std=0.1)


# --- sub-roles q, k, v -------------------------------------------------------------


def test_sub_role_overrides_initialise_their_blocks_fused_and_separate() -> None:
    spec = {
        "roles": {
            "qkv": {"init": "zeros"},  # q, k, v inherit it ...
            "q": {"init": "normal", "std": 0.5},  # ... unless they override it
            "v": {"bias_init": "constant", "bias_value": 0.25},
        }
    }
    fused = Attention(8, 2, fused_qkv=True, linear=spec)
    separate = Attention(8, 2, fused_qkv=False, linear=spec)
    q, k, v = fused.qkv_proj.weight.chunk(3)
    bq, bk, bv = fused.qkv_proj.bias.chunk(3)
    for weights, biases in (
        ((q, k, v), (bq, bk, bv)),
        (
            (separate.q_proj.weight, separate.k_proj.weight, separate.v_proj.weight),
            (separate.q_proj.bias, separate.k_proj.bias, separate.v_proj.bias),
        ),
    ):
        assert 0.2 < weights[0].std() < 1.0  # normal(0, 0.5)
        assert torch.equal(weights[1], torch.zeros(8, 8)) and torch.equal(weights[2], torch.zeros(8, 8))
        assert torch.equal(biases[2], torch.full((8,), 0.25))
        assert not torch.equal(biases[0], torch.full((8,), 0.25))
    assert fused.qkv_proj.sub_roles == ("q", "k", "v") and separate.k_proj.sub_roles == ("k",)
    assert separate.k_proj.role == fused.qkv_proj.role == "qkv"


def test_sub_roles_without_overrides_draw_the_same_numbers_as_before() -> None:
    torch.manual_seed(0)
    chunked = make_linear(8, 24, role="qkv", chunks=3)
    torch.manual_seed(0)
    named = make_linear(8, 24, role="qkv", sub_roles=("q", "k", "v"))
    torch.manual_seed(0)
    plain = nn.Linear(8, 8)
    torch.manual_seed(0)
    q = make_linear(8, 8, role="qkv", sub_roles=("q",))
    assert torch.equal(chunked.weight, named.weight) and torch.equal(chunked.bias, named.bias)
    assert torch.equal(plain.weight, q.weight) and torch.equal(plain.bias, q.bias)


def test_sub_role_mistakes_are_clear() -> None:
    with pytest.raises(ValueError, match="Did you mean q[?]"):
        LinearSpec(roles={"qq": {"init": "zeros"}})
    with pytest.raises(ValueError, match="fused 'qkv' projection are one Linear with one bias"):
        Attention(8, 2, fused_qkv=True, linear={"roles": {"k": {"bias": False}}})
    separate = Attention(8, 2, fused_qkv=False, linear={"roles": {"k": {"bias": False}}})
    assert separate.k_proj.bias is None and separate.q_proj.bias is not None


# --- the adapter ---------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(TINY_NETS))
def test_a_fresh_adapter_leaves_every_model_bit_exact_and_merging_keeps_outputs(name: str) -> None:
    model, kwargs = TINY_NETS[name]
    torch.manual_seed(0)
    net = create_model(model, **kwargs).eval()
    x = inputs_for(model)
    with torch.no_grad():
        before = net(x)
        add_adapters(net, LORA)
        assert adapted_layers(net)
        assert torch.equal(net(x), before)  # B = 0: exact zeros added
        randomize_adapters(net)
        adapted = net(x)
        assert not torch.allclose(adapted, before, atol=1e-4)
        merge_adapters(net)
        assert not adapted_layers(net) and not any("lora" in key for key in net.state_dict())
        torch.testing.assert_close(net(x), adapted, atol=1e-5, rtol=0)


def test_models_without_heads_or_with_tied_heads_take_the_rule() -> None:
    lm = create_model("lm", vocab_size=3, seq_len=49, dim=16, depth=1)
    add_adapters(lm, LORA)
    assert "head.proj" not in adapted_layers(lm)  # tied to the token embedding: merging would change it
    cnn = create_model("cnn", channels=[4, 8])
    with pytest.raises(ValueError, match="selects no Linear of CNN.*Roles it builds: head"):
        add_adapters(cnn, {**LORA, "roles": "all_but_head"})
    with pytest.raises(ValueError, match="already has adapters"):
        add_adapters(lm, LORA)
    with pytest.raises(ValueError, match="share their weight"):
        add_adapters(create_model("lm", vocab_size=3, seq_len=49, dim=16, depth=1), {**LORA, "roles": ["lm_head"]})


def test_lora_on_q_and_v_of_a_fused_projection_leaves_the_k_rows_alone() -> None:
    torch.manual_seed(0)
    attention = Attention(8, 2, fused_qkv=True)
    add_adapters(attention, {**LORA, "roles": ["q", "v"]})
    lora = attention.qkv_proj.adapter
    assert lora.selected == (0, 2) and lora.lora_A.shape == (2, 4, 8) and lora.lora_B.shape == (2, 8, 4)
    randomize_adapters(attention)
    delta = lora.delta_weight()
    assert torch.equal(delta[8:16], torch.zeros(8, 8)) and delta[:8].abs().sum() > 0 and delta[16:].abs().sum() > 0
    x = torch.randn(2, 5, 8)
    update = lora(x)
    assert torch.equal(update[..., 8:16], torch.zeros(2, 5, 8))
    expected_q = 2.0 * x @ lora.lora_A[0].T @ lora.lora_B[0].T  # s = alpha / rank = 8 / 4
    torch.testing.assert_close(update[..., :8], expected_q)


def test_fused_and_separate_are_the_same_lora() -> None:
    """LoRA on [q, v] of a fused projection equals LoRA on separate q and v projections with the fused
    weight's blocks and the same A and B (independent A per block: not one A shared by q and v)."""
    torch.manual_seed(0)
    fused = Attention(8, 2, fused_qkv=True)
    separate = Attention(8, 2, fused_qkv=False)
    separate.load_state_dict(fused_to_separate(fused.state_dict()))
    add_adapters(fused, {**LORA, "roles": ["q", "v"]})
    add_adapters(separate, {**LORA, "roles": ["q", "v"]})
    randomize_adapters(fused)
    with torch.no_grad():
        for index, projection in ((0, separate.q_proj), (1, separate.v_proj)):
            projection.adapter.lora_A.copy_(fused.qkv_proj.adapter.lora_A[index : index + 1])
            projection.adapter.lora_B.copy_(fused.qkv_proj.adapter.lora_B[index : index + 1])
    x = torch.randn(2, 5, 8)
    torch.testing.assert_close(fused(x), separate(x), atol=1e-6, rtol=0)


def fused_to_separate(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A state dict with ``*qkv_proj.{weight,bias}`` split into ``*{q,k,v}_proj.{weight,bias}``."""
    split = {}
    for key, value in state.items():
        if "qkv_proj." in key:
            for letter, block in zip("qkv", value.chunk(3), strict=True):
                split[key.replace("qkv_proj.", f"{letter}_proj.")] = block.clone()
        else:
            split[key] = value
    return split


def test_only_the_adapters_and_the_head_train_and_the_optimizer_holds_nothing_else() -> None:
    net = create_model("transformer", dim=16, depth=2, num_heads=2, patch_size=7, fused_qkv=True)
    add_adapters(net, {**LORA, "roles": ["q", "v"]})
    train_only_adapters(net)
    trainable = {name for name, parameter in net.named_parameters() if parameter.requires_grad}
    expected = {f"blocks.{i}.attn.qkv_proj.adapter.lora_{m}" for i in range(2) for m in "AB"}
    assert trainable == expected | {"head.layers.0.weight", "head.layers.0.bias"}
    optimizer = torch.optim.AdamW(weight_decay_groups(net))
    in_optimizer = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert in_optimizer == {id(p) for p in net.parameters() if p.requires_grad}
    assert len(in_optimizer) == len(adapter_parameters(net)) + 2  # + head weight and bias


def test_bad_lora_settings_are_one_clear_error() -> None:
    with pytest.raises(
        ConfigError,
        match=r"adapter.roles=\[q,atn_out\]: .*did you mean attn_out\?.*Fix: 'adapter.roles=\[q,attn_out\]'",
    ):
        lora_options({"roles": ["q", "atn_out"]})
    with pytest.raises(ConfigError, match=r"adapter.rank=0"):
        lora_options({"rank": 0})
    with pytest.raises(ConfigError, match=r"adapter.rnak=4: .*Did you mean adapter.rank\?"):
        lora_options({"rnak": 4})
    with pytest.raises(ConfigError, match=r"adapter.dropout=1"):
        lora_options({"dropout": 1.0})
    assert lora_options({"roles": "all_but_head"}).roles == ("all_but_head",)


def test_lora_layer_shapes_and_scaling() -> None:
    lora = LoRA(6, 12, blocks=3, selected=(1,), rank=2, alpha=6.0)
    assert lora.scaling == 3.0 and lora.lora_A.shape == (1, 2, 6) and lora.lora_B.shape == (1, 4, 2)
    assert torch.equal(lora(torch.randn(5, 6)), torch.zeros(5, 12))
    bound = 1 / 6**0.5  # kaiming_uniform(a=sqrt(5)) on [rank, in]: U(-1/sqrt(in), 1/sqrt(in))
    assert lora.lora_A.abs().max() <= bound


# --- peft parity ------------------------------------------------------------------------


def with_peft(net: nn.Module, targets: list[str], *, rank: int, alpha: float) -> nn.Module:
    """peft's LoRA (r=rank, lora_alpha=alpha, no dropout) on the modules named ``targets`` of a copy of ``net``."""
    peft = pytest.importorskip("peft")
    config = peft.LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=0.0, target_modules=targets)
    return peft.inject_adapter_in_model(config, copy.deepcopy(net))


def assert_same_forward_and_grads(ours: nn.Module, theirs: nn.Module, pairs: list[tuple], x: torch.Tensor) -> None:
    """Same output, same gradients of every (our A_c, our B_c, their A, their B), same input gradient."""
    x_ours, x_theirs = x.clone().requires_grad_(), x.clone().requires_grad_()
    out_ours, out_theirs = ours(x_ours), theirs(x_theirs)
    torch.testing.assert_close(out_ours, out_theirs, atol=1e-6, rtol=1e-5)
    weights = torch.randn_like(out_ours)
    (out_ours * weights).sum().backward()
    (out_theirs * weights).sum().backward()
    torch.testing.assert_close(x_ours.grad, x_theirs.grad, atol=1e-6, rtol=1e-5)
    for lora, index, peft_linear in pairs:
        torch.testing.assert_close(
            lora.lora_A.grad[index], peft_linear.lora_A["default"].weight.grad, atol=1e-6, rtol=1e-5
        )
        torch.testing.assert_close(
            lora.lora_B.grad[index], peft_linear.lora_B["default"].weight.grad, atol=1e-6, rtol=1e-5
        )


def copy_into_peft(lora: LoRA, index: int, peft_linear: nn.Module) -> None:
    with torch.no_grad():
        peft_linear.lora_A["default"].weight.copy_(lora.lora_A[index])
        peft_linear.lora_B["default"].weight.copy_(lora.lora_B[index])


@pytest.mark.parametrize("roles", [["q", "v"], ["qkv", "attn_out", "ffn_in", "ffn_out"]])
def test_lora_on_separate_projections_equals_peft(roles: list[str]) -> None:
    torch.manual_seed(0)
    net = create_model("transformer", dim=16, depth=2, num_heads=2, patch_size=7)
    names = {"q": ["q_proj"], "v": ["v_proj"], "qkv": ["q_proj", "k_proj", "v_proj"], "attn_out": ["attn.out_proj"]}
    names |= {"ffn_in": ["ffn.in_proj"], "ffn_out": ["ffn.out_proj"]}  # peft needs module names
    targets = [suffix for role in roles for suffix in names[role]]
    theirs = with_peft(net, targets, rank=4, alpha=8.0)
    ours = add_adapters(net, {**LORA, "roles": roles})
    randomize_adapters(ours)
    pairs = []
    for name, layer in adapted_layers(ours).items():
        peft_linear = theirs.get_submodule(name)
        assert peft_linear.scaling["default"] == layer.adapter.scaling == 2.0
        copy_into_peft(layer.adapter, 0, peft_linear)
        pairs.append((layer.adapter, 0, peft_linear))
    assert len(pairs) == 2 * len(targets)  # two blocks
    assert_same_forward_and_grads(ours, theirs, pairs, torch.rand(3, 1, 28, 28))


def test_lora_on_q_and_v_of_a_fused_projection_equals_peft_on_its_split_blocks() -> None:
    """peft cannot put LoRA on q and v of a fused projection (peft #1705); on separate q/k/v
    Linears holding the fused weight's blocks it can, and the two must agree."""
    torch.manual_seed(0)
    kwargs = {"dim": 16, "depth": 2, "num_heads": 2, "patch_size": 7}
    fused = create_model("transformer", fused_qkv=True, **kwargs)
    split = create_model("transformer", fused_qkv=False, **kwargs)
    split.load_state_dict(fused_to_separate(fused.state_dict()))
    theirs = with_peft(split, ["q_proj", "v_proj"], rank=4, alpha=8.0)
    ours = add_adapters(fused, {**LORA, "roles": ["q", "v"]})
    randomize_adapters(ours)
    pairs = []
    for name, layer in adapted_layers(ours).items():
        for index, letter in enumerate("qv"):
            peft_linear = theirs.get_submodule(name.replace("qkv_proj", f"{letter}_proj"))
            copy_into_peft(layer.adapter, index, peft_linear)
            pairs.append((layer.adapter, index, peft_linear))
    assert len(pairs) == 4
    assert_same_forward_and_grads(ours, theirs, pairs, torch.rand(3, 1, 28, 28))
    # Merged, both give the same plain weights (peft merges its own way: W += B A * scaling).
    from peft.tuners.lora import Linear as PeftLinear

    for module in theirs.modules():
        if isinstance(module, PeftLinear):
            module.merge()
    merged_theirs = {k.replace("base_layer.", ""): v for k, v in theirs.state_dict().items() if "lora_" not in k}
    merged_ours = fused_to_separate(merge_adapters(ours).state_dict())
    assert set(merged_ours) == set(merged_theirs)
    for key, value in merged_ours.items():
        torch.testing.assert_close(value, merged_theirs[key], atol=1e-6, rtol=1e-5)


# --- saved, loaded, exported ---------------------------------------------------------


def test_create_model_takes_an_adapter_and_a_saved_net_config_rebuilds_it() -> None:
    net = linzoo.create_model(
        "transformer", dim=16, depth=1, num_heads=2, patch_size=7, adapter={**LORA, "roles": ["q", "v"]}
    )
    assert set(adapted_layers(net)) == {"blocks.0.attn.q_proj", "blocks.0.attn.v_proj"}
    config = {"_target_": "linzoo.models.VisionTransformer", "dim": 16, "depth": 1, "num_heads": 2, "patch_size": 7}
    rebuilt = build_net({**config, "adapter": {**LORA, "roles": ["q", "v"]}})
    assert set(rebuilt.state_dict()) == set(net.state_dict())


def test_training_with_lora_saves_unmerged_adapters_that_load_and_export_merged(fake_mnist_root, tmp_path) -> None:
    from linzoo.checkpoint import CONFIG_KEY, read_checkpoint
    from linzoo.tools.export import export_checkpoint
    from trained import train_run

    run = train_run(
        tmp_path / "run",
        fake_mnist_root,
        "transformer",
        "model.net.fused_qkv=true",
        "adapter=lora",
        "adapter.rank=2",
        "adapter.alpha=4",
        "adapter.dropout=0.1",
        "adapter.roles=[q,v]",
    )
    checkpoint = read_checkpoint(run / "checkpoints" / "last.ckpt")
    assert checkpoint[CONFIG_KEY]["model"]["net"]["adapter"] == {
        "kind": "lora",
        "rank": 2,
        "alpha": 4.0,
        "dropout": 0.1,
        "roles": ["q", "v"],
    }
    state = checkpoint["state_dict"]
    assert "net.blocks.0.attn.qkv_proj.adapter.lora_A" in state
    assert torch.count_nonzero(state["net.blocks.0.attn.qkv_proj.adapter.lora_B"]) > 0  # it trained
    # Frozen parameters got no optimizer state: AdamW holds A and B and the head's weight and bias.
    assert len(checkpoint["optimizer_states"][0]["state"]) == 4
    net = linzoo.load(run)
    assert set(adapted_layers(net)) == {"blocks.0.attn.qkv_proj"}
    assert adapted_layers(net)["blocks.0.attn.qkv_proj"].adapter.selected == (0, 2)
    result = export_checkpoint(
        ckpt_path=run, format="safetensors", out=tmp_path / "merged.safetensors", run_dir=tmp_path
    )
    exported = linzoo.load(result.path)
    assert not adapted_layers(exported)
    x = torch.rand(4, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(exported(x), net(x), atol=1e-5, rtol=0)


def test_sub_role_overrides_reach_the_net_through_the_configs(compose_train) -> None:
    from linzoo.run.train import instantiate_task, plan_run

    cfg = compose_train(["model=transformer", "model.net.fused_qkv=true", "linear.roles.k.init=zeros"])
    net = instantiate_task(plan_run(cfg).build_config).net
    q, k, v = net.blocks[0].attn.qkv_proj.weight.chunk(3)
    assert torch.count_nonzero(k) == 0 and torch.count_nonzero(q) > 0 and torch.count_nonzero(v) > 0


def test_train_config_with_a_misspelled_adapter_role_is_refused(compose_train) -> None:
    from linzoo.run.validation import check_train_config

    cfg = compose_train(["model=transformer", "adapter=lora", "adapter.roles=[q,vv]"])
    with pytest.raises(ConfigError, match="did you mean v[?]"):
        check_train_config(cfg)
    cfg = compose_train(["model=transformer", "adapter=lora", "adapter.roles=all_but_head", "adapter.rank=16"])
    check_train_config(cfg)


def test_the_python_blocks_of_the_lora_section_of_docs_finetune_run() -> None:
    from helpers import ROOT

    text = (ROOT / "docs" / "finetune.md").read_text()
    section = text.split("\n## LoRA\n", 1)[1].split("\n## ", 1)[0]
    blocks = [block.split("```", 1)[0] for block in section.split("```python\n")[1:]]
    assert blocks
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, "docs/finetune.md", "exec"), namespace)


def test_a_saved_adapter_config_names_no_code() -> None:
    """The adapter is rebuilt from plain values through the registry: a _target_ in it is refused."""
    from linzoo.checkpoint.nets import check_build_config

    net = {"_target_": "linzoo.models.MLP", "hidden_dims": [8], "adapter": {"_target_": "os.system", "rank": 2}}
    with pytest.raises(ValueError, match=r"model.net.adapter._target_=.*names code to build"):
        check_build_config({"model": {"net": net}}, "evil.ckpt")
    with pytest.raises(ConfigError, match="adapter._target_"):
        build_net({"_target_": "linzoo.models.MLP", "hidden_dims": [8], "adapter": {"_target_": "os.system"}})


def test_a_checkpoint_from_before_the_sub_role_slots_resumes() -> None:
    """Configs now hold null override slots for q, k and v; a checkpoint without them is the same config."""
    from linzoo.run.resume import config_differences

    roles = {"qkv": {"init": None}, "q": {"init": None, "std": None}}
    current = {"model": {"net": {"_target_": "linzoo.models.VisionTransformer", "linear": {"roles": roles}}}}
    saved = copy.deepcopy(current)
    del saved["model"]["net"]["linear"]["roles"]["q"]
    assert config_differences(saved, current) == []
    current["model"]["net"]["linear"]["roles"]["q"]["init"] = "zeros"  # a real override still counts
    assert config_differences(saved, current) == [("linear.roles.q.init", "<absent>", "zeros")]
