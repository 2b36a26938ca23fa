"""Every run's picture: training curves drawn from the run's own CSV log."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import CSVLogger
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from linzoo.callbacks.pictures import announce, log_picture, new_figure, picture_path, save_figure

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


# When the main metric is the loss itself (autoencoders), the second panel shows the first
# of these that was logged, else any other validation metric.
SECOND_PANEL = ("val/sse_per_image", "val/nll_nats", "val/acc")


def curve_metric(main_metric: str, names: list[str]) -> str | None:
    """The metric of the second panel: the task's main metric unless that is the loss."""
    if main_metric != "val/loss" and main_metric in names:
        return main_metric
    preferred = [name for name in SECOND_PANEL if name in names]
    others = sorted(name for name in names if name.startswith("val/") and name not in ("val/loss", "val/acc_best"))
    return (preferred or others or [None])[0]


class TrainingCurves(Callback):
    """Writes ``curves.png`` when training ends: train/val loss and the main metric per epoch.

    Drawn from the run's CSV log (``csv/metrics.csv``), so the picture shows exactly
    what was logged. Runs without a CSV logger (``debug=fast_dev_run`` included) get one
    log line instead. ``width x height`` pixels, two panels.
    """

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
        main_metric = getattr(pl_module, "main_metric", "val/loss")
        path = save_figure(self.draw(table, main_metric), picture_path(trainer, self.filename))
        log_picture(trainer, "pictures/curves", path)
        announce(path)

    def draw(self, table: dict[str, dict[int, float]], main_metric: str) -> Figure:
        """Left: train/loss and val/loss; right: the main metric (train and val) per epoch."""
        figure = new_figure(self.width, self.height)
        loss_ax, metric_ax = figure.subplots(1, 2)
        self._plot(loss_ax, table, ["train/loss", "val/loss"], "loss")
        metric = curve_metric(main_metric, list(table))
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
                ax.plot([e + 1 for e in epochs], [table[name][e] for e in epochs], marker="o", markersize=3,
                        label=name)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(title)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small")
