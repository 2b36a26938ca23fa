"""callbacks=role_stats: per-role statistics (CSV + heatmap), and the expected init std they compare with."""

from __future__ import annotations

import copy
import csv
import math
from pathlib import Path
from types import SimpleNamespace

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from lightning.pytorch.strategies import FSDPStrategy
from torch.utils.data import DataLoader, TensorDataset

from helpers import MODELS, SHORT, data_overrides, png_size, tiny
from linzoo.callbacks import RoleStats
from linzoo.callbacks.image_files import save_figure
from linzoo.callbacks.role_stats import COLUMNS, PANELS, draw_role_stats, rows_to_csv
from linzoo.common.errors import UserValueError
from linzoo.layers.init_std import expected_block_stds, expected_std
from linzoo.layers.linear import WEIGHT_INITS, FactoryLinear, LinearSpec, make_linear
from linzoo.models import create_model
from linzoo.run.train import train
from linzoo.run.trainer import instantiate_all
from linzoo.tasks import Classifier

# The roles each model's CSV holds, in module order (q, k, v: the sub-roles of qkv).
ROLES = {
    "mlp": ["hidden", "head"],
    "cnn": ["head"],
    "transformer": ["patch", "q", "k", "v", "attn_out", "ffn_in", "ffn_out", "head"],
    "autoencoder": ["enc", "dec"],
    "lm": ["q", "k", "v", "attn_out", "ffn_in", "ffn_out", "lm_head"],
    "mixer": ["patch", "token_mix", "channel_mix", "head"],
}


def read_rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="") as file:
        reader = csv.DictReader(file)
        return list(reader.fieldnames or []), list(reader)


# --- expected std ---------------------------------------------------------------------------


OPTIONS = [{}, {"mode": "fan_out", "nonlinearity": "relu"}, {"gain": 2.0, "std": 0.05}, {"a": 0.2}]


@pytest.mark.parametrize("init", list(WEIGHT_INITS))
@pytest.mark.parametrize("shape", [(1024, 256), (256, 1024)])
def test_expected_std_matches_the_std_each_init_draws(init: str, shape: tuple[int, int]) -> None:
    torch.manual_seed(0)
    for options in OPTIONS:
        layer = make_linear(*shape, role="hidden", spec=LinearSpec(init=init, **options))
        (expected,) = expected_block_stds(layer)
        measured = layer.weight.detach().std(correction=0).item()
        assert measured == pytest.approx(expected, rel=0.03, abs=1e-12), (init, shape, options)


def test_expected_std_by_formula() -> None:
    """A few values written out by hand (not from the same formulas)."""
    assert expected_std(LinearSpec(), fan_in=300, fan_out=7) == pytest.approx(1 / 30)
    relu = LinearSpec(init="kaiming_normal", nonlinearity="relu")
    assert expected_std(relu, fan_in=50, fan_out=1) == pytest.approx(0.2)
    assert expected_std(LinearSpec(init="xavier_uniform", gain=3.0), fan_in=100, fan_out=100) == pytest.approx(0.3)
    assert expected_std(LinearSpec(init="orthogonal"), fan_in=16, fan_out=100) == pytest.approx(0.1)
    assert expected_std(LinearSpec(init="trunc_normal", std=1.0), fan_in=1, fan_out=1) == pytest.approx(0.87962566)
    with pytest.raises(ValueError, match="init_std.py"):
        expected_std(SimpleNamespace(init="glorot"), fan_in=1, fan_out=1)  # type: ignore[arg-type]


def test_expected_std_follows_the_block_specs_of_a_fused_projection() -> None:
    """Per-sub-role overrides and the gpt2 policy reach the expected std of each row block."""
    torch.manual_seed(0)
    spec = LinearSpec(policy="gpt2", num_layers=8, roles={"k": {"init": "zeros"}, "v": {"init": "xavier_normal"}})
    qkv = make_linear(512, 3 * 512, role="qkv", spec=spec, sub_roles=("q", "k", "v"))
    expected = expected_block_stds(qkv)
    assert expected == pytest.approx((0.02, 0.0, math.sqrt(2 / 1024)))
    for block, std in zip(qkv.weight.detach().chunk(3), expected, strict=True):
        assert block.std(correction=0).item() == pytest.approx(std, rel=0.03, abs=1e-12)
    out = make_linear(512, 512, role="attn_out", spec=spec)
    assert expected_block_stds(out) == pytest.approx((0.02 / 4,))
    assert out.weight.std(correction=0).item() == pytest.approx(0.005, rel=0.03)


# --- the callback on hand-built runs ----------------------------------------------------------


def one_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """64 random 28x28 images and labels, the same at every call."""
    generator = torch.Generator().manual_seed(0)
    return torch.rand(64, 1, 28, 28, generator=generator), torch.randint(0, 10, (64,), generator=generator)


def fit(
    net: torch.nn.Module,
    tmp_path: Path,
    *,
    lr: float,
    steps: int,
    every: int = 1,
    optimizer=None,
    accumulate: int = 1,
) -> RoleStats:
    """Train ``net`` as a classifier on :func:`one_batch` (in ``accumulate`` micro-batches), ``steps``
    steps of plain SGD (or ``optimizer``), with RoleStats(every_n_steps=every); returns the callback."""
    loader = DataLoader(TensorDataset(*one_batch()), batch_size=64 // accumulate)
    factory = optimizer or (lambda groups: torch.optim.SGD(groups, lr=lr))
    callback = RoleStats(every_n_steps=every)
    trainer = L.Trainer(
        default_root_dir=tmp_path,
        max_steps=steps,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[callback],
        accumulate_grad_batches=accumulate,
    )
    trainer.fit(Classifier(net=net, optimizer=factory), train_dataloaders=loader)
    return callback


def layers_of(net: torch.nn.Module, role: str) -> list[FactoryLinear]:
    return [m for m in net.modules() if isinstance(m, FactoryLinear) and m.role == role]


def at_step(callback: RoleStats, step: int) -> dict[str, dict]:
    return {row["role"]: row for row in callback.rows if row["step"] == step}


@pytest.mark.parametrize("fused", [False, True])
def test_statistics_equal_a_hand_computation(tmp_path, fused: bool) -> None:
    torch.manual_seed(0)
    net = create_model("transformer", dim=16, depth=1, num_heads=2, patch_size=7, fused_qkv=fused)
    start = copy.deepcopy(net)
    callback = fit(net, tmp_path, lr=0.1, steps=3, every=2)
    assert sorted({row["step"] for row in callback.rows}) == [0, 2]
    assert not any(m._forward_hooks for m in net.modules()), "hooks must be removed after a recorded step"

    # Step 0 by hand, on the initial weights: forward (keeping the Q/K/V outputs), backward.
    images, labels = one_batch()
    outputs: list[torch.Tensor] = []
    qkv_layers = layers_of(start, "qkv")
    for layer in qkv_layers:
        layer.register_forward_hook(lambda module, args, output: outputs.append(output.detach()))
    logits = start(images)
    F.cross_entropy(logits, labels).backward()
    if fused:
        (layer,) = qkv_layers
        blocks = dict(zip("qkv", zip(layer.weight.chunk(3), layer.weight.grad.chunk(3), outputs[0].chunk(3, -1))))
    else:
        blocks = {sub: (m.weight, m.weight.grad, out) for sub, m, out in zip("qkv", qkv_layers, outputs)}
    (head,) = layers_of(start, "head")
    blocks["head"] = (head.weight, head.weight.grad, logits.detach())
    row = at_step(callback, 0)
    for role, (weight, grad, output) in blocks.items():
        assert row[role]["weight_std"] == pytest.approx(weight.std(correction=0).item(), rel=1e-5)
        assert row[role]["grad_norm"] == pytest.approx(grad.norm().item(), rel=1e-4)
        assert row[role]["activation_rms"] == pytest.approx(output.square().mean().sqrt().item(), rel=1e-5)
        # plain SGD: W1 = W0 - lr * g, so ||W1 - W0|| / ||W0|| = lr ||g|| / ||W0||
        assert row[role]["update_ratio"] == pytest.approx(0.1 * grad.norm().item() / weight.norm().item(), rel=1e-4)
    assert row["q"]["expected_std"] == pytest.approx(1 / math.sqrt(3 * 16))


def test_with_gradient_accumulation_the_gradient_is_the_accumulated_one(tmp_path) -> None:
    """Two micro-batches of 32 accumulate the gradient of the mean loss over all 64 images."""
    torch.manual_seed(0)
    net = create_model("mlp", hidden_dims=[32], dropout=0.0)
    start = copy.deepcopy(net)
    row = at_step(fit(net, tmp_path, lr=0.1, steps=1, accumulate=2), 0)
    images, labels = one_batch()
    F.cross_entropy(start(images), labels).backward()
    for role in ("hidden", "head"):
        (layer,) = layers_of(start, role)
        assert row[role]["grad_norm"] == pytest.approx(layer.weight.grad.norm().item(), rel=1e-4)


def test_zero_learning_rate_gives_zero_updates_and_a_zero_weight_no_ratio(tmp_path) -> None:
    torch.manual_seed(0)
    net = create_model("mlp", hidden_dims=[32], linear={"roles": {"hidden": {"init": "zeros"}}})
    adamw = lambda groups: torch.optim.AdamW(groups, lr=0.0, weight_decay=0.1)  # noqa: E731
    callback = fit(net, tmp_path, lr=0.0, steps=2, optimizer=adamw)
    assert [(r["step"], r["role"]) for r in callback.rows] == [(0, "hidden"), (0, "head"), (1, "hidden"), (1, "head")]
    for row in callback.rows:
        assert row["grad_norm"] > 0
        if row["role"] == "hidden":  # all zeros: std 0 as expected, and no ratio to a zero weight
            assert row["weight_std"] == 0 and row["expected_std"] == 0 and row["update_ratio"] is None
        else:
            assert row["update_ratio"] == 0.0
    _, rows = read_rows(callback.path)
    assert [r["update_ratio"] for r in rows] == ["", "0", "", "0"]


def test_big_layers_start_at_their_expected_std_under_the_gpt2_policy(tmp_path) -> None:
    torch.manual_seed(0)
    linear = {"policy": "gpt2", "roles": {"k": {"init": "zeros"}, "head": {"init": "xavier_uniform"}}}
    net = create_model("transformer", dim=128, depth=2, num_heads=4, patch_size=7, fused_qkv=True, linear=linear)
    row = at_step(fit(net, tmp_path, lr=0.01, steps=1), 0)
    expected = {"patch": 0.02, "q": 0.02, "k": 0.0, "v": 0.02, "attn_out": 0.01, "ffn_in": 0.02, "ffn_out": 0.01}
    expected["head"] = math.sqrt(2 / (128 + 10))
    for role, std in expected.items():
        assert row[role]["expected_std"] == pytest.approx(std), role
        assert row[role]["weight_std"] == pytest.approx(std, rel=0.03, abs=1e-12), role
    assert row["k"]["update_ratio"] is None and row["k"]["grad_norm"] > 0


# --- end to end: callbacks=role_stats ------------------------------------------------------------


def test_callbacks_role_stats_adds_the_callback_to_the_defaults(compose_train) -> None:
    cfg = compose_train(["callbacks=role_stats", "callbacks.role_stats.every_n_steps=7"])
    callbacks = [c for c in instantiate_all(cfg.callbacks) if isinstance(c, RoleStats)]
    assert len(callbacks) == 1 and callbacks[0].every_n_steps == 7
    assert "model_checkpoint" in cfg.callbacks and "pictures" in cfg.callbacks


@pytest.mark.parametrize("model", MODELS)
def test_every_model_writes_the_same_schema_with_its_own_roles(compose_train, fake_mnist_root, tmp_path, model) -> None:
    run = tmp_path / "run"
    overrides = [*tiny(model), *data_overrides(fake_mnist_root), *SHORT, "test=false", "print_config=false"]
    train(compose_train([*overrides, "callbacks=role_stats", "callbacks.role_stats.every_n_steps=3"], output_dir=run))
    header, rows = read_rows(run / "role_stats.csv")
    assert header == list(COLUMNS)
    roles = ROLES[model]
    assert [(int(r["step"]), r["role"]) for r in rows] == [(step, role) for step in (0, 3, 6) for role in roles]
    for r in rows:
        tied_head = model == "lm" and r["role"] == "lm_head"  # the token embedding's weight: no factory init
        assert (r["expected_std"] == "") == tied_head
        values = [float(r[c]) for c in COLUMNS[2:] if not (tied_head and c == "expected_std")]
        assert all(math.isfinite(v) and v > 0 for v in values), r
        if int(r["step"]) == 0 and not tied_head:  # tiny layers: a loose check (big ones: above)
            assert float(r["weight_std"]) == pytest.approx(float(r["expected_std"]), rel=0.2)
    assert png_size(run / "role_stats.png") == (1000, len(PANELS) * (50 + 22 * len(roles)))
    assert not list(run.glob(".*.tmp"))


@pytest.mark.slow
def test_compiled_net_still_reports_activations(compose_train, fake_mnist_root, tmp_path) -> None:
    """compile=true: the recorded steps run eagerly, so the hooks see every recorded step's outputs."""
    run = tmp_path / "run"
    overrides = [*tiny("mlp"), *data_overrides(fake_mnist_root), *SHORT, "test=false", "compile=true"]
    train(compose_train([*overrides, "callbacks=role_stats", "callbacks.role_stats.every_n_steps=3"], output_dir=run))
    _, rows = read_rows(run / "role_stats.csv")
    assert [int(r["step"]) for r in rows] == [0, 0, 3, 3, 6, 6]
    assert all(float(r["activation_rms"]) > 0 for r in rows)


# --- units -----------------------------------------------------------------------------------------


def test_bad_every_n_steps_and_fsdp_are_refused() -> None:
    for bad in (0, -5, 2.5, True):
        with pytest.raises(UserValueError, match="callbacks.role_stats.every_n_steps"):
            RoleStats(every_n_steps=bad)  # type: ignore[arg-type]
    with pytest.raises(UserValueError, match="trainer=ddp"):
        RoleStats().on_fit_start(SimpleNamespace(strategy=FSDPStrategy()), None)  # type: ignore[arg-type]


def test_csv_and_picture_take_missing_values(tmp_path) -> None:
    rows = [
        {"step": 0, "role": "enc", "weight_std": 0.1, "expected_std": 0.1, "activation_rms": 1.0, "grad_norm": 2.0,
         "update_ratio": None},
        {"step": 0, "role": "dec", "weight_std": 0.0, "expected_std": None, "activation_rms": None, "grad_norm": None,
         "update_ratio": None},
    ]  # fmt: skip
    assert rows_to_csv(rows).splitlines() == [",".join(COLUMNS), "0,enc,0.1,0.1,1,2,", "0,dec,0,,,,"]
    path = save_figure(draw_role_stats(rows, width=600), tmp_path / "stats.png")
    assert png_size(path) == (600, len(PANELS) * (50 + 22 * 2))


def test_expected_std_follows_mups_output_scale() -> None:
    """Under linear=mup the head starts at sqrt(m) times its scheme's std (m = 512 / 32 = 16: x4)."""
    from linzoo.layers.init_std import expected_block_stds
    from linzoo.layers.linear import LinearSpec, make_linear

    spec = LinearSpec(mup={"base_width": 32}, width=512)
    torch.manual_seed(0)
    head = make_linear(512, 1024, role="head", spec=spec)
    plain = make_linear(512, 1024, role="head")
    (expected,) = expected_block_stds(head)
    assert expected == pytest.approx(4 * expected_block_stds(plain)[0])
    assert head.weight.std().item() == pytest.approx(expected, rel=0.03)
