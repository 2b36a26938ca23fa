"""Classifier pictures at the end of testing: the confusion matrix and the misclassified images."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import lightning as L
import torch
from matplotlib.figure import Figure
from torchmetrics.classification import MulticlassConfusionMatrix

from linzoo.callbacks.common import announce, log_picture, picture_path
from linzoo.callbacks.image_files import new_figure, save_figure
from linzoo.common.errors import UserValueError
from linzoo.tasks.classifier import Classifier

log = logging.getLogger(__name__)


class ConfusionMatrix:
    """Writes ``confusion_matrix.png`` and ``misclassified.png`` when testing ends (classifiers).

    Reads the predicted labels that ``Classifier.test_step`` returns (``{"preds": [B]}``);
    batches without them are skipped. torchmetrics' ``MulticlassConfusionMatrix`` counts test
    images by true class (rows) and predicted class (columns) and adds the counts of all
    processes; a cell's colour is its share of the row.
    ``misclassified.png`` shows the first ``max_images`` test images the net got wrong,
    each titled ``true -> predicted``: ``columns`` a row, each cell ``CELL`` pixels.
    Counts are summed over processes; the images are those of process 0.
    """

    task = Classifier
    CELL = (120, 135)  # width, height in pixels of one misclassified image with its title
    HEADER = 30  # pixels above the grid for the figure title

    def __init__(
        self,
        *,
        max_images: int = 36,
        columns: int = 6,
        matrix_filename: str = "confusion_matrix.png",
        misclassified_filename: str = "misclassified.png",
    ) -> None:
        if max_images < 0 or columns < 1:
            raise UserValueError(f"need max_images >= 0 and columns >= 1, got {max_images} and {columns}.")
        self.max_images = max_images
        self.columns = columns
        self.matrix_filename = matrix_filename
        self.misclassified_filename = misclassified_filename
        self._reset()

    def _reset(self) -> None:
        self.matrix: MulticlassConfusionMatrix | None = None
        self.wrong_images: list[torch.Tensor] = []
        self.wrong_pairs: list[torch.Tensor] = []  # [n, 2]: true, predicted

    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._reset()
        # validate_args=False: no per-batch checks (they call torch.unique); preds come from argmax.
        self.matrix = MulticlassConfusionMatrix(pl_module.num_classes, validate_args=False).to(pl_module.device)

    @property
    def counts(self) -> torch.Tensor:
        """[K, K] int64 counts, rows true, columns predicted, summed over processes."""
        return self.matrix.compute().long()

    def on_test_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if not isinstance(outputs, Mapping) or "preds" not in outputs:
            return
        images, labels = batch[0], batch[1]
        predictions = outputs["preds"]
        self.matrix.update(predictions, labels)
        missing = self.max_images - sum(len(p) for p in self.wrong_pairs)
        if missing > 0:
            wrong = (predictions != labels).nonzero().flatten()[:missing]
            self.wrong_images.append(images[wrong].detach().float().cpu())
            self.wrong_pairs.append(torch.stack([labels[wrong], predictions[wrong]], dim=1).cpu())

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.matrix is None or not self.matrix.update_called:
            return
        counts = self.counts  # every process takes part in the sum
        if not trainer.is_global_zero:
            return
        class_names = getattr(trainer.datamodule, "class_names", None)
        figure = self.draw_matrix(counts.cpu(), class_names)
        path = save_figure(figure, picture_path(trainer, self.matrix_filename))
        log_picture(trainer, "pictures/confusion_matrix", figure)
        announce(path)
        if not self.wrong_pairs or not sum(len(p) for p in self.wrong_pairs):
            log.info("No misclassified test images: %s not written.", self.misclassified_filename)
            return
        figure = self.draw_misclassified(torch.cat(self.wrong_images), torch.cat(self.wrong_pairs), class_names)
        path = save_figure(figure, picture_path(trainer, self.misclassified_filename))
        log_picture(trainer, "pictures/misclassified", figure)
        announce(path)

    @staticmethod
    def draw_matrix(counts: torch.Tensor, class_names: Sequence[str] | None = None) -> Figure:
        """counts [K, K] (rows true, columns predicted) -> a 700 x 600 pixel Figure. Classes beyond
        ``class_names`` (a head wider than the data's labels, ``model.num_classes=12`` on MNIST) show their index."""
        num_classes = counts.shape[0]
        known = list(class_names or [])
        names = [known[k] if k < len(known) else str(k) for k in range(num_classes)]
        shares = counts.double() / counts.sum(dim=1, keepdim=True).clamp_min(1)
        total = int(counts.sum())
        accuracy = counts.diagonal().sum().item() / max(total, 1)
        figure = new_figure(700, 600)
        ax = figure.add_subplot()
        image = ax.imshow(shares.numpy(), cmap="Blues", vmin=0.0, vmax=1.0)
        figure.colorbar(image, ax=ax, label="share of the true class", shrink=0.8)
        font = 8 if num_classes <= 10 else 6
        for row in range(num_classes):
            for column in range(num_classes):
                count = int(counts[row, column])
                if count:
                    colour = "white" if shares[row, column] > 0.5 else "black"
                    ax.text(column, row, str(count), ha="center", va="center", fontsize=font, color=colour)
        ax.set_xticks(
            range(num_classes),
            names,
            rotation=45 if max(map(len, names)) > 2 else 0,
            ha="right" if max(map(len, names)) > 2 else "center",
            fontsize=font,
        )
        ax.set_yticks(range(num_classes), names, fontsize=font)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"test confusion matrix: accuracy {100 * accuracy:.2f}% of {total}")
        return figure

    def draw_misclassified(
        self, images: torch.Tensor, pairs: torch.Tensor, class_names: Sequence[str] | None = None
    ) -> Figure:
        """images [n, C, H, W], pairs [n, 2] (true, predicted) -> a grid Figure ``columns`` wide.

        Size: ``columns * CELL[0]`` x ``ceil(n / columns) * CELL[1] + HEADER`` pixels.
        """
        rows = math.ceil(len(images) / self.columns)
        height = rows * self.CELL[1] + self.HEADER
        figure = new_figure(self.columns * self.CELL[0], height)
        figure.set_layout_engine(None)  # a fixed grid: the picture keeps its size whatever the titles
        top = 1 - (self.HEADER + 20) / height  # room for the figure title and the first row's titles
        figure.subplots_adjust(left=0.02, right=0.98, bottom=0.02, top=top, hspace=0.35, wspace=0.1)
        figure.suptitle("misclassified test images: true -> predicted", fontsize=9, y=1 - 8 / height, va="top")

        def name(label: int) -> str:
            return class_names[label] if class_names is not None and label < len(class_names) else str(label)

        for index in range(rows * self.columns):
            ax = figure.add_subplot(rows, self.columns, index + 1)
            ax.axis("off")
            if index >= len(images):
                continue
            picture = images[index].clamp(0, 1)
            picture = picture[0] if picture.shape[0] == 1 else picture.permute(1, 2, 0)
            ax.imshow(picture.numpy(), cmap="gray", vmin=0.0, vmax=1.0)
            true, predicted = (int(v) for v in pairs[index])
            ax.set_title(f"{name(true)} -> {name(predicted)}", fontsize=8, color="darkred")
        return figure
