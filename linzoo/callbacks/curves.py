"""Every run's picture: training curves drawn from the run's own CSV log."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import lightning as L
from lightning.pytorch.loggers import CSVLogger
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from linzoo.callbacks.common import announce, log_picture, picture_path
from linzoo.callbacks.image_files import new_figure, save_figure

log = logging.getLogger(__name__)


def read_epoch_metrics(path: str | Path) -> dict[str, dict[int, float]]:
    """Lightning's ``metrics.csv`` -> ``{metric: {epoch: value}}`` (the epoch's last logged value)."""
    table: dict[str, dict[int, float]] = {}
    with open(path, newline="") as file:
        for row in csv.DictReader(file):
            epoch = row.get("epoch")
            if not epoch:
                continue
            for name, value in row.items():
                if name in ("epoch", "step") or value in (None, ""):
                    continue
                table.setdefault(name, {})[int(float(epoch))] = float(value)
    return table


def curve_metric(task: L.LightningModule, names: list[str]) -> str | None:
    """The metric of the second panel: the task's ``curve_metric``, else its ``main_metric`` unless
    that is the loss; else any other validation metric that was logged (None: no second panel)."""
    declared = getattr(task, "curve_metric", None) or getattr(task, "main_metric", "val/loss")
    if declared != "val/loss" and declared in names:
        return declared
    others = sorted(name for name in names if name.startswith("val/") and name not in ("val/loss", "val/acc_best"))
    return (others or [None])[0]


class TrainingCurves:
    """Writes ``curves.png`` when training ends: train/val loss and the task's metric per epoch.

    Drawn from the run's CSV log (``csv/metrics.csv``), so the picture shows exactly
    what was logged. Runs without a CSV logger (``debug=fast_dev_run`` included) get one
    log line instead. ``width x height`` pixels, two panels.
    """

    task = None  # every task

    def __init__(self, *, filename: str = "curves.png", width: int = 1000, height: int = 400) -> None:
        self.filename = filename
        self.width = width
        self.height = height

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        csv_logger = next((logger for logger in trainer.loggers if isinstance(logger, CSVLogger)), None)
        if csv_logger is None:
            log.info("No CSV logger in this run, so no %s (logger=csv draws it).", self.filename)
            return
        csv_logger.save()  # write what is still buffered
        metrics_file = Path(csv_logger.experiment.metrics_file_path)
        table = read_epoch_metrics(metrics_file) if metrics_file.is_file() else {}
        if not table:
            log.info("%s holds no per-epoch metrics yet, so no %s.", metrics_file, self.filename)
            return
        figure = self.draw(table, curve_metric(pl_module, list(table)))
        path = save_figure(figure, picture_path(trainer, self.filename))
        log_picture(trainer, "pictures/curves", figure)
        announce(path)

    def draw(self, table: dict[str, dict[int, float]], metric: str | None) -> Figure:
        """Left: train/loss and val/loss; right: ``metric`` (train and val) per epoch (None: empty)."""
        figure = new_figure(self.width, self.height)
        loss_ax, metric_ax = figure.subplots(1, 2)
        self._plot(loss_ax, table, ["train/loss", "val/loss"], "loss")
        if metric is None:
            metric_ax.axis("off")
        else:
            twin = "train/" + metric.split("/", 1)[1]
            self._plot(metric_ax, table, [twin, metric], metric.split("/", 1)[1])
        return figure

    @staticmethod
    def _plot(ax: Axes, table: dict[str, dict[int, float]], names: list[str], title: str) -> None:
        for name in names:
            if name in table:
                epochs = sorted(table[name])
                ax.plot([e + 1 for e in epochs], [table[name][e] for e in epochs], marker="o", markersize=3, label=name)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(title)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small")
