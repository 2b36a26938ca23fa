"""Predict on your own images: ``python scripts/predict.py ckpt_path=... inputs=PATH``.

Classifiers: a table of file, predicted class and top-k probabilities, printed and written
as ``predictions.csv``; autoencoders: ``reconstructions.png``, inputs above their
reconstructions. Both land in the run directory under a fresh name (nothing is overwritten),
written atomically. A CSV cell that a spreadsheet would run as a formula (a file named
``=HYPERLINK(...)``: cells starting with ``= + - @``, tab or carriage return) is prefixed with a
single quote, as OWASP advises against CSV injection. ``batch_size``, ``device``, ``top_k`` and
``inputs`` are checked before the model is loaded.

A plain forward needs torch, PIL and numpy only: no Lightning, torchvision or matplotlib is
imported (they cost seconds of start-up; tests/test_predict.py checks it).

``backend=onnxruntime`` runs the net in ONNX Runtime on the CPU (exported to a temporary ``.onnx``);
``quantize=int8`` runs ONNX Runtime's int8 (``quantize.roles.head=none`` keeps the heads float),
or torchao's int8 with ``backend=torch``.
"""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from linzoo.checkpoint import rebuild_net
from linzoo.checkpoint.atomic import write_text_atomically
from linzoo.common.errors import UserValueError
from linzoo.common.paths import fresh_path
from linzoo.data.class_names import CLASS_NAMES
from linzoo.tools.image_inputs import collect_inputs, read_inputs
from linzoo.tools.onnx_runtime import choose_backend, onnx_net
from linzoo.tools.quantize import quantize_int8, quantize_options

log = logging.getLogger(__name__)

__all__ = ["Prediction", "check_batch_size", "check_device", "classify", "predict_checkpoint", "task_kind"]

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # OWASP: what a spreadsheet may run as a formula

TASK_KINDS = {"Classifier": "classifier", "Autoencoding": "autoencoder", "LanguageModeling": "lm"}


@dataclass(frozen=True)
class Prediction:
    """One classified input: its name, the predicted class and the top-k ``(class, probability)``."""

    name: str
    label: str
    top: list[tuple[str, float]]


def task_kind(build_config: dict[str, Any]) -> str:
    """``"classifier"``, ``"autoencoder"`` or ``"lm"``: what the saved task was."""
    return TASK_KINDS[build_config["model"]["_target_"].rpartition(".")[2]]


def class_names(build_config: dict[str, Any], num_classes: int) -> list[str]:
    """The names of the classes the model was trained on: those its data recorded (``data=image_folder``:
    the class folders' names), else its dataset's (digits for MNIST), else the indices."""
    recorded = (build_config.get("data_identity") or {}).get("class_names")
    if isinstance(recorded, list) and len(recorded) == num_classes:
        return [str(name) for name in recorded]
    dataset = (build_config.get("data") or {}).get("dataset", "mnist")
    names = CLASS_NAMES.get(dataset, ())
    return list(names) if len(names) == num_classes else [str(index) for index in range(num_classes)]


@torch.no_grad()
def classify(
    net: nn.Module, names: list[str], images: torch.Tensor, labels: list[str], *, top_k: int = 3, batch_size: int = 256
) -> list[Prediction]:
    """Predictions of ``net`` (logits [B, K]) for ``images`` [N, C, H, W]."""
    probabilities = torch.cat([net(batch).float().softmax(dim=-1) for batch in images.split(batch_size)])
    values, indices = probabilities.topk(min(top_k, probabilities.shape[1]), dim=1)
    return [
        Prediction(name, labels[int(index[0])], [(labels[int(i)], float(v)) for v, i in zip(value, index)])
        for name, value, index in zip(names, values, indices)
    ]


def format_table(predictions: list[Prediction]) -> str:
    """A plain-text table: file, predicted class, top-k probabilities."""
    width = max(4, *(len(p.name) for p in predictions))
    label_width = max(5, *(len(p.label) for p in predictions))  # class names (image folders) may be long
    lines = [f"{'file':<{width}}  {'class':<{label_width}}  top-{len(predictions[0].top)}"]
    for prediction in predictions:
        top = "  ".join(f"{label}: {probability:.3f}" for label, probability in prediction.top)
        lines.append(f"{prediction.name:<{width}}  {prediction.label:<{label_width}}  {top}")
    return "\n".join(lines)


def csv_cell(text: str) -> str:
    """``text``, prefixed with ``'`` when a spreadsheet would take it for a formula (CSV injection)."""
    return f"'{text}" if text.startswith(FORMULA_STARTS) else text


def write_csv(predictions: list[Prediction], path: Path) -> Path:
    """``file,class,top1,prob1,top2,prob2,...`` one row per input, written atomically."""
    k = len(predictions[0].top)
    handle = io.StringIO(newline="")
    writer = csv.writer(handle)
    writer.writerow(["file", "class", *[f"{kind}{i + 1}" for i in range(k) for kind in ("top", "prob")]])
    for prediction in predictions:
        cells = [value for label, probability in prediction.top for value in (csv_cell(label), f"{probability:.6f}")]
        writer.writerow([csv_cell(prediction.name), csv_cell(prediction.label), *cells])
    return write_text_atomically(path, handle.getvalue())


def check_batch_size(batch_size: object) -> int:
    """``batch_size`` as an int >= 1, else a clear error."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise UserValueError(f"batch_size={batch_size}: expected a whole number >= 1. Fix: batch_size=256.")
    return batch_size


def check_device(device: object) -> torch.device:
    """``device`` as a torch device this machine has, else a clear error."""
    try:
        parsed = torch.device(str(device))
    except RuntimeError as error:
        raise UserValueError(f"device={device}: not a device ({error}). Fix: device=cpu or device=cuda.") from error
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise UserValueError(
                f"device={device}: this machine has no CUDA GPU that PyTorch can use. Fix: device=cpu."
            )
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise UserValueError(
                f"device={device}: this machine has {torch.cuda.device_count()} CUDA GPU(s). Fix: device=cuda:0."
            )
    elif parsed.type == "mps" and not torch.backends.mps.is_available():
        raise UserValueError(f"device={device}: MPS is not available on this machine. Fix: device=cpu.")
    elif parsed.type not in ("cpu", "cuda", "mps"):
        raise UserValueError(f"device={device}: expected cpu, cuda or mps. Fix: device=cpu.")
    return parsed


def predict_checkpoint(
    *,
    ckpt_path: str | Path,
    inputs: str | Path,
    run_dir: str | Path,
    invert: str | bool | None = None,
    top_k: int = 3,
    batch_size: int = 256,
    device: str = "cpu",
    backend: str | None = None,
    quantize: str | Mapping[str, Any] | None = None,
) -> Path:
    """Predict ``inputs`` with the model of ``ckpt_path`` (a .ckpt, run directory or .safetensors file).

    ``invert`` None: as the model's training images were read (``data.invert`` of a
    ``data=image_folder`` run), else ``"auto"``.

    Returns the file written: ``predictions.csv`` (classifiers) or ``reconstructions.png``
    (autoencoders), under a fresh name in ``run_dir``.
    """
    if top_k < 1:
        raise UserValueError(f"top_k must be >= 1, got {top_k}.")
    batch_size = check_batch_size(batch_size)
    target = check_device(device)
    quantize, roles = quantize_options(quantize)
    backend = choose_backend(backend, quantize=quantize)
    if (backend == "onnxruntime" or quantize) and target.type != "cpu":
        raise UserValueError(f"device={device}: backend={backend} and quantize=int8 run on the CPU. Fix: device=cpu.")
    raw_inputs = collect_inputs(inputs)
    net, build_config = rebuild_net(ckpt_path)  # the file is read once
    kind = task_kind(build_config)
    if kind == "lm":
        raise UserValueError(
            f"{ckpt_path} holds a pixel language model, which generates images rather than predicting "
            "on them; draw digits with scripts/sample.py ckpt_path=... instead."
        )
    net = net.to(target).eval()
    if invert is None:
        invert = (build_config.get("data") or {}).get("invert", "auto")
    names, images = read_inputs(
        raw_inputs, image_size=int(net.image_size), in_channels=int(net.in_channels), invert=invert
    )
    images = images.to(target)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    with _backend_net(net, backend=backend, quantize=quantize, roles=roles) as net:
        return _predict(net, kind, build_config, names, images, run_dir, top_k=top_k, batch_size=batch_size)


@contextlib.contextmanager
def _backend_net(net: nn.Module, *, backend: str, quantize: str | None, roles: dict[str, str]) -> Iterator[nn.Module]:
    """``net`` as ``backend`` runs it: itself, torchao's int8 of it, or an ONNX Runtime session (temp files)."""
    if backend == "torch":
        yield quantize_int8(net, roles=roles) if quantize else net
        return
    with tempfile.TemporaryDirectory(prefix="linzoo-onnx-") as directory:
        yield onnx_net(net, directory=directory, quantize=quantize, roles=roles)


def _predict(
    net: nn.Module,
    kind: str,
    build_config: dict[str, Any],
    names: list[str],
    images: torch.Tensor,
    run_dir: Path,
    *,
    top_k: int,
    batch_size: int,
) -> Path:
    if kind == "classifier":
        labels = class_names(build_config, int(net.num_classes))
        predictions = classify(net, names, images, labels, top_k=top_k, batch_size=batch_size)
        print(format_table(predictions))
        return write_csv(predictions, fresh_path(run_dir / "predictions.csv"))
    from linzoo.callbacks.image_files import save_image_grid  # matplotlib, torchvision: autoencoders only

    with torch.no_grad():
        reconstructions = torch.cat([net(batch) for batch in images.split(batch_size)])
    shown = images[:32]
    path = fresh_path(run_dir / "reconstructions.png")
    save_image_grid(torch.cat([shown, reconstructions[:32]]).cpu(), path, nrow=len(shown))
    print(f"{len(images)} input(s) reconstructed; the first {len(shown)} (top row) above their reconstructions.")
    return path
