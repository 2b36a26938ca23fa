"""Checkpointing and early stopping on the metric the task declares.

Each task names its validation metric once (``Task.main_metric``, ``Task.main_metric_mode``:
``val/acc``/max for classifiers, ``val/loss``/min for autoencoders, ``val/nll_nats``/min for
the pixel LM). These two callbacks read it in ``setup`` when no ``monitor`` is given, so no
config repeats it; ``callbacks.model_checkpoint.monitor=train/loss`` (with ``mode=min``)
still picks another one.

The classes keep Lightning's names (``ModelCheckpoint``, ``EarlyStopping``) on purpose:
Lightning stores a callback's state in a checkpoint under its class name and settings
(``state_key``), so checkpoints written with Lightning's own classes resume with these,
and the other way round.
"""

from __future__ import annotations

import logging
from typing import Any

import lightning as L
import torch
from lightning.pytorch import callbacks as lightning_callbacks

from linzoo.common.errors import UserValueError

log = logging.getLogger(__name__)

MODES = ("min", "max")


def monitored_metric(task: L.LightningModule, monitor: str | None, mode: str | None) -> tuple[str | None, str]:
    """``(metric, mode)`` to monitor: the given ones, else the task's ``main_metric``/``main_metric_mode``.

    A given ``monitor`` without ``mode`` takes the task's mode when it is the task's metric,
    else ``min``. A module that declares no metric gives ``(None, "min")``.
    """
    task_metric = getattr(task, "main_metric", None)
    task_mode = getattr(task, "main_metric_mode", "min")
    metric = monitor if monitor is not None else task_metric
    if mode is None:
        mode = task_mode if metric == task_metric else "min"
    if mode not in MODES:
        raise UserValueError(f"monitor mode {mode!r} for {metric!r} is not one of {MODES}; set mode=min or mode=max.")
    return metric, mode


class ModelCheckpoint(lightning_callbacks.ModelCheckpoint):
    """Lightning's ``ModelCheckpoint``; ``monitor=None`` and ``mode=None`` mean the task's metric.

    Every other argument is Lightning's (``dirpath``, ``filename``, ``save_top_k``, ``save_last``, ...).
    """

    def __init__(self, *, monitor: str | None = None, mode: str | None = None, **kwargs: Any) -> None:
        # "" until setup: Lightning's own checks (save_top_k > 1 needs a monitor) pass, the task fills it in.
        super().__init__(monitor=monitor if monitor is not None else "", mode=mode or "min", **kwargs)
        self._given = (monitor, mode)
        self._resolved = False

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if not self._resolved:
            self.monitor, self.mode = monitored_metric(pl_module, *self._given)
            self.kth_value = torch.tensor(torch.inf if self.mode == "min" else -torch.inf)
            self._resolved = True
            self._state_key = super().state_key
            if self.monitor is None:
                if self.save_top_k not in (-1, 0, 1):
                    raise UserValueError(
                        f"callbacks.model_checkpoint.save_top_k={self.save_top_k} needs a metric, and "
                        f"{type(pl_module).__name__} declares no main_metric; set callbacks.model_checkpoint.monitor."
                    )
                log.info("%s declares no main_metric: checkpoints keep the last epoch only.", type(pl_module).__name__)
        super().setup(trainer, pl_module, stage)

    @property
    def state_key(self) -> str:
        """Lightning's key, computed once the metric is known (Lightning reads it at every hook of every step)."""
        return self._state_key if self._resolved else super().state_key

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        if not self._should_save_on_train_epoch_end(trainer):
            self._save_last_if_skipped(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if self._should_save_on_train_epoch_end(trainer):
            self._save_last_if_skipped(trainer)

    def _save_last_if_skipped(self, trainer: L.Trainer) -> None:
        """Writes last.ckpt at every save point. Lightning 2.6 writes it only when the same step
        also wrote a top-k checkpoint, so after the best epoch "last" would stay the best one,
        and a resume from it would silently go back to that epoch."""
        if self.save_last and not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any, **kwargs: Any) -> None:
        # Checkpoints by epoch only (neither every_n_train_steps nor train_time_interval): Lightning's
        # per-step checks would end without saving, so skip them.
        if self._every_n_train_steps < 1 and self._train_time_interval is None and pl_module.automatic_optimization:
            return
        super().on_train_batch_end(trainer, pl_module, *args, **kwargs)


class EarlyStopping(lightning_callbacks.EarlyStopping):
    """Lightning's ``EarlyStopping``; ``monitor=None`` and ``mode=None`` mean the task's metric.

    Every other argument is Lightning's (``patience``, ``min_delta``, ``stopping_threshold``, ...).
    """

    def __init__(
        self, *, monitor: str | None = None, mode: str | None = None, min_delta: float = 0.0, **kwargs: Any
    ) -> None:
        super().__init__(monitor=monitor or "", mode=mode or "min", min_delta=min_delta, **kwargs)
        self._given = (monitor, mode)
        self._min_delta = min_delta
        self._resolved = False

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if not self._resolved:
            monitor, self.mode = monitored_metric(pl_module, *self._given)
            if monitor is None:
                raise UserValueError(
                    f"EarlyStopping has no metric: {type(pl_module).__name__} declares no main_metric. "
                    "Set callbacks.early_stopping.monitor=<metric>."
                )
            self.monitor = monitor
            # As Lightning's __init__ does for the resolved mode: improvement is +min_delta for max, -min_delta for min.
            self.min_delta = self._min_delta * (1 if self.mode == "max" else -1)
            self.best_score = torch.tensor(torch.inf if self.mode == "min" else -torch.inf)
            self._resolved = True
            self._state_key = super().state_key
        super().setup(trainer, pl_module, stage)

    @property
    def state_key(self) -> str:
        """Lightning's key, computed once the metric is known (Lightning reads it at every hook of every step)."""
        return self._state_key if self._resolved else super().state_key
