"""A rewrite of ONNX Runtime's dynamic int8 graphs: quantize activations before moving them.

``quantize_dynamic`` puts each ``DynamicQuantizeLinear`` (float -> uint8, one scale per tensor)
right before its int8 matmul, so a Transpose or Reshape in front of a Linear (the mixer's token
mixing ``x.transpose(1, 2)``, the patch embedding's ``permute``, attention's head merge) moves
float32 data. :func:`quantize_before_layout` moves the quantization above that chain of layout ops,
which then move uint8 (4x fewer bytes). Exact: a per-tensor scale and zero point do not depend
on the order of the elements, so every int8 matmul gets the same integers as before.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["LAYOUT_OPS", "quantize_before_layout"]

LAYOUT_OPS = ("Transpose", "Reshape")  # ops that move elements (data input 0) and never change their values


def _layout_chain(nodes: list[Any], start: str, *, outputs: set[str]) -> list[Any]:
    """The Transpose/Reshape nodes that produce ``start``, nearest first, each output used only by the next."""
    producer = {name: node for node in nodes for name in node.output}
    uses: dict[str, int] = {}
    for node in nodes:
        for name in node.input:
            uses[name] = uses.get(name, 0) + 1
    chain: list[Any] = []
    name = start
    while name in producer and producer[name].op_type in LAYOUT_OPS and uses[name] == 1 and name not in outputs:
        chain.append(producer[name])
        name = producer[name].input[0]
    return chain


def quantize_before_layout(path: str | Path) -> int:
    """Rewrite the int8 file ``path`` in place: float -> [Transpose/Reshape]* -> DynamicQuantizeLinear becomes
    float -> DynamicQuantizeLinear -> [Transpose/Reshape]* (on uint8). Returns how many quantizations moved."""
    import onnx

    model = onnx.load(str(path))
    graph = model.graph
    nodes = list(graph.node)  # the same node objects throughout: identities below are stable
    outputs = {value.name for value in graph.output}
    moved: dict[int, Any] = {}  # id(first node of a chain) -> the quantization that now comes before it
    retyped: set[str] = set()
    for quantize in [node for node in nodes if node.op_type == "DynamicQuantizeLinear"]:
        chain = _layout_chain(nodes, quantize.input[0], outputs=outputs)
        if not chain:
            continue
        first, last = chain[-1], chain[0]  # first: reads the float tensor; last: feeds the quantization
        quantized = quantize.output[0]
        quantize.input[0] = first.input[0]
        quantize.output[0] = first.input[0] = f"{quantized}_before_layout"
        last.output[0] = quantized
        retyped.update(name for node in chain for name in node.output)
        moved[id(first)] = quantize
    if not moved:
        return 0
    ordered: list[Any] = []  # each moved quantization right before its chain: the order stays topological
    later = {id(quantize) for quantize in moved.values()}
    for node in nodes:
        if id(node) not in later:
            ordered.extend([moved[id(node)], node] if id(node) in moved else [node])
    copies = [type(node)() for node in ordered]
    for copy, node in zip(copies, ordered, strict=True):
        copy.CopyFrom(node)
    graph.ClearField("node")
    graph.node.extend(copies)
    produced = {name for node in graph.node for name in node.output}
    for index in reversed(range(len(graph.value_info))):
        value = graph.value_info[index]
        if value.name not in produced:  # a float tensor renamed away
            del graph.value_info[index]
        elif value.name in retyped:  # the chain now carries uint8 (shapes kept: ONNX Runtime's fusions need them)
            value.type.tensor_type.elem_type = onnx.TensorProto.UINT8
    onnx.save(model, str(path))
    return len(moved)
