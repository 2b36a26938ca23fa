"""int8 dynamic quantization of every factory Linear (torchao), in eval.py and export.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn
from torchvision import datasets

import linzoo
from helpers import ROOT, requires_exact_int8
from linzoo.layers.linear import FactoryLinear
from linzoo.run.evaluate import evaluate
from linzoo.tools.quantize import (
    Int8MatmulUnreliable,
    check_quantize,
    float_linear_weights,
    int8_matmul_error,
    quantize_int8,
    serialized_megabytes,
)
from trained import train_run

exact_int8 = requires_exact_int8()


@pytest.fixture(scope="module")
def test_images(fake_mnist_root) -> torch.Tensor:
    """The 200 fake test digits, float [200, 1, 28, 28] in [0, 1]."""
    return datasets.MNIST(fake_mnist_root, train=False).data.unsqueeze(1).float() / 255


@exact_int8
@pytest.mark.parametrize("model", ["mlp", "transformer"])
def test_every_factory_linear_becomes_int8_and_predictions_agree(model, fake_mnist_root, test_images, tmp_path) -> None:
    epochs = 3 if model == "mlp" else 6  # trained until its margins are real, as a finished run's are
    run = train_run(
        tmp_path / model, fake_mnist_root, model, f"trainer.max_epochs={epochs}", "trainer.limit_train_batches=1.0"
    )
    net = linzoo.load(run)
    linears = [name for name, module in net.named_modules() if isinstance(module, FactoryLinear)]
    assert len(linears) >= (2 if model == "mlp" else 6)
    assert float_linear_weights(net) == linears  # before: all float
    with torch.no_grad():
        expected = net(test_images).argmax(dim=1)
    size_before = serialized_megabytes(net)
    quantized = quantize_int8(net)
    assert float_linear_weights(quantized) == []
    for name in linears:
        weight = quantized.get_submodule(name).weight
        assert weight.qdata.dtype == torch.int8 and weight.qdata.shape == weight.shape
    with torch.no_grad():
        agreement = (quantized(test_images).argmax(dim=1) == expected).float().mean().item()
    assert agreement >= 0.99
    if model == "mlp":  # 25k of its 26k parameters are Linear weights (the tiny ViT's file is mostly overhead)
        assert serialized_megabytes(quantized) < 0.6 * size_before


@exact_int8
def test_tied_weights_stay_float_and_tied() -> None:
    lm = linzoo.create_model("lm", vocab_size=3, seq_len=16, dim=16, depth=1).eval()
    quantize_int8(lm)
    assert float_linear_weights(lm) == ["lm_head.proj"]
    assert lm.lm_head.weight is lm.token_embedding.weight
    assert lm(torch.randint(0, 3, (2, 16))).shape == (2, 16, 3)


@exact_int8
def test_torch_ao_quantize_dynamic_would_leave_factory_linears_float() -> None:
    """The bug this module exists for: torch.ao matches exact types, FactoryLinear is a subclass."""
    model = nn.Sequential(linzoo.make_linear(8, 4, role="hidden"))
    with pytest.warns(DeprecationWarning):
        converted = torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)
    assert float_linear_weights(converted) == ["0"]
    assert float_linear_weights(quantize_int8(model)) == []


def test_quantize_values() -> None:
    assert check_quantize(None) is None and check_quantize("int8") == "int8"
    with pytest.raises(ValueError, match="quantize='fp8' is not supported; use quantize=int8"):
        check_quantize("fp8")


@exact_int8
def test_eval_quantize_int8(compose_eval, fake_mnist_root, tmp_path) -> None:
    run = train_run(tmp_path / "mlp", fake_mnist_root, "mlp", "trainer.max_epochs=3", "trainer.limit_train_batches=1.0")
    checkpoint = run / "checkpoints" / "last.ckpt"
    plain = evaluate(compose_eval([f"ckpt_path={checkpoint}"], output_dir=tmp_path / "fp32"))
    int8 = evaluate(compose_eval([f"ckpt_path={checkpoint}", "quantize=int8"], output_dir=tmp_path / "int8"))
    assert int8["quantize"] == "int8" and plain["quantize"] is None
    assert plain["test/acc"] > 0.8
    assert abs(int8["test/acc"] - plain["test/acc"]) <= 0.01
    assert int8["test/loss"] != plain["test/loss"]  # the int8 net really ran


def test_int8_refused_where_the_cpu_int8_matmul_saturates() -> None:
    """oneDNN capped at AVX2 (a CPU without VNNI) sums u8 x s8 pairs in int16: the check sees it and
    quantize_int8 refuses with one clear line instead of changing predictions silently."""
    code = (
        "import torch, linzoo\n"
        "from linzoo.tools.quantize import int8_matmul_error, quantize_int8\n"
        "print(int8_matmul_error())\n"
        "quantize_int8(torch.nn.Sequential(linzoo.make_linear(8, 4, role='hidden')))\n"
    )
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2"}
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 1 and int(done.stdout.split()[0]) > 1000
    assert f"{Int8MatmulUnreliable.__name__}: quantize=int8: this CPU's int8 matmul" in done.stderr
    assert "Leave quantize unset (float32)" in done.stderr


def test_the_int8_check_is_exact_where_the_cpu_has_vnni() -> None:
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    if not any(flag in flags.split() for flag in ("avx512_vnni", "amx_int8")):
        pytest.skip("no AVX-512 VNNI or AMX on this CPU")
    if os.environ.get("ONEDNN_MAX_CPU_ISA"):
        pytest.skip("ONEDNN_MAX_CPU_ISA caps oneDNN's kernels")
    assert int8_matmul_error() == 0
