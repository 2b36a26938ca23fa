"""int8 files compute GELU in its tanh form: the rewrite, its numbers, and ``gelu="exact"``."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

import linzoo
from linzoo.tools.onnx_gelu import approximate_gelu
from linzoo.tools.onnx_runtime import export_onnx, linear_nodes, quantize_onnx, session
from linzoo.tools.quantize_policy import quantized_paths

pytest.importorskip("onnxruntime")


def gelu_forms(path) -> list[str]:
    """The ``approximate`` attribute of every Gelu node of the file (``none``: the exact erf form)."""
    forms = []
    for node in onnx.load(str(path)).graph.node:
        if node.op_type == "Gelu":
            given = {attribute.name: attribute.s.decode() for attribute in node.attribute}
            forms.append(given.get("approximate", "none"))
    return forms


def one_gelu_file(path) -> None:
    node = helper.make_node("Gelu", ["x"], ["y"])
    graph = helper.make_graph(
        [node],
        "gelu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 8])],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)]), str(path))


def test_the_rewritten_gelu_computes_the_tanh_form(tmp_path) -> None:
    path = tmp_path / "gelu.onnx"
    one_gelu_file(path)
    x = torch.linspace(-6, 6, 96).reshape(12, 8)
    exact = session(path, threads=1).run(None, {"x": x.numpy()})[0]
    np.testing.assert_allclose(exact, torch.nn.functional.gelu(x).numpy(), atol=1e-6)
    assert approximate_gelu(path) == 1 and gelu_forms(path) == ["tanh"]
    tanh = session(path, threads=1).run(None, {"x": x.numpy()})[0]
    np.testing.assert_allclose(tanh, torch.nn.functional.gelu(x, approximate="tanh").numpy(), atol=1e-6)
    assert 1e-4 < np.abs(tanh - exact).max() < 5e-4  # the two forms really differ, by little


@pytest.mark.parametrize("model", ["mixer", "transformer"])
def test_int8_files_use_the_tanh_gelu_unless_told_exact(model: str, tmp_path) -> None:
    torch.manual_seed(0)
    sizes = {"dim": 16, "depth": 2, "patch_size": 7} | ({"num_heads": 2} if model == "transformer" else {})
    net = linzoo.create_model(model, **sizes).eval()
    source = export_onnx(net, tmp_path / "model.onnx", sample=torch.zeros(2, 1, 28, 28))
    nodes = list(linear_nodes(source, quantized_paths(net)).values())
    tanh = quantize_onnx(source, tmp_path / "tanh.onnx", nodes=nodes)
    exact = quantize_onnx(source, tmp_path / "exact.onnx", nodes=nodes, gelu="exact")
    assert gelu_forms(source) == gelu_forms(exact) == ["none"] * len(gelu_forms(source)) != []  # float file kept
    assert gelu_forms(tanh) == ["tanh"] * len(gelu_forms(source))
    images = torch.rand(32, 1, 28, 28).numpy()
    with_tanh, with_exact = (session(path, threads=1).run(None, {"input": images})[0] for path in (tanh, exact))
    assert 0 < np.abs(with_tanh - with_exact).max() < 0.05  # GELU really changed, within int8's rounding
    with pytest.raises(ValueError, match="gelu='erf': expected one of tanh, exact"):
        quantize_onnx(source, tmp_path / "bad.onnx", nodes=nodes, gelu="erf")
