"""Predict on your own images: ``python scripts/predict.py ckpt_path=... inputs=PATH``.

Classifiers: a table of file, predicted class and top-k probabilities, printed and written
as ``predictions.csv``; autoencoders: ``reconstructions.png``, inputs above their
reconstructions. Both land in the run directory under a fresh name (nothing is overwritten).
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from linzoo.callbacks.image_files import fresh_path, save_image_grid
from linzoo.checkpoint import read_net, rebuild_net
from linzoo.common.errors import UserValueError
from linzoo.data.sources import DATASETS
from linzoo.tools.image_inputs import read_inputs

log = logging.getLogger(__name__)

__all__ = ["Prediction", "classify", "predict_checkpoint", "task_kind"]

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
    """The names of the classes the model was trained on (digits for MNIST)."""
    dataset = (build_config.get("data") or {}).get("dataset", "mnist")
    names = DATASETS[dataset].class_names if dataset in DATASETS else ()
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
    lines = [f"{'file':<{width}}  class  top-{len(predictions[0].top)}"]
    for prediction in predictions:
        top = "  ".join(f"{label}: {probability:.3f}" for label, probability in prediction.top)
        lines.append(f"{prediction.name:<{width}}  {prediction.label:<5}  {top}")
    return "\n".join(lines)


def write_csv(predictions: list[Prediction], path: Path) -> Path:
    """``file,class,top1,prob1,top2,prob2,...`` one row per input."""
    k = len(predictions[0].top)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "class", *[f"{kind}{i + 1}" for i in range(k) for kind in ("top", "prob")]])
        for prediction in predictions:
            cells = [value for label, probability in prediction.top for value in (label, f"{probability:.6f}")]
            writer.writerow([prediction.name, prediction.label, *cells])
    return path


def predict_checkpoint(
    *,
    ckpt_path: str | Path,
    inputs: str | Path,
    run_dir: str | Path,
    invert: str | bool = "auto",
    top_k: int = 3,
    batch_size: int = 256,
    device: str = "cpu",
) -> Path:
    """Predict ``inputs`` with the model of ``ckpt_path`` (a .ckpt, run directory or .safetensors file).

    Returns the file written: ``predictions.csv`` (classifiers) or ``reconstructions.png``
    (autoencoders), under a fresh name in ``run_dir``.
    """
    _, build_config = read_net(ckpt_path)
    kind = task_kind(build_config)
    if kind == "lm":
        raise UserValueError(
            f"{ckpt_path} holds a pixel language model, which generates images rather than predicting "
            "on them; draw digits with scripts/sample.py ckpt_path=... instead."
        )
    if top_k < 1:
        raise UserValueError(f"top_k must be >= 1, got {top_k}.")
    net, _ = rebuild_net(ckpt_path)
    net = net.to(device).eval()
    names, images = read_inputs(inputs, image_size=int(net.image_size), in_channels=int(net.in_channels), invert=invert)
    images = images.to(device)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if kind == "classifier":
        labels = class_names(build_config, int(net.num_classes))
        predictions = classify(net, names, images, labels, top_k=top_k, batch_size=batch_size)
        print(format_table(predictions))
        return write_csv(predictions, fresh_path(run_dir / "predictions.csv"))
    with torch.no_grad():
        reconstructions = torch.cat([net(batch) for batch in images.split(batch_size)])
    shown = images[:32]
    path = fresh_path(run_dir / "reconstructions.png")
    save_image_grid(torch.cat([shown, reconstructions[:32]]).cpu(), path, nrow=len(shown))
    print(f"{len(images)} input(s) reconstructed; the first {len(shown)} (top row) above their reconstructions.")
    return path
