"""Hydra helpers shared by the run functions (train, evaluate) and the benchmark; Hydra-aware by design."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import lightning as L
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import DictConfig

from linzoo.callbacks.checkpoint_io import AtomicCheckpointIO
from linzoo.callbacks.interruption import SaveOnInterrupt
from linzoo.callbacks.safety import RunSafety
from linzoo.common.errors import UserValueError


def instantiate_all(group: DictConfig | None) -> list[Any]:
    """Instantiate every entry of a callbacks/logger group that has a ``_target_``."""
    if not group:
        return []
    for name, entry in group.items():
        if isinstance(entry, str):  # e.g. callbacks.progress_bar=tqdm: a value, not a group choice
            raise UserValueError(
                f"The callback/logger entry {name!r} is the text {entry!r}, not a config with a _target_. "
                f"To choose an option of a nested config group, write the group with a slash: "
                f"callbacks/{name}={entry} (e.g. callbacks/progress_bar=tqdm)."
            )
    return [instantiate(entry) for entry in group.values() if entry and "_target_" in entry]


def instantiate_trainer(
    cfg: DictConfig, *, extra_callbacks: Sequence[L.Callback] = ()
) -> tuple[L.Trainer, SaveOnInterrupt]:
    """The Trainer of a training run: ``cfg.trainer`` with the callbacks and loggers of ``cfg``,
    linzoo's run safety (stop on a non-finite loss, save on SIGTERM/SIGINT, restore the RNG
    states on resume) and atomic checkpoint writes. Returns it and the interruption callback,
    which tells whether and how the run was interrupted.

    Without a ModelCheckpoint among the callbacks (``callbacks=none``) Lightning's own is
    turned off (it would save into the logger's folder) unless ``trainer.enable_checkpointing``
    is set; ``linzoo.run.train`` then saves ``<run>/checkpoints/last.ckpt`` at the end of fit.
    ``save_weights=false`` drops every ModelCheckpoint: the run keeps no weights (an
    interruption still saves ``last.ckpt`` to resume from)."""
    safety = RunSafety()
    callbacks = [*instantiate_all(cfg.get("callbacks")), safety, *extra_callbacks]
    if cfg.get("save_weights", True) is False:
        callbacks = [callback for callback in callbacks if not isinstance(callback, ModelCheckpoint)]
    options: dict[str, Any] = {}
    if cfg.trainer.get("enable_checkpointing") is None and not any(
        isinstance(callback, ModelCheckpoint) for callback in callbacks
    ):
        options["enable_checkpointing"] = False
    trainer: L.Trainer = instantiate(
        cfg.trainer,
        callbacks=callbacks,
        logger=instantiate_all(cfg.get("logger")) or False,
        plugins=[AtomicCheckpointIO()],
        **options,
    )
    return trainer, safety.interruption
