"""Export a trained net: ``python scripts/export.py ckpt_path=... format=onnx|torchscript|exported_program|safetensors``.

Every format holds the plain net's ``forward`` (no Lightning): images [B, C, S, S] -> logits
or reconstructions, or, for the pixel LM, token ids [B, T] -> next-token logits (its
sampling loop, ``generate``, is Python control flow around ``forward`` and is not exported).
The batch axis is dynamic. After writing, the file is read back and run on real test
inputs against PyTorch; the max abs difference is reported and must be <= 1e-4.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from linzoo.callbacks.image_files import fresh_path
from linzoo.checkpoint import SAFETENSORS_CONFIG_KEY, build_net, net_config_of, rebuild_net
from linzoo.checkpoint.atomic import atomic_path
from linzoo.checkpoint.safetensors import read_safetensors
from linzoo.common.errors import UserFileExistsError, UserValueError
from linzoo.tools.quantize import check_quantize, quantize_int8, require

log = logging.getLogger(__name__)

__all__ = ["FORMATS", "ExportResult", "export_checkpoint", "export_net"]

# format -> file suffix
FORMATS: dict[str, str] = {
    "onnx": ".onnx",
    "torchscript": ".torchscript.pt",
    "exported_program": ".pt2",
    "safetensors": ".safetensors",
}
TOLERANCE = 1e-4  # max abs difference allowed between the exported file and PyTorch (float32)


@dataclass(frozen=True)
class ExportResult:
    path: Path
    max_abs_diff: float | None  # None for safetensors (weights are compared exactly instead)


def check_format(format: str | None, quantize: str | None) -> str:
    """The format to write; unknown formats and int8 outside ``exported_program`` are clear errors."""
    if format is None:
        return "exported_program" if quantize else "onnx"
    if format not in FORMATS:
        raise UserValueError(f"format={format!r} is unknown; choose one of {', '.join(FORMATS)}.")
    if quantize and format != "exported_program":
        raise UserValueError(
            f"quantize={quantize} exports to format=exported_program only: torchao's int8 weights are tensor "
            f"subclasses that {format} cannot hold. Use format=exported_program, or drop quantize= for {format}."
        )
    return format


def example_inputs(net: nn.Module, build_config: dict[str, Any], *, num: int = 16) -> torch.Tensor:
    """Real inputs for the check: ``num`` test images of the run's data (the offline sample when
    full data is absent); token ids for the pixel LM (its test images as tokens)."""
    from linzoo.data.rebuild import build_datamodule

    datamodule = build_datamodule(build_config["data"], download=False, on_device=False, num_workers=0)
    datamodule.setup("test")
    images, labels = next(iter(datamodule.test_dataloader()))
    images, labels = images[:num], labels[:num]
    if not hasattr(net, "vocab_size"):
        return images
    from linzoo.tasks import LanguageModeling  # the pixel LM's own tokenisation: [start, p_0, ..., p_{P-2}]

    model = build_config["model"]
    task = LanguageModeling(
        net=net,
        optimizer=None,
        levels=model["levels"],
        image_size=model.get("image_size"),
        conditional=model.get("conditional", False),
        num_classes=model.get("num_classes", 10),
    )
    tokens = task.pixel_tokens(images)
    return torch.cat([task.start_tokens(labels, len(tokens), tokens.device), tokens[:, :-1]], dim=1)


def export_net(
    net: nn.Module, inputs: torch.Tensor, path: Path, format: str, *, build_config: dict[str, Any]
) -> float | None:
    """Write ``net`` to ``path`` in ``format`` and return the max abs difference of the reloaded file vs PyTorch.

    The file is written and checked under a temp name beside ``path`` and becomes ``path`` only
    when both worked: a failed or interrupted export leaves no truncated file behind.
    """
    require({"onnx": "onnxruntime", "safetensors": "safetensors"}.get(format, "torch"), f"format={format}")
    if format == "onnx":
        require("onnxscript", "format=onnx")
    with atomic_path(path) as temporary:
        return _write_and_compare(net, inputs, temporary, format, build_config=build_config)


def _write_and_compare(
    net: nn.Module, inputs: torch.Tensor, path: Path, format: str, *, build_config: dict[str, Any]
) -> float:
    with torch.no_grad():
        expected = net(inputs)
    if format == "safetensors":
        from safetensors.torch import save_file

        # Tied weights (the LM head) are stored once per name: safetensors refuses shared storage.
        tensors = {name: tensor.detach().clone().contiguous() for name, tensor in net.state_dict().items()}
        save_file(tensors, str(path), metadata={SAFETENSORS_CONFIG_KEY: json.dumps(build_config), "format": "pt"})
        saved_state, saved_config = read_safetensors(path)
        rebuilt = build_net(net_config_of(saved_config))
        rebuilt.load_state_dict(saved_state)
        with torch.no_grad():
            return (rebuilt.eval()(inputs) - expected).abs().max().item()
    batch = torch.export.Dim("batch", min=1)
    sample = inputs[:2]
    if format == "onnx":
        import onnxruntime

        torch.onnx.export(
            net,
            (sample,),
            str(path),
            dynamo=True,
            input_names=["input"],
            output_names=["output"],
            dynamic_shapes=({0: batch},),
            external_data=False,
            verbose=False,
        )
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        actual = torch.from_numpy(session.run(None, {"input": inputs.numpy()})[0])
    elif format == "exported_program":
        torch.export.save(torch.export.export(net, (sample,), dynamic_shapes=({0: batch},)), str(path))
        with torch.no_grad():
            actual = torch.export.load(str(path)).module()(inputs)
    else:  # torchscript, by tracing: the models' Python input checks run once, at trace time
        with torch.no_grad():
            torch.jit.trace(net, (sample,)).save(str(path))
            actual = torch.jit.load(str(path))(inputs)
    return (actual.float() - expected.float()).abs().max().item()


def export_checkpoint(
    *,
    ckpt_path: str | Path,
    format: str | None = None,
    out: str | Path | None = None,
    quantize: str | None = None,
    run_dir: str | Path,
) -> ExportResult:
    """Export the net of ``ckpt_path`` (a .ckpt, run directory or .safetensors file) and check the file."""
    quantize = check_quantize(quantize)
    format = check_format(format, quantize)
    if out is not None and Path(out).exists():
        raise UserFileExistsError(
            f"out={out} already exists; nothing was written. Choose another path, or move that file away."
        )
    net, build_config = rebuild_net(ckpt_path)
    net = net.cpu().eval()
    inputs = example_inputs(net, build_config)
    if quantize:
        net = quantize_int8(net)
    if out is None:
        Path(run_dir).mkdir(parents=True, exist_ok=True)
        name = "model-int8" if quantize else "model"
        path = fresh_path(Path(run_dir) / f"{name}{FORMATS[format]}")
    else:
        path = Path(out)
        path.parent.mkdir(parents=True, exist_ok=True)
    if hasattr(net, "generate"):
        log.info("The pixel LM's forward (token ids -> logits) is exported; its sampling loop (generate) is not.")
    difference = export_net(net, inputs, path, format, build_config=build_config)
    print(f"Exported {format}{' int8' if quantize else ''}: {path} ({path.stat().st_size / 1e6:.3f} MB)")
    print(f"Check: reloaded {format} vs PyTorch on {len(inputs)} test inputs, max abs difference {difference:.3g}")
    if difference > TOLERANCE:
        raise RuntimeError(
            f"The exported {path} differs from PyTorch by {difference:.3g} (> {TOLERANCE}); the file is kept for inspection."
        )
    return ExportResult(path, difference)
