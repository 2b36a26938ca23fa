"""Export a trained net: ``python scripts/export.py ckpt_path=... format=onnx|torchscript|exported_program|safetensors``.

Every format holds the plain net's ``forward`` (no Lightning): images [B, C, S, S] -> logits
or reconstructions, or, for the pixel LM, token ids [B, T] -> next-token logits (its
sampling loop, ``generate``, is Python control flow around ``forward`` and is not exported).
The batch axis is dynamic. A net trained with adapters (``adapter=lora``) is merged first
(W += (alpha / rank) B A), so the file holds a plain net. After writing, the file is read back and run
against PyTorch on ``check_inputs=`` (your images or tensor), else on the run's test images when they
are on this machine, else on generated inputs (linzoo/tools/check_inputs.py: no data is needed, none
is downloaded); the max abs difference is reported and must be <= 1e-4. The file holds the net and a
two-input example, no batch of data.

``quantize=int8`` writes an int8 ``.onnx`` by default: ONNX Runtime's dynamic int8 of the
factory Linears that the role policy picks (``quantize.roles.head=none`` keeps the heads float;
linzoo/tools/onnx_runtime.py), the fast path on CPU. ``format=exported_program`` writes torchao's
int8 instead (smaller file, slower than float32 in eager PyTorch). An int8 file is checked
against the float32 net by top-1 agreement, as int8 cannot match it to 1e-4.

``out=`` says what is written: its suffix names the format (``.onnx``, ``.torchscript.pt``,
``.pt2``, ``.safetensors``), so ``format=`` may be left out; a suffix that disagrees with
``format=`` is refused, naming both. ``out=`` ending in ``/`` or naming an existing directory
writes ``<dir>/model.<ext>`` inside it. The destination is checked (free, writable) before
anything is loaded.
"""

from __future__ import annotations

import io
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from linzoo.checkpoint import SAFETENSORS_CONFIG_KEY, build_net, net_config_of, rebuild_net
from linzoo.checkpoint.atomic import atomic_path
from linzoo.checkpoint.safetensors import read_safetensors
from linzoo.common.errors import UserFileExistsError, UserValueError
from linzoo.common.paths import fresh_path
from linzoo.models.adapters import merge_adapters
from linzoo.tools.check_inputs import check_inputs_for, read_check_inputs, traced_example
from linzoo.tools.destinations import check_writable
from linzoo.tools.onnx_runtime import export_onnx, linear_nodes, quantize_onnx
from linzoo.tools.quantize import quantize_int8, quantize_options, require
from linzoo.tools.quantize_policy import quantized_paths

log = logging.getLogger(__name__)

__all__ = ["FORMATS", "ExportResult", "destination", "export_checkpoint", "export_net", "format_of"]

# format -> file suffix
FORMATS: dict[str, str] = {
    "onnx": ".onnx",
    "torchscript": ".torchscript.pt",
    "exported_program": ".pt2",
    "safetensors": ".safetensors",
}
TOLERANCE = 1e-4  # max abs difference allowed between the exported file and PyTorch (float32)
INT8_FORMATS = ("onnx", "exported_program")  # onnx: ONNX Runtime's int8; exported_program: torchao's


@dataclass(frozen=True)
class ExportResult:
    path: Path
    max_abs_diff: float | None  # None for safetensors (weights are compared exactly instead)
    agreement: float | None = None  # int8 files: share of inputs whose top-1 class matches float32


def check_format(format: str | None, quantize: str | None) -> str:
    """The format to write (onnx by default, also for int8); unknown formats and int8 in a format
    that cannot hold it are clear errors."""
    if format is None:
        return "onnx"
    if format not in FORMATS:
        raise UserValueError(f"format={format!r} is unknown; choose one of {', '.join(FORMATS)}.")
    if quantize and format not in INT8_FORMATS:
        raise UserValueError(
            f"quantize={quantize} exports to format=onnx (ONNX Runtime int8, the fast one) or "
            f"format=exported_program (torchao int8) only; {format} cannot hold int8 Linears. "
            f"Use format=onnx, or drop quantize= for {format}."
        )
    return format


def format_of(path: str | Path) -> str | None:
    """The format whose suffix ``path``'s name ends with (``model.torchscript.pt``: torchscript), or None."""
    name = Path(path).name.lower()
    for format, suffix in sorted(FORMATS.items(), key=lambda item: -len(item[1])):
        if name.endswith(suffix):
            return format
    return None


def destination(
    out: str | Path | None, format: str | None, quantize: str | None, run_dir: str | Path
) -> tuple[Path, str]:
    """``(file to write, format)`` of ``out=`` and ``format=``, checked before any loading work:
    the suffix of ``out`` names the format (and must agree with ``format``); a directory
    (``out`` ending in ``/`` or an existing one) gets ``model.<ext>``; a taken file or a
    directory that cannot be written is a clear error."""
    if format is not None:
        check_format(format, None)  # an unknown format is named as such, before any mismatch
    name = "model-int8" if quantize else "model"
    if out is None or str(out).endswith(("/", os.sep)) or Path(out).is_dir():
        format = check_format(format, quantize)
        directory = Path(run_dir if out is None else out)
        check_writable(directory, setting=f"out={out}")
        return fresh_path(directory / f"{name}{FORMATS[format]}"), format
    path = Path(out)
    implied = format_of(path)
    if implied is None:
        suffixes = ", ".join(f"{suffix} ({kind})" for kind, suffix in FORMATS.items())
        raise UserValueError(
            f"out={out}: its suffix {''.join(path.suffixes) or '(none)'!r} names no export format; "
            f"end it with one of {suffixes}, or end out= with / to write {name}.<ext> into that directory."
        )
    if format is not None and format != implied:
        raise UserValueError(
            f"out={out} names a {implied} file ({FORMATS[implied]}) but format={format}; "
            f"they must agree. Fix: out=<name>{FORMATS.get(format, '')} or format={implied}."
        )
    format = check_format(implied, quantize)
    if path.exists():
        raise UserFileExistsError(
            f"out={out} already exists; nothing was written. Choose another path, or move that file away."
        )
    check_writable(path.parent, setting=f"out={out}")
    return path, format


def export_net(
    net: nn.Module,
    inputs: torch.Tensor,
    path: Path,
    format: str,
    *,
    build_config: dict[str, Any],
    int8_modules: list[str] | None = None,
) -> float | None:
    """Write ``net`` to ``path`` in ``format`` and return the max abs difference of the reloaded file vs PyTorch.

    The file is written and checked under a temp name beside ``path`` and becomes ``path`` only
    when both worked: a failed or interrupted export leaves no truncated file behind. Formats
    that torch's C++ writer would write (torchscript, exported_program) and safetensors are
    serialized in memory and written by Python: on a full disk that writer aborts the whole
    process (exit 134), where Python's write raises an ``OSError`` that names the cause.
    """
    require({"onnx": "onnxruntime", "safetensors": "safetensors"}.get(format, "torch"), f"format={format}")
    if format == "onnx":
        require("onnxscript", "format=onnx")
    with atomic_path(path) as temporary:
        return _write_and_compare(net, inputs, temporary, format, build_config=build_config, int8_modules=int8_modules)


def _write_and_compare(
    net: nn.Module,
    inputs: torch.Tensor,
    path: Path,
    format: str,
    *,
    build_config: dict[str, Any],
    int8_modules: list[str] | None = None,
) -> float:
    with torch.no_grad():
        expected = net(inputs)
    if format == "safetensors":
        from safetensors.torch import save

        # Tied weights (the LM head) are stored once per name: safetensors refuses shared storage.
        tensors = {name: tensor.detach().clone().contiguous() for name, tensor in net.state_dict().items()}
        path.write_bytes(save(tensors, metadata={SAFETENSORS_CONFIG_KEY: json.dumps(build_config), "format": "pt"}))
        saved_state, saved_config = read_safetensors(path)
        rebuilt = build_net(net_config_of(saved_config))
        rebuilt.load_state_dict(saved_state)
        with torch.no_grad():
            return (rebuilt.eval()(inputs) - expected).abs().max().item()
    batch = torch.export.Dim("batch", min=1)
    sample = traced_example(inputs)  # a copy: the file keeps it, so a view would carry the whole batch
    if format == "onnx":
        import onnxruntime

        export_onnx(net, path, sample=sample)
        if int8_modules is not None:  # the float file is rewritten in place as its int8 version
            nodes = list(linear_nodes(path, int8_modules).values())
            float_path = path.with_name(path.name + ".float.onnx")
            path.replace(float_path)
            try:
                quantize_onnx(float_path, path, nodes=nodes)
            finally:
                float_path.unlink(missing_ok=True)
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        actual = torch.from_numpy(session.run(None, {"input": inputs.numpy()})[0])
    elif format == "exported_program":
        path.write_bytes(
            _in_memory(torch.export.save, torch.export.export(net, (sample,), dynamic_shapes=({0: batch},)))
        )
        with torch.no_grad():
            actual = torch.export.load(str(path)).module()(inputs)
    else:  # torchscript, by tracing: the models' Python input checks run once, at trace time
        with torch.no_grad():
            path.write_bytes(_in_memory(torch.jit.save, torch.jit.trace(net, (sample,))))
            actual = torch.jit.load(str(path))(inputs)
    return (actual.float() - expected.float()).abs().max().item()


def _in_memory(save: Any, program: Any) -> bytes:
    """What ``save(program, file)`` writes, as bytes."""
    buffer = io.BytesIO()
    save(program, buffer)
    return buffer.getvalue()


def merged(net: nn.Module, build_config: dict[str, Any]) -> tuple[nn.Module, dict[str, Any]]:
    """The net with its adapters (LoRA) folded into its weights, and its build config without
    them: an exported file holds a plain net, whatever trained it."""
    if "adapter" not in net_config_of(build_config):
        return net, build_config
    net_config = {key: value for key, value in net_config_of(build_config).items() if key != "adapter"}
    log.info(
        "Merging the net's adapters into its weights (adapter %s) before exporting.",
        build_config["model"]["net"]["adapter"],
    )
    return merge_adapters(net), {**build_config, "model": {**build_config["model"], "net": net_config}}


def export_checkpoint(
    *,
    ckpt_path: str | Path,
    format: str | None = None,
    out: str | Path | None = None,
    quantize: str | Mapping[str, Any] | None = None,
    check_inputs: str | Path | None = None,
    run_dir: str | Path,
) -> ExportResult:
    """Export the net of ``ckpt_path`` (a .ckpt, run directory or .safetensors file) and check the
    file on ``check_inputs`` (a path as predict's ``inputs=``; None: test images, else generated)."""
    quantize, roles = quantize_options(quantize)
    path, format = destination(out, format, quantize, run_dir)
    given = read_check_inputs(check_inputs)
    net, build_config = rebuild_net(ckpt_path)
    net, build_config = merged(net, build_config)
    net = net.cpu().eval()
    checked = check_inputs_for(net, build_config, given=given)
    inputs = checked.inputs
    with torch.no_grad():
        float_outputs = net(inputs)
    int8_modules = quantized_paths(net, roles) if quantize and format == "onnx" else None
    if quantize and format == "exported_program":
        net = quantize_int8(net, roles=roles)
    path.parent.mkdir(parents=True, exist_ok=True)
    if hasattr(net, "generate"):
        log.info("The pixel LM's forward (token ids -> logits) is exported; its sampling loop (generate) is not.")
    difference = export_net(net, inputs, path, format, build_config=build_config, int8_modules=int8_modules)
    backend = {"onnx": "ONNX Runtime", "exported_program": "torchao"}.get(format, "")
    print(f"Exported {format}{f' int8 ({backend})' if quantize else ''}: {path} ({path.stat().st_size / 1e6:.3f} MB)")
    if quantize:
        difference, agreement = _against_float(path, format, inputs, float_outputs)
        print(
            f"Check: int8 {format} vs float32 PyTorch on {len(inputs)} {checked.source}: max abs difference {difference:.3g}, "
            f"same top-1 output on {100 * agreement:.1f}%"
        )
        return ExportResult(path, difference, agreement)
    print(f"Check: reloaded {format} vs PyTorch on {len(inputs)} {checked.source}, max abs difference {difference:.3g}")
    if difference > TOLERANCE:
        raise RuntimeError(
            f"The exported {path} differs from PyTorch by {difference:.3g} (> {TOLERANCE}); the file is kept for inspection."
        )
    return ExportResult(path, difference)


def _against_float(path: Path, format: str, inputs: torch.Tensor, float_outputs: torch.Tensor) -> tuple[float, float]:
    """``(max abs difference, top-1 agreement)`` of the int8 file against the float32 net on ``inputs``."""
    if format == "onnx":
        from linzoo.tools.onnx_runtime import session

        actual = torch.from_numpy(session(path).run(None, {"input": inputs.numpy()})[0])
    else:
        with torch.no_grad():
            actual = torch.export.load(str(path)).module()(inputs)
    difference = (actual.float() - float_outputs.float()).abs().max().item()
    return difference, (actual.argmax(dim=-1) == float_outputs.argmax(dim=-1)).float().mean().item()
