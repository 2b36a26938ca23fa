"""One Lightning callback for every picture: it hands each hook to the drawers of the running task.

Lightning calls every hook of every callback at every step, whether the callback uses
it or not (about 40 us a callback and step on a CPU, docs/benchmarks.md). So the
pictures are one callback, not five: ``Pictures`` holds the drawers (``TrainingCurves``,
``ConfusionMatrix``, ``ReconstructionGrid``, ``LatentMap``, ``SampleGrid``) and forwards
the few hooks they use (end of training, test batches) to those whose ``task`` class
matches the LightningModule (``task = None``: every module).

Pictures are PNG files in the run directory (rank zero), written with no logger needed,
and also shown in TensorBoard when that logger is on.
"""

from __future__ import annotations

from typing import Any, Protocol

import lightning as L
from lightning.pytorch.callbacks import Callback


class Drawer(Protocol):
    """What ``Pictures`` asks of a drawer: the task class it draws for, and any of its hooks."""

    task: type[L.LightningModule] | None


class Pictures(Callback):
    """Draws the pictures of the running task; ``Pictures(curves=TrainingCurves(), ...)``.

    Each keyword names a drawer (None: left out, e.g. ``callbacks.pictures.latent_map=null``).
    The drawers run in the order given.
    """

    def __init__(self, **drawers: Drawer | None) -> None:
        self.drawers = {name: drawer for name, drawer in drawers.items() if drawer is not None}
        self._active: list[Drawer] = []

    def _for(self, pl_module: L.LightningModule) -> list[Drawer]:
        return [d for d in self.drawers.values() if d.task is None or isinstance(pl_module, d.task)]

    def _forward(self, hook: str, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        for drawer in self._for(pl_module):
            method = getattr(drawer, hook, None)
            if method is not None:
                method(trainer, pl_module, *args)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._forward("on_train_end", trainer, pl_module)

    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # The drawers with a per-batch test hook, found once per test epoch (not per batch).
        self._active = [d for d in self._for(pl_module) if hasattr(d, "on_test_batch_end")]
        self._forward("on_test_epoch_start", trainer, pl_module)

    def on_test_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        for drawer in self._active:
            drawer.on_test_batch_end(trainer, pl_module, outputs, batch, batch_idx, dataloader_idx)

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._forward("on_test_epoch_end", trainer, pl_module)
