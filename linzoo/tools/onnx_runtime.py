"""ONNX Runtime as linzoo's fast CPU path: export a net to ONNX, quantize its Linears to int8, run it.

``quantize=int8`` in export, eval and predict comes here: in eager PyTorch, torchao's int8
Linear is slower than float32 on CPU, ONNX Runtime's int8 is faster (docs/quantization.md has
the measurements). The int8 file is made the way ONNX Runtime's documentation recommends:

1. ``quant_pre_process``: symbolic shape inference, graph optimisation, ONNX shape inference;
2. ``quantize_dynamic`` (weights int8 per output channel, activations uint8 per tensor at run
   time: the u8s8 format meant for x86) of exactly the MatMul/Gemm nodes of the factory Linears
   that the role policy picks (``nodes_to_quantize``; convolutions, attention's own matmuls and
   float-kept roles stay float32), or ``quantize_static`` with calibration batches (QDQ format);
3. (dynamic) ``quantize_before_layout`` (linzoo/tools/onnx_layout.py): each activation is quantized
   before the Transpose/Reshape in front of its Linear, which then moves uint8, not float32 (exact).
   The mixer's token mixing transposes its input: at batch 256 (2 threads, ONNX Runtime's profiler)
   the Transposes fell from 19-30 % to 6-10 % of the mixer's time, and paired runs on a loaded
   2-core machine put the int8 mixer x1.03-1.09 faster (transformer x1.01-1.06), batch 1 unchanged;
4. ``approximate_gelu`` (linzoo/tools/onnx_gelu.py): GELU in its tanh form (``gelu="exact"`` keeps erf),
   within int8's rounding and faster.

Sessions leave out ONNX Runtime's ``SkipLayerNormFusion`` (residual Add + LayerNorm as one
``SkipLayerNormalization``): for linzoo's widths (64) the fused kernel is slower than the two ops it
replaces, 1.0 ms against 0.04 + 0.14 ms on [64, 49, 64] (ONNX Runtime's profiler, one thread). Without
it a part of 64 images of the int8 mixer ran in 9.9 ms instead of 10.7 ms, the transformer in 13.2
instead of 14.1, float32 files gain alike (one thread, 7 interleaved rounds; docs/quantization.md).

Weights use 7 bits (``reduce_range=True``): ONNX Runtime's u8s8 kernels on x86 CPUs without
VNNI (AVX2, AVX-512 without VNNI) add pairs of u8 x s8 products into int16, which saturates for
8-bit weights; with 7-bit weights it cannot (255 * 64 * 2 < 2^15). The file is then right on
every x86 CPU, and no CPU check is needed (torchao's path keeps its own, linzoo/tools/quantize.py).
"""

from __future__ import annotations

import ast
import contextlib
import logging
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from linzoo.common.checks import require
from linzoo.common.errors import UserValueError
from linzoo.tools.onnx_gelu import GELUS, approximate_gelu
from linzoo.tools.onnx_layout import quantize_before_layout
from linzoo.tools.quantize_policy import quantized_paths

__all__ = [
    "BACKENDS",
    "METHODS",
    "choose_backend",
    "OnnxNet",
    "export_onnx",
    "linear_nodes",
    "onnx_net",
    "quantize_onnx",
    "require_onnxruntime",
    "session",
]

METHODS = ("dynamic", "static")
LINEAR_OPS = ("MatMul", "Gemm")  # what torch's exporter makes of an nn.Linear
SLOW_FUSIONS = ("SkipLayerNormFusion",)  # ONNX Runtime fusions that sessions leave out (module docstring)
NAME_SCOPES = "pkg.torch.onnx.name_scopes"  # node metadata: the module path of the op


def require_onnxruntime(feature: str) -> None:
    """A clear error naming the fix when onnxruntime (the optional ``export`` extra) is missing."""
    require("onnxruntime", feature)


def export_onnx(net: nn.Module, path: str | Path, *, sample: torch.Tensor) -> Path:
    """Write ``net``'s forward to ``path`` (one file, opset of torch's dynamo exporter), batch axis dynamic."""
    require("onnxscript", "format=onnx")
    torch.onnx.export(
        net,
        (sample,),
        str(path),
        dynamo=True,
        input_names=["input"],
        output_names=["output"],
        dynamic_shapes=({0: torch.export.Dim("batch", min=1)},),
        external_data=False,
        verbose=False,
    )
    return Path(path)


def _module_path(node: Any) -> str | None:
    """The module path a node of torch's exporter was recorded in (its innermost module), or None."""
    for prop in node.metadata_props:
        if prop.key == NAME_SCOPES:
            scopes = ast.literal_eval(prop.value)  # ['', 'blocks.0', 'blocks.0.attn.q_proj', 'linear_1']
            return scopes[-2] if len(scopes) >= 2 else None
    return None


def linear_nodes(path: str | Path, modules: Iterable[str]) -> dict[str, str]:
    """``{module path: ONNX node name}``: the MatMul/Gemm node each Linear of ``modules`` became in the
    file ``path`` written by :func:`export_onnx` (read from the node metadata torch's exporter writes)."""
    import onnx

    wanted = set(modules)
    found: dict[str, str] = {}
    for node in onnx.load(str(path), load_external_data=False).graph.node:
        if node.op_type in LINEAR_OPS:
            module = _module_path(node)
            if module in wanted and module not in found:
                found[module] = node.name
    missing = sorted(wanted - set(found))
    if missing:
        raise RuntimeError(f"{path}: no MatMul/Gemm node recorded for the Linear(s) {', '.join(missing)}.")
    return found


@contextlib.contextmanager
def _quiet_root_logger() -> Iterator[None]:
    """ONNX Runtime's quantizer logs one INFO line per tensor to the root logger (which Hydra shows)."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        root.setLevel(level)


class _Batches:
    """ONNX Runtime's ``CalibrationDataReader``: one ``{"input": array}`` per calibration batch."""

    def __init__(self, batches: Iterable[torch.Tensor]) -> None:
        self._batches: Iterator[torch.Tensor] = iter(batches)

    def get_next(self) -> dict[str, Any] | None:
        batch = next(self._batches, None)
        return None if batch is None else {"input": batch.float().contiguous().numpy()}


def quantize_onnx(
    source: str | Path,
    out: str | Path,
    *,
    nodes: list[str],
    method: str = "dynamic",
    calibration: Iterable[torch.Tensor] | None = None,
    reduce_range: bool = True,
    gelu: str = "tanh",
) -> Path:
    """Write the int8 version of the float ``source`` to ``out``: pre-processed, then ``nodes``
    (MatMul/Gemm node names of ``source``) quantized with ``method`` (``"static"`` needs ``calibration``),
    its GELUs in the ``gelu`` form (``"tanh"`` or ``"exact"``)."""
    require_onnxruntime("quantize=int8")
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_dynamic, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if method not in METHODS:
        raise ValueError(f"method={method!r}: expected one of {', '.join(METHODS)}.")
    if gelu not in GELUS:
        raise ValueError(f"gelu={gelu!r}: expected one of {', '.join(GELUS)}.")
    with tempfile.TemporaryDirectory() as scratch, _quiet_root_logger():
        prepared = Path(scratch) / "prepared.onnx"
        quant_pre_process(str(source), str(prepared))
        if not nodes:  # ONNX Runtime reads an empty list as "every node": nothing to quantize here
            shutil.copyfile(prepared, out)
            return Path(out)
        common = {
            "per_channel": True,
            "reduce_range": reduce_range,
            "weight_type": QuantType.QInt8,
            "nodes_to_quantize": list(nodes),
            "op_types_to_quantize": list(LINEAR_OPS),
        }
        if method == "dynamic":
            # quantize_dynamic first rewrites each Gemm "<name>" as MatMul "<name>_MatMul" (+ Add)
            common["nodes_to_quantize"] += [f"{name}_MatMul" for name in nodes]
            quantize_dynamic(str(prepared), str(out), **common)
            quantize_before_layout(out)
        else:
            if calibration is None:
                raise ValueError("method='static' needs calibration batches.")
            quantize_static(
                str(prepared),
                str(out),
                _Batches(calibration),
                quant_format=QuantFormat.QDQ,
                activation_type=QuantType.QUInt8,
                calibrate_method=CalibrationMethod.MinMax,
                **common,
            )
    if gelu == "tanh":
        approximate_gelu(out)
    return Path(out)


def session(path: str | Path, *, threads: int | None = None, left_out: Iterable[str] = SLOW_FUSIONS) -> Any:
    """An ONNX Runtime CPU session on ``path`` with ``threads`` intra-op threads (None: torch's count),
    without the graph optimizers named in ``left_out``."""
    require_onnxruntime("backend=onnxruntime")
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(
        str(path), options, providers=["CPUExecutionProvider"], disabled_optimizers=list(left_out)
    )


class OnnxNet(nn.Module):
    """An ONNX Runtime session in place of a torch net: float tensor in, float tensor out (CPU).

    With ``threads`` > 1, a batch of at least ``split_from`` images is cut into parts of about
    ``split_from`` images (at least ``threads`` parts); each of ``threads`` worker threads runs its
    share of the parts on its own one-thread session, all at once, instead of one call whose ops
    share the threads: the ops of linzoo's small nets (a LayerNorm, a GELU, an int8 matmul over
    [256, 49, 64]) are too short to split well across threads, whole inputs are not
    (docs/quantization.md: rows ``ORT int8 dynamic`` and ``ORT int8 dynamic, one call``). A session
    per worker, not one shared: 19.0 against 19.8 ms for the int8 mixer at batch 256 (2 threads).
    Parts of 32 images (the default) keep a part's activations in a core's L2 cache.
    A smaller batch (one image) is one call with every thread. ``split_from=None`` never splits.
    Float outputs are the same either way; int8's dynamic quantization takes its activation scales
    per call, so each part gets its own (as that smaller batch would), within the int8 noise.
    ``left_out``: the ONNX Runtime graph optimizers its sessions leave out (:func:`session`).

    It carries the ``image_size``, ``in_channels`` and ``num_classes`` of the net it was exported from.
    """

    # Parts of 32 beat 64 and one call for the mixer, ViT and cnn; 16 is within noise (docs/quantization.md).
    split_from_default = 32

    def __init__(
        self,
        path: str | Path,
        *,
        like: nn.Module | None = None,
        threads: int | None = None,
        split_from: int | None = split_from_default,
        left_out: Iterable[str] = SLOW_FUSIONS,
    ) -> None:
        super().__init__()
        self.path = Path(path)
        self.threads = threads or torch.get_num_threads()
        self.left_out = tuple(left_out)
        self.session = session(path, threads=self.threads, left_out=self.left_out)
        self.split_from = split_from if self.threads > 1 else None
        self._workers: list[Any] = []  # one one-thread session per worker thread, made when first needed
        self._pool: ThreadPoolExecutor | None = None
        for name in ("image_size", "in_channels", "num_classes"):
            if like is not None and hasattr(like, name):
                setattr(self, name, getattr(like, name))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        array = images.detach().to("cpu", torch.float32).contiguous().numpy()
        if self.split_from is None or len(array) < max(self.split_from, self.threads):
            return torch.from_numpy(self.session.run(None, {"input": array})[0])
        if self._pool is None:
            self._workers = [session(self.path, threads=1, left_out=self.left_out) for _ in range(self.threads)]
            self._pool = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="linzoo-ort")
        parts = np.array_split(array, max(self.threads, round(len(array) / self.split_from)))

        def run_share(worker: int) -> list[np.ndarray]:  # parts worker, worker + threads, ...
            runner = self._workers[worker]
            return [runner.run(None, {"input": part})[0] for part in parts[worker :: self.threads]]

        shares = list(self._pool.map(run_share, range(self.threads)))
        ordered = [shares[index % self.threads][index // self.threads] for index in range(len(parts))]
        return torch.from_numpy(np.concatenate(ordered))


def onnx_net(
    net: nn.Module,
    *,
    directory: str | Path,
    quantize: str | None = None,
    roles: Mapping[str, str | None] | None = None,
    threads: int | None = None,
) -> OnnxNet:
    """``net`` exported to ``directory/model.onnx`` (and, with ``quantize="int8"``, its Linears chosen
    by ``roles`` quantized to ``directory/model-int8.onnx``), run by ONNX Runtime."""
    require_onnxruntime("backend=onnxruntime")
    if not hasattr(net, "image_size"):
        raise UserValueError(
            "backend=onnxruntime runs nets of images (classifiers, autoencoders); the pixel LM's sampling "
            "loop is Python around its forward. Fix: backend=torch."
        )
    net = net.cpu().eval()
    directory = Path(directory)
    sample = torch.zeros(2, int(net.in_channels), int(net.image_size), int(net.image_size))
    path = export_onnx(net, directory / "model.onnx", sample=sample)
    if quantize:
        nodes = linear_nodes(path, quantized_paths(net, roles))
        path = quantize_onnx(path, directory / "model-int8.onnx", nodes=list(nodes.values()))
    return OnnxNet(path, like=net, threads=threads)


BACKENDS = ("torch", "onnxruntime")


def choose_backend(backend: str | None, *, quantize: str | None) -> str:
    """``"torch"`` or ``"onnxruntime"``; null picks ONNX Runtime for int8 (the fast int8), torch otherwise."""
    if backend is None or str(backend).lower() in ("null", "none", "auto"):
        chosen = "onnxruntime" if quantize else "torch"
    elif str(backend).lower() in BACKENDS:
        chosen = str(backend).lower()
    else:
        raise UserValueError(f"backend={backend}: expected torch or onnxruntime. Fix: backend=onnxruntime.")
    if chosen == "onnxruntime":
        require_onnxruntime(
            "backend=onnxruntime" if backend else "quantize=int8 (ONNX Runtime's int8; backend=torch: torchao's)"
        )
    return chosen
