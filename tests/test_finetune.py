"""Issue 21, points 1-2: a new run from trained weights (init_from=), and what trains, chosen by role."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from hydra.errors import HydraException
from torch import nn

import linzoo
from helpers import MODELS, ROOT, SHORT, data_overrides, tiny
from linzoo.checkpoint import read_checkpoint
from linzoo.checkpoint.init_from import load_init_from, read_init_from
from linzoo.common.errors import UserValueError
from linzoo.layers.linear import ROLES, make_linear
from linzoo.models import create_model
from linzoo.models.transfer import (
    frozen_norm_layers,
    load_transferable,
    parameter_owners,
    resolve_roles,
    set_trainable,
)
from linzoo.run.errors import user_message
from linzoo.run.evaluate import evaluate
from linzoo.run.train import train
from linzoo.run.validation import check_train_config
from linzoo.tasks import Classifier
from linzoo.tools.export import export_checkpoint
from linzoo.tools.predict import predict_checkpoint

SMALL = {  # the tiny nets of tests/helpers.py, as create_model arguments
    "mlp": {"hidden_dims": [32]},
    "cnn": {"channels": [8, 16]},
    "transformer": {"dim": 16, "depth": 1, "num_heads": 2, "patch_size": 7},
    "mixer": {"dim": 16, "depth": 1, "patch_size": 7},
    "autoencoder": {"hidden_dims": [32], "latent_dim": 8},
    "lm": {"seq_len": 49, "dim": 16, "depth": 1},
}


def roles_of(net: nn.Module) -> set[str]:
    return {m.role for m in net.modules() if isinstance(getattr(m, "role", None), str)}


def expected_trainable(net: nn.Module, roles: set[str], other: bool) -> set[int]:
    """Written out independently of linzoo.models.transfer: a parameter trains when a module that
    holds it directly has a chosen role, or (with ``other``) has no role."""
    chosen = set()
    for module in net.modules():
        role = getattr(module, "role", None)
        if (isinstance(role, str) and role in roles) or (not isinstance(role, str) and other):
            chosen |= {id(p) for p in module.parameters(recurse=False)}
    return chosen


# ------------------------------------------------------------------ choosing what trains, by role
@pytest.mark.parametrize("model", MODELS)
def test_each_role_alone_trains_exactly_its_linears_on_every_model(model: str) -> None:
    net = create_model(model, **SMALL[model])
    assert set_trainable(net).trainable == sum(p.numel() for p in net.parameters())  # default: everything
    assert all(p.requires_grad for p in net.parameters())
    for role in sorted(roles_of(net)):
        summary = set_trainable(net, roles=[role])  # auto: the other parameters freeze
        trained = {id(p) for p in net.parameters() if p.requires_grad}
        assert trained == expected_trainable(net, {role}, other=False), role
        assert summary.trained_roles == [role] and role not in summary.frozen_roles
        assert summary.trainable == sum(p.numel() for p in net.parameters() if p.requires_grad)
        with_other = set_trainable(net, roles=[role], train_other=True)
        assert {id(p) for p in net.parameters() if p.requires_grad} == expected_trainable(net, {role}, other=True)
        assert with_other.trainable > summary.trainable or model in ("mlp", "autoencoder")  # these have no other


@pytest.mark.parametrize("model", ["transformer", "cnn", "mixer"])
def test_a_linear_probe_trains_only_the_head(model: str) -> None:
    net = create_model(model, **SMALL[model])
    summary = set_trainable(net, roles=["head"])
    names = [name for name, p in net.named_parameters() if p.requires_grad]
    assert names and all(name.startswith("head.") for name in names)
    assert summary.trainable == sum(p.numel() for p in net.head.parameters()) < summary.total
    net(torch.rand(2, 1, 28, 28)).sum().backward()
    assert all(p.grad is None for name, p in net.named_parameters() if not name.startswith("head."))
    assert "Parameters: " in summary.line() and " trainable / " in summary.line()


def test_a_set_of_roles_and_the_switch_for_the_other_parameters() -> None:
    net = create_model("transformer", **SMALL["transformer"])
    set_trainable(net, roles=["head", "attn_out", "ffn_out"])
    frozen = {name for name, p in net.named_parameters() if not p.requires_grad}
    assert {"position_embedding", "norm.weight", "blocks.0.norm1.weight", "patch_embedding.proj.weight"} <= frozen
    for module in net.modules():
        if isinstance(getattr(module, "role", None), str):
            assert module.weight.requires_grad == (module.role in ("head", "attn_out", "ffn_out")), module.role
    set_trainable(net, roles=["head", "attn_out", "ffn_out"], train_other=True)
    assert net.position_embedding.requires_grad and net.norm.weight.requires_grad
    set_trainable(net, roles="all", train_other=False)  # every Linear, no norm or embedding
    assert not net.position_embedding.requires_grad and net.patch_embedding.proj.weight.requires_grad
    assert set(resolve_roles("all_but_head")) == set(ROLES) - {"head", "lm_head"}


def test_tied_weights_train_when_any_of_their_owners_is_chosen() -> None:
    lm = create_model("lm", **SMALL["lm"])
    set_trainable(lm, roles=["lm_head"])  # the LM head's weight is the token embedding's Parameter
    assert lm.token_embedding.weight.requires_grad and not lm.position_embedding.weight.requires_grad
    autoencoder = create_model("autoencoder", tied=True, **SMALL["autoencoder"])
    set_trainable(autoencoder, roles=["dec"])  # each decoder weight is an encoder weight, transposed
    assert autoencoder.encoder[1].weight.requires_grad and not autoencoder.encoder[1].bias.requires_grad


def test_an_adapter_trains_while_the_linear_it_adapts_stays_frozen() -> None:
    """The hook LoRA uses: a module with is_adapter = True trains its own parameters whatever the roles."""

    class Adapted(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.base = make_linear(8, 8, role="qkv")
            self.adapter = nn.Linear(8, 2, bias=False)
            self.adapter.is_adapter = True
            self.head = make_linear(8, 3, role="head")

    net = Adapted()
    set_trainable(net, roles=["head"])
    assert net.adapter.weight.requires_grad and net.head.weight.requires_grad
    assert not net.base.weight.requires_grad and not net.base.bias.requires_grad
    assert "adapter" in parameter_owners(net)[net.adapter.weight]


def test_nothing_to_train_and_a_misspelled_role_are_errors_naming_the_fix() -> None:
    with pytest.raises(UserValueError, match=r"leaves nothing to train in Autoencoder; its roles: dec, enc"):
        set_trainable(create_model("autoencoder", **SMALL["autoencoder"]), roles=["head"])
    with pytest.raises(UserValueError, match="Did you mean attn_out"):
        resolve_roles(["head", "atn_out"])
    with pytest.raises(UserValueError, match="Did you mean all_but_head"):
        resolve_roles("all_but_hed")


def test_the_optimizer_holds_no_frozen_parameter() -> None:
    net = create_model("transformer", **SMALL["transformer"])
    set_trainable(net, roles=["head", "attn_out"])
    task = Classifier(net=net, optimizer=lambda groups: torch.optim.AdamW(groups, lr=1e-3, weight_decay=0.1))
    optimizer = task.configure_optimizers()
    held = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert held == {id(p) for p in net.parameters() if p.requires_grad}
    decay, no_decay = optimizer.param_groups
    assert all(p.dim() >= 2 for p in decay["params"]) and all(p.dim() < 2 for p in no_decay["params"])
    net(torch.rand(4, 1, 28, 28)).sum().backward()
    optimizer.step()
    assert {id(p) for p in optimizer.state} <= held and len(optimizer.state) == len(held)


def test_frozen_batchnorm_keeps_its_statistics() -> None:
    net = create_model("cnn", **SMALL["cnn"])
    task = Classifier(net=net, optimizer=torch.optim.AdamW)
    set_trainable(net, roles=["head"])
    norms = frozen_norm_layers(net)
    assert len(norms) == 2
    task.train()
    task.on_train_epoch_start()
    before = norms[0].running_mean.clone()
    task(torch.rand(4, 1, 28, 28))
    assert not any(norm.training for norm in norms) and torch.equal(norms[0].running_mean, before)
    set_trainable(net)  # a full fine-tune: the statistics train too
    assert frozen_norm_layers(net) == []


# ------------------------------------------------------------------ init_from: reading and fitting the file
def save_net(net: nn.Module, path: Path, model: str, **kwargs: object) -> Path:
    """A minimal linzoo checkpoint of ``net`` (what scripts/train.py writes, less the training state)."""
    target = f"linzoo.models.{type(net).__name__}"
    config = {"model": {"net": {"_target_": target, **kwargs}}, "data_identity": {"dataset": "mnist"}}
    torch.save({"state_dict": {f"net.{k}": v for k, v in net.state_dict().items()}, "linzoo_config": config}, path)
    return path


def test_the_head_is_recreated_when_the_number_of_classes_differs(tmp_path: Path) -> None:
    source = create_model("transformer", num_classes=10, **SMALL["transformer"])
    file = save_net(source, tmp_path / "src.ckpt", "transformer", num_classes=10, **SMALL["transformer"])
    config = {"_target_": "linzoo.models.VisionTransformer", "num_classes": 4, **SMALL["transformer"]}
    init = read_init_from(file, net_config=config)
    assert init.recreated == {"head.layers.0.weight", "head.layers.0.bias"}
    assert init.changed == {"num_classes": (10, 4)}
    net = create_model("transformer", num_classes=4, **SMALL["transformer"])
    fresh_head = net.head.layers[0].weight.clone()
    report = load_init_from(net, init)
    assert sorted(report.reinitialised) == sorted(init.recreated) == sorted(report.skipped)
    assert torch.equal(net.head.layers[0].weight, fresh_head)
    assert torch.equal(net.blocks[0].attn.out_proj.weight, source.blocks[0].attn.out_proj.weight)
    assert "re-initialised 2 (head.layers.0.bias, head.layers.0.weight)" in report.line(file).replace(
        "head.layers.0.weight, head.layers.0.bias", "head.layers.0.bias, head.layers.0.weight"
    )
    assert init.lineage()["recreated"] == {"num_classes": {"file": 10, "now": 4}}


def test_other_input_channels_recreate_the_input_layer(tmp_path: Path) -> None:
    source = create_model("cnn", **SMALL["cnn"])
    file = save_net(source, tmp_path / "src.ckpt", "cnn", **SMALL["cnn"])
    config = {"_target_": "linzoo.models.CNN", "in_channels": 3, **SMALL["cnn"]}
    init = read_init_from(file, net_config=config)
    assert init.recreated == {"features.0.weight"}
    net = create_model("cnn", in_channels=3, **SMALL["cnn"])
    load_init_from(net, init)
    assert torch.equal(net.features[4].weight, source.features[4].weight)


@pytest.mark.parametrize(
    ("model", "kwargs", "expected"),
    [
        ("transformer", {"dim": 32}, r"This run: transformer \{'dim': 32\}; the file: transformer \{'dim': 16\}"),
        ("transformer", {"fused_qkv": True}, "fused_qkv"),
        ("mixer", {}, "it holds a 'transformer' model, not 'mixer'"),
    ],
)
def test_a_real_mismatch_is_refused_naming_both_configs(tmp_path: Path, model: str, kwargs, expected: str) -> None:
    file = save_net(
        create_model("transformer", **SMALL["transformer"]), tmp_path / "s.ckpt", "t", **SMALL["transformer"]
    )
    target = type(create_model(model, **SMALL[model])).__name__
    config = {"_target_": f"linzoo.models.{target}", **SMALL[model], **kwargs}
    with pytest.raises(UserValueError, match=expected) as error:
        read_init_from(file, net_config=config)
    assert "\n" not in str(error.value) and "Fix: " in str(error.value)


# ------------------------------------------------------------------ the config
def test_finetune_settings_are_checked(compose_train, tmp_path: Path) -> None:
    with pytest.raises(HydraException) as error:
        compose_train(["finetune.train_role=[head]"])
    assert "Did you mean finetune.train_roles" in user_message(error.value)
    with pytest.raises(UserValueError, match="Did you mean attn_out"):
        check_train_config(compose_train(["finetune.train_roles=[head,atn_out]"]))
    with pytest.raises(UserValueError, match="finetune.train_other=maybe"):
        check_train_config(compose_train(["finetune.train_other=maybe"]))
    with pytest.raises(UserValueError, match="init_from starts a new run"):
        check_train_config(compose_train([f"init_from={tmp_path}", f"ckpt_path={tmp_path}/x.ckpt"]))


# ------------------------------------------------------------------ end to end
def run(compose_train, out: Path, *overrides: str) -> dict:
    train(compose_train([*overrides], output_dir=out))
    return json.loads((out / "metrics.json").read_text())


@pytest.mark.slow
def test_init_from_a_run_dir_a_ckpt_and_a_safetensors_file(compose_train, fake_mnist_root, tmp_path) -> None:
    """MNIST -> Fashion-MNIST (both fake) with a linear probe: a new run whose checkpoint is an ordinary
    linzoo checkpoint (load, eval, predict, export), with its lineage recorded; the frozen weights stay."""
    base = [*tiny("transformer"), *data_overrides(fake_mnist_root), *SHORT]
    fashion = [*base, "data=fashion_mnist", "data.source=full"]
    source = tmp_path / "source"
    # 12 classes: the fine-tune (10 classes) re-creates the head.
    run(compose_train, source, *base, "model.num_classes=12", "test=false")
    probe = tmp_path / "probe"
    metrics = run(compose_train, probe, *fashion, f"init_from={source}", "finetune.train_roles=[head]")
    lineage = metrics["init_from"]
    assert lineage["file"].startswith(str(source)) and lineage["model"] == "transformer"
    assert lineage["data_identity"]["dataset"] == "mnist" and len(lineage["sha256"]) == 64
    assert lineage["recreated"] == {"num_classes": {"file": 12, "now": 10}}
    assert metrics["trainable_parameters"] == 16 * 10 + 10 < metrics["num_parameters"]
    checkpoint = read_checkpoint(probe / "checkpoints" / "last.ckpt")
    assert checkpoint["linzoo_config"]["init_from"] == lineage
    assert checkpoint["linzoo_config"]["finetune"] == {"train_roles": ["head"], "train_other": "auto"}
    assert checkpoint["linzoo_config"]["data_identity"]["dataset"] == "fashion_mnist"
    # Frozen: every tensor but the head's is the source's, bit for bit (BatchNorm-free ViT: no statistics).
    before, after = linzoo.load(source).state_dict(), linzoo.load(probe).state_dict()
    assert all(torch.equal(before[k], after[k]) for k in after if not k.startswith("head."))
    assert not torch.equal(before["head.layers.0.bias"][:10], after["head.layers.0.bias"])
    # The new run's checkpoint works with eval, predict and export.
    evaluated = evaluate(compose_eval_cfg(probe, tmp_path))
    assert "test/acc" in evaluated
    image = tmp_path / "digit.png"
    from PIL import Image

    Image.new("L", (28, 28)).save(image)
    assert predict_checkpoint(ckpt_path=probe, inputs=image, run_dir=tmp_path / "predict").is_file()
    exported = export_checkpoint(ckpt_path=probe, format="safetensors", run_dir=tmp_path / "export").path
    # From the .ckpt and from the exported .safetensors: a full fine-tune, lineage two deep.
    ckpt = probe / "checkpoints" / "last.ckpt"
    from_ckpt = run(compose_train, tmp_path / "from_ckpt", *fashion, f"init_from={ckpt}", "trainer.max_epochs=1")
    assert from_ckpt["init_from"]["file"] == str(ckpt.resolve())
    assert from_ckpt["trainable_parameters"] == from_ckpt["num_parameters"]
    from_file = run(compose_train, tmp_path / "from_st", *fashion, f"init_from={exported}", "trainer.max_epochs=1")
    assert from_file["init_from"]["file"] == str(Path(exported).resolve())
    assert from_file["init_from"]["init_from"]["file"] == lineage["file"]  # the source's own lineage
    assert from_file["init_from"]["data_identity"]["dataset"] == "fashion_mnist"


def test_lora_starts_from_a_plain_trained_net_with_its_outputs() -> None:
    """init_from=<plain run> adapter=lora: the file has no adapters; they start fresh (B = 0), every other
    tensor is the file's, and the adapted net computes what the source computes."""
    torch.manual_seed(0)
    source = create_model("transformer", dim=16, depth=1, num_heads=2, patch_size=7).eval()
    adapted = create_model(
        "transformer",
        dim=16,
        depth=1,
        num_heads=2,
        patch_size=7,
        adapter={"kind": "lora", "rank": 4, "roles": ["q", "v"]},
    ).eval()
    report = load_transferable(adapted, source.state_dict())
    assert sorted(report.new_adapters) == [
        f"blocks.0.attn.{name}_proj.adapter.lora_{matrix}" for name in ("q", "v") for matrix in ("A", "B")
    ]
    assert report.loaded == list(source.state_dict()) and not report.skipped and not report.reinitialised
    images = torch.rand(3, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(adapted(images), source(images))
    assert "; new adapters 4 (" in report.line("runs/mnist_vit")


@pytest.mark.slow
def test_init_from_a_plain_run_with_lora_trains_only_adapters_and_head(
    compose_train, fake_mnist_root, tmp_path
) -> None:
    base = [*tiny("transformer"), *data_overrides(fake_mnist_root), *SHORT]
    source = tmp_path / "source"
    run(compose_train, source, *base, "test=false")
    lora = ["adapter=lora", "adapter.rank=4", "adapter.roles=[q,v]"]
    metrics = run(compose_train, tmp_path / "lora", *base, f"init_from={source}", *lora)
    assert metrics["status"] == "finished"
    head, adapters = 16 * 10 + 10, 2 * (4 * 16 + 16 * 4)
    assert metrics["trainable_parameters"] == head + adapters


def compose_eval_cfg(run_dir: Path, tmp_path: Path):
    from hydra import compose, initialize_config_dir

    from linzoo.run.schemas import register_configs

    register_configs()
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        return compose(
            "eval",
            overrides=[f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}", f"paths.output_dir={tmp_path / 'eval'}"],
        )


def test_a_mismatched_init_from_is_refused_before_the_run_directory_is_written(
    compose_train, fake_mnist_root, tmp_path
) -> None:
    file = save_net(create_model("mlp", hidden_dims=[64]), tmp_path / "mlp.ckpt", "mlp", hidden_dims=[64])
    out = tmp_path / "refused"
    cfg = compose_train([*tiny("mlp"), *data_overrides(fake_mnist_root), *SHORT, f"init_from={file}"], output_dir=out)
    with pytest.raises(UserValueError, match=r"This run: mlp \{'hidden_dims': \[32\]\}; the file: mlp"):
        train(cfg)
    assert not (out / "config.yaml").exists()


@pytest.mark.slow
def test_a_fine_tune_run_resumes_with_its_settings_and_keeps_its_lineage(
    compose_train, fake_mnist_root, tmp_path
) -> None:
    base = [*tiny("mlp"), *data_overrides(fake_mnist_root), *SHORT]
    source = tmp_path / "source"
    run(compose_train, source, *base, "trainer.max_epochs=1")
    probe = tmp_path / "probe"
    first = run(
        compose_train, probe, *base, f"init_from={source}", "finetune.train_roles=[head]", "trainer.max_epochs=1"
    )
    last = probe / "checkpoints" / "last.ckpt"
    with pytest.raises(UserValueError, match="finetune.train_roles"):  # resuming without the fine-tune's settings
        train(compose_train([*base, f"ckpt_path={last}"], output_dir=tmp_path / "refused"))
    resumed = run(compose_train, tmp_path / "more", *base, "finetune.train_roles=[head]", f"ckpt_path={last}")
    assert (
        resumed["init_from"] == first["init_from"] and resumed["trainable_parameters"] == first["trainable_parameters"]
    )
    assert resumed["epochs"] == 2
