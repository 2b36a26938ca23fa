"""ONNX Runtime as a backend: parity with torch for every classifier, int8 by role policy, eval and
predict with backend=onnxruntime, export quantize=int8 (.onnx), and a clear error without onnxruntime.

int8 kernels differ across CPUs (AVX2, AVX-512 VNNI, AMX) and thread counts: int8 results are
compared by relative error and top-1 agreement, never exactly."""

from __future__ import annotations

import csv
import importlib.util

import numpy as np
import onnx
import pytest
import torch
from torchvision import datasets

import linzoo
from linzoo.run.evaluate import evaluate
from linzoo.tools import onnx_runtime
from linzoo.tools.export import export_checkpoint
from linzoo.tools.onnx_runtime import OnnxNet, choose_backend, linear_nodes, onnx_net, quantize_onnx
from linzoo.tools.predict import predict_checkpoint
from linzoo.tools.quantize_policy import quantized_paths
from trained import train_run

NETS = {  # tiny nets of every classifier
    "mlp": {"hidden_dims": [32]},
    "cnn": {"channels": [4, 8], "head_hidden_dims": [16]},
    "transformer": {"dim": 16, "depth": 1, "num_heads": 2, "patch_size": 7},
    "mixer": {"dim": 16, "depth": 1, "patch_size": 7},
}


def integer_matmuls(path) -> int:
    """How many Linears of the ONNX file run as int8 matmuls (dynamic quantization: MatMulInteger)."""
    return sum(node.op_type == "MatMulInteger" for node in onnx.load(str(path)).graph.node)


@pytest.mark.parametrize("model", list(NETS))
def test_onnxruntime_matches_torch_for_every_classifier(model: str, tmp_path) -> None:
    torch.manual_seed(0)
    net = linzoo.create_model(model, **NETS[model]).eval()
    images = torch.rand(64, 1, 28, 28)
    with torch.no_grad():
        expected = net(images)
    float32 = onnx_net(net, directory=tmp_path, threads=1)
    torch.testing.assert_close(float32(images), expected, atol=1e-4, rtol=1e-4)
    assert float32(images[:1]).shape == (1, 10)  # one file serves every batch size
    nodes = list(linear_nodes(float32.path, quantized_paths(net)).values())  # what onnx_net(quantize="int8") does
    int8 = OnnxNet(quantize_onnx(float32.path, tmp_path / "int8.onnx", nodes=nodes), threads=1)
    assert integer_matmuls(int8.path) == len(quantized_paths(net))  # every factory Linear, no convolution
    relative = (int8(images) - expected).norm() / expected.norm()
    assert 0 < relative.item() < 0.1  # int8 really ran, and stayed close


def test_a_big_batch_is_split_across_threads_with_the_same_float_outputs(tmp_path) -> None:
    """threads=2: a batch of >= split_from images runs as two one-thread calls at once; a smaller one
    is one call; float outputs do not depend on it (int8 takes its scales per call: close, not equal)."""
    torch.manual_seed(0)
    net = linzoo.create_model("mixer", **NETS["mixer"]).eval()
    images = torch.rand(70, 1, 28, 28)
    split = onnx_net(net, directory=tmp_path, threads=2)
    whole = OnnxNet(split.path, threads=2, split_from=None)
    assert split.split_from == 32 and split(images[:31]) is not None and split._pool is None  # one call
    torch.testing.assert_close(split(images), whole(images), atol=1e-5, rtol=1e-5)
    assert split._pool is not None and len(split._workers) == 2  # the batch of 70 was split
    assert OnnxNet(split.path, threads=1).split_from is None  # one thread: nothing to split across
    (tmp_path / "int8").mkdir()
    int8 = onnx_net(net, directory=tmp_path / "int8", quantize="int8", threads=2)
    int8_whole = OnnxNet(int8.path, threads=2, split_from=None)
    assert (int8(images).argmax(1) == int8_whole(images).argmax(1)).float().mean() > 0.9


def test_parts_come_back_in_order_when_each_worker_runs_several(tmp_path) -> None:
    """5 parts on 2 workers (parts 0, 2, 4 and 1, 3): the outputs are the whole batch's, row by row."""
    torch.manual_seed(0)
    net = linzoo.create_model("mlp", **NETS["mlp"]).eval()
    images = torch.rand(250, 1, 28, 28)
    split = onnx_net(net, directory=tmp_path, threads=2)
    split.split_from = 50
    torch.testing.assert_close(split(images), OnnxNet(split.path, threads=1)(images), atol=1e-5, rtol=1e-5)
    assert len(split._workers) == 2


def test_sessions_leave_out_the_skip_layer_norm_fusion(tmp_path, monkeypatch) -> None:
    """ONNX Runtime fuses the mixer's residual Add + LayerNorm unless the session leaves that fusion out
    (its graph as optimized by the session, written to a file, is read back)."""
    import onnxruntime

    net = linzoo.create_model("mixer", dim=16, depth=2, patch_size=7).eval()
    path = onnx_net(net, directory=tmp_path, threads=1).path
    real = onnxruntime.InferenceSession
    optimized = tmp_path / "optimized.onnx"

    def writing_its_graph(model, options, **kwargs):
        options.optimized_model_filepath = str(optimized)
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_EXTENDED  # a portable file
        return real(model, options, **kwargs)

    monkeypatch.setattr(onnxruntime, "InferenceSession", writing_its_graph)

    def fused_ops(**kwargs) -> int:
        onnx_runtime.session(path, threads=1, **kwargs)
        return sum(node.op_type == "SkipLayerNormalization" for node in onnx.load(str(optimized)).graph.node)

    assert onnx_runtime.SLOW_FUSIONS == ("SkipLayerNormFusion",)
    assert fused_ops(left_out=()) >= 1  # ONNX Runtime's default fuses them
    assert fused_ops() == 0  # linzoo's sessions do not


def test_the_role_policy_keeps_those_linears_float_in_onnx(tmp_path) -> None:
    net = linzoo.create_model("transformer", **NETS["transformer"]).eval()
    int8 = onnx_net(net, directory=tmp_path, quantize="int8", roles={"head": "none", "patch": "none"})
    assert integer_matmuls(int8.path) == len(quantized_paths(net)) - 2 == 6
    floats = {node.name for node in onnx.load(str(int8.path)).graph.node if node.op_type in ("Gemm", "MatMul")}
    assert len(floats) >= 2  # the head and the patch embedding (and attention's own matmuls)


@pytest.fixture(scope="module")
def mlp_run(fake_mnist_root, tmp_path_factory):
    """An MLP trained on every fake training batch: it knows the fake digits (margins like a real run's)."""
    folder = tmp_path_factory.mktemp("onnx")
    return train_run(folder / "mlp", fake_mnist_root, "mlp", "trainer.max_epochs=3", "trainer.limit_train_batches=1.0")


def test_eval_with_backend_onnxruntime(mlp_run, compose_eval, tmp_path) -> None:
    checkpoint = mlp_run / "checkpoints" / "last.ckpt"
    plain = evaluate(compose_eval([f"ckpt_path={checkpoint}"], output_dir=tmp_path / "torch"))
    ort = evaluate(compose_eval([f"ckpt_path={checkpoint}", "backend=onnxruntime"], output_dir=tmp_path / "ort"))
    int8 = evaluate(
        compose_eval(
            [f"ckpt_path={checkpoint}", "quantize=int8", "quantize.roles.head=none"], output_dir=tmp_path / "q"
        )
    )
    assert plain["backend"] == "torch" and ort["backend"] == "onnxruntime" and int8["backend"] == "onnxruntime"
    assert plain["test/acc"] > 0.8
    assert ort["test/acc"] == pytest.approx(plain["test/acc"], abs=0.006)  # at most one of 200 digits flips
    assert abs(int8["test/acc"] - plain["test/acc"]) <= 0.02
    assert int8["quantize"] == "int8" and int8["quantize_roles"] == {"head": "none"}


def test_predict_with_backend_onnxruntime(mlp_run, fake_mnist_root, tmp_path) -> None:
    split = datasets.MNIST(fake_mnist_root, train=False)
    np.save(tmp_path / "digits.npy", split.data[:20].numpy())
    labels = {}
    for name, options in {"torch": {}, "ort": {"backend": "onnxruntime"}, "int8": {"quantize": "int8"}}.items():
        path = predict_checkpoint(
            ckpt_path=mlp_run, inputs=tmp_path / "digits.npy", run_dir=tmp_path / name, invert=False, **options
        )
        with path.open() as handle:
            labels[name] = [row["class"] for row in csv.DictReader(handle)]
    assert labels["ort"] == labels["torch"]
    assert sum(a == b for a, b in zip(labels["int8"], labels["torch"])) >= 18


def test_export_int8_writes_an_onnx_file_with_the_policy(mlp_run, tmp_path) -> None:
    result = export_checkpoint(ckpt_path=mlp_run, quantize="int8", run_dir=tmp_path)
    assert result.path.name == "model-int8.onnx" and integer_matmuls(result.path) == 2
    assert result.agreement is not None and result.agreement >= 0.9
    policy = {"mode": "int8", "roles": {"head": "none"}}
    kept = export_checkpoint(ckpt_path=mlp_run, quantize=policy, out=tmp_path / "kept.onnx", run_dir=tmp_path)
    assert integer_matmuls(kept.path) == 1


def test_without_onnxruntime_the_error_names_the_fix(monkeypatch, tmp_path) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxruntime" else real(name, *a))
    fix = "backend=onnxruntime needs the package 'onnxruntime': pip install 'linzoo\\[export\\]'"
    with pytest.raises(ModuleNotFoundError, match=fix):
        choose_backend("onnxruntime", quantize=None)
    with pytest.raises(
        ModuleNotFoundError, match="quantize=int8 .ONNX Runtime's int8; backend=torch: torchao's. needs"
    ):
        # before the inputs and the checkpoint are even looked for
        predict_checkpoint(ckpt_path=tmp_path / "none", inputs=tmp_path, run_dir=tmp_path, quantize="int8")
    assert choose_backend(None, quantize=None) == "torch"
    with pytest.raises(ValueError, match="backend=tensorrt: expected torch or onnxruntime"):
        choose_backend("tensorrt", quantize=None)
