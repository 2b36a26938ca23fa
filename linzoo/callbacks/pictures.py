"""What every picture callback shares: where a picture goes, how it is written and logged.

Pictures are PNG files in the run directory (``trainer.default_root_dir``). A name
that is taken gets a suffix (``curves-1.png``): no file is ever overwritten. Figures
are plain ``matplotlib.figure.Figure`` objects (Agg, no pyplot state, no screen), saved
without ``bbox_inches="tight"`` so a figure of ``width x height`` pixels stays that size.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.loggers import MLFlowLogger, TensorBoardLogger
from matplotlib.figure import Figure
from PIL import Image
from torchvision.utils import save_image

log = logging.getLogger(__name__)

DPI = 100


def fresh_path(path: str | Path) -> Path:
    """``path`` if nothing is there, else ``<stem>-1<suffix>``, ``<stem>-2<suffix>``, ..."""
    path = Path(path)
    candidate, number = path, 0
    while candidate.exists():
        number += 1
        candidate = path.with_name(f"{path.stem}-{number}{path.suffix}")
    return candidate


def picture_path(trainer: L.Trainer, filename: str) -> Path:
    """A fresh path for ``filename`` in the run directory (created when missing)."""
    folder = Path(trainer.default_root_dir)
    folder.mkdir(parents=True, exist_ok=True)
    return fresh_path(folder / filename)


def display_scale(side: int, *, min_side: int = 56) -> int:
    """The integer factor that enlarges a ``side``-pixel image to at least ``min_side`` pixels."""
    return max(1, math.ceil(min_side / side))


def save_image_grid(images: torch.Tensor, path: str | Path, *, nrow: int, padding: int = 2,
                    min_side: int = 56) -> Path:
    """Write images [N, C, H, W] in [0, 1] as one PNG grid of ``nrow`` images a row.

    Each image is first enlarged by s = ``display_scale(H, min_side=min_side)`` (nearest
    neighbour: 28x28 digits by 2, 14x14 by 4), so the PNG is ``nrow * (s W + padding) + padding``
    wide and ``rows * (s H + padding) + padding`` high, rows = ceil(N / nrow); grey (0.5)
    lines separate the images.
    """
    images = images.detach().float().cpu().clamp(0, 1)
    scale = display_scale(images.shape[-2], min_side=min_side)
    if scale > 1:
        images = images.repeat_interleave(scale, dim=-2).repeat_interleave(scale, dim=-1)
    save_image(images, path, nrow=nrow, padding=padding, pad_value=0.5)
    return Path(path)


def new_figure(width: int, height: int) -> Figure:
    """A matplotlib figure of ``width x height`` pixels with constrained layout."""
    return Figure(figsize=(width / DPI, height / DPI), dpi=DPI, layout="constrained")


def save_figure(figure: Figure, path: str | Path) -> Path:
    figure.savefig(path, dpi=DPI, format="png")
    return Path(path)


def log_picture(trainer: L.Trainer, tag: str, path: Path) -> None:
    """Show the PNG at ``path`` in every TensorBoard logger of the run, and store it as an
    artifact (folder: the tag's, e.g. ``pictures/``) of every MLflow run (no-op without them)."""
    for logger in trainer.loggers:
        if isinstance(logger, MLFlowLogger):
            logger.experiment.log_artifact(logger.run_id, str(path), artifact_path=str(Path(tag).parent))
    tensorboards = [logger for logger in trainer.loggers if isinstance(logger, TensorBoardLogger)]
    if not tensorboards:
        return
    with Image.open(path) as picture:
        pixels = np.asarray(picture.convert("RGB"))
    for logger in tensorboards:
        logger.experiment.add_image(tag, pixels, global_step=trainer.global_step, dataformats="HWC")


def announce(path: Path) -> None:
    log.info("Wrote %s", path)


def first_examples(trainer: L.Trainer, num: int) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The first ``num`` (images [n, C, H, W], labels [n]) of the test split, on CPU.

    Falls back to the validation data when the datamodule has no test split; None when
    there is no data at all.
    """
    images: list[torch.Tensor] = []
    labels: list[torch.Tensor] = []
    count = 0
    for batch in _example_loader(trainer) or []:
        images.append(batch[0].detach().cpu())
        labels.append(batch[1].detach().cpu())
        count += len(batch[1])
        if count >= num:
            break
    if not images:
        return None
    return torch.cat(images)[:num], torch.cat(labels)[:num]


def _example_loader(trainer: L.Trainer):  # noqa: ANN202 - any iterable of (images, labels)
    datamodule = trainer.datamodule
    if datamodule is not None:
        try:
            return datamodule.test_dataloader()
        except (MisconfigurationException, NotImplementedError, RuntimeError):
            pass  # no test split (or not set up): use the validation data
    loaders = trainer.val_dataloaders
    return loaders[0] if isinstance(loaders, (list, tuple)) else loaders


@contextmanager
def inference(trainer: L.Trainer, module: L.LightningModule) -> Iterator[None]:
    """Eval mode, no gradients, the run's precision, eager (never recompile a compiled net)."""
    was_training = module.training
    module.eval()
    eager = getattr(torch.compiler, "set_stance", None)
    try:
        with torch.no_grad(), trainer.precision_plugin.forward_context(), (
            eager("force_eager") if eager else nullcontext()
        ):
            yield
    finally:
        module.train(was_training)
