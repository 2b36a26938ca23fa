"""What the picture drawers share: where a picture goes, how it is logged, which images, inference mode.

Files themselves (fresh names, PNG grids, figures) are ``linzoo.callbacks.image_files``'s.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

import lightning as L
import torch
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.loggers import MLFlowLogger, TensorBoardLogger
from matplotlib.figure import Figure

from linzoo.common.paths import fresh_path

log = logging.getLogger(__name__)


def picture_path(trainer: L.Trainer, filename: str) -> Path:
    """A fresh path for ``filename`` in the run directory (created when missing)."""
    folder = Path(trainer.default_root_dir)
    folder.mkdir(parents=True, exist_ok=True)
    return fresh_path(folder / filename)


def log_picture(trainer: L.Trainer, tag: str, picture: Figure | torch.Tensor) -> None:
    """Show a figure, or an image grid [3, H, W] (uint8), in every logger of the run that takes
    pictures: TensorBoard (``add_figure``/``add_image`` under ``tag``) and MLflow (an artifact
    ``<tag>.png``, e.g. ``pictures/curves.png``). No-op without them.

    Figures are rendered as ``savefig`` does (same size in pixels); nothing is read back from the PNG.
    """
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            if isinstance(picture, Figure):
                logger.experiment.add_figure(tag, picture, global_step=trainer.global_step, close=False)
            else:
                logger.experiment.add_image(tag, picture, global_step=trainer.global_step, dataformats="CHW")
        elif isinstance(logger, MLFlowLogger):
            if isinstance(picture, Figure):
                logger.experiment.log_figure(logger.run_id, picture, f"{tag}.png")
            else:
                logger.experiment.log_image(logger.run_id, picture.permute(1, 2, 0).cpu().numpy(), f"{tag}.png")


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
        with (
            torch.no_grad(),
            trainer.precision_plugin.forward_context(),
            eager("force_eager") if eager else nullcontext(),
        ):
            yield
    finally:
        module.train(was_training)
