"""The int8 rewrite that quantizes activations before their Transpose/Reshape: same numbers, uint8 moved."""

from __future__ import annotations

import shutil

import numpy as np
import onnx
import pytest
import torch

import linzoo
from linzoo.tools import onnx_runtime
from linzoo.tools.onnx_layout import quantize_before_layout
from linzoo.tools.onnx_runtime import export_onnx, linear_nodes, quantize_onnx, session
from linzoo.tools.quantize_policy import quantized_paths

pytest.importorskip("onnxruntime")

TINY = {
    "mixer": {"dim": 16, "depth": 2, "patch_size": 7},
    "transformer": {"dim": 16, "depth": 1, "num_heads": 2, "patch_size": 7},
}


def run(path, images: torch.Tensor) -> np.ndarray:
    return session(path, threads=1).run(None, {"input": images.numpy()})[0]


def quantized_after_layout_ops(path) -> int:
    """How many DynamicQuantizeLinear read the output of a Transpose or Reshape (what the rewrite removes)."""
    nodes = onnx.load(str(path)).graph.node
    producer = {name: node.op_type for node in nodes for name in node.output}
    return sum(
        producer.get(node.input[0]) in ("Transpose", "Reshape")
        for node in nodes
        if node.op_type == "DynamicQuantizeLinear"
    )


@pytest.mark.parametrize(("model", "moved"), [("mixer", 1 + 2), ("transformer", 1 + 1)])
def test_the_rewrite_moves_uint8_and_gives_the_same_numbers(model: str, moved: int, tmp_path, monkeypatch) -> None:
    torch.manual_seed(0)
    net = linzoo.create_model(model, **TINY[model]).eval()
    source = export_onnx(net, tmp_path / "model.onnx", sample=torch.zeros(2, 1, 28, 28))
    nodes = list(linear_nodes(source, quantized_paths(net)).values())
    monkeypatch.setattr(onnx_runtime, "quantize_before_layout", lambda path: 0)
    plain = quantize_onnx(source, tmp_path / "plain.onnx", nodes=nodes)
    monkeypatch.undo()
    rewritten = quantize_onnx(source, tmp_path / "int8.onnx", nodes=nodes)
    assert quantized_after_layout_ops(plain) == moved  # patch embedding, token mixing / attention's head merge
    assert quantized_after_layout_ops(rewritten) == 0
    onnx.checker.check_model(str(rewritten))
    images = torch.rand(8, 1, 28, 28)
    np.testing.assert_array_equal(run(rewritten, images), run(plain, images))  # exact: per-tensor scales
    assert run(rewritten, images[:1]).shape == (1, 10)


def test_a_file_without_such_chains_is_left_alone(tmp_path) -> None:
    net = linzoo.create_model("mlp", hidden_dims=[32]).eval()
    source = export_onnx(net, tmp_path / "model.onnx", sample=torch.zeros(2, 1, 28, 28))
    nodes = list(linear_nodes(source, quantized_paths(net)).values())
    path = quantize_onnx(source, tmp_path / "int8.onnx", nodes=nodes)
    copy = shutil.copyfile(path, tmp_path / "copy.onnx")
    assert quantize_before_layout(copy) == 0  # quantize_onnx already ran it: nothing left to move
    assert copy.read_bytes() == path.read_bytes()
