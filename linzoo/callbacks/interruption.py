"""SIGTERM / SIGINT during training: save where training is, then let the run end as interrupted."""

from __future__ import annotations

import signal
from pathlib import Path
from types import FrameType
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities.exceptions import SIGTERMException

__all__ = ["RunInterrupted", "SaveOnInterrupt"]

LAST_CHECKPOINT = "last.ckpt"


class RunInterrupted(SystemExit):
    """The run was stopped by a signal; ``code`` is 128 + the signal number (143 SIGTERM, 130 SIGINT)."""


class SaveOnInterrupt(Callback):
    """On SIGTERM or SIGINT during ``fit``, save ``<checkpoints>/last.ckpt`` at the end of the current batch.

    Lightning 2.6 already catches SIGTERM: its handler only sets a flag, the loops raise
    ``SIGTERMException`` (a ``SystemExit`` with status 0) after the batch, and the trainer
    calls ``on_exception`` of every callback. Here that hook saves a checkpoint of where
    training is (mid-epoch too) and records the signal; ``linzoo.run.train`` then writes
    ``metrics.json`` with ``"status": "interrupted"`` and exits with 128 + the signal number.
    Why not Lightning's ``OnExceptionCheckpoint``: it saves on every exception (a bug or a
    divergence too, and NaN weights with them), into a folder fixed when it is built, and its
    ``teardown`` deletes that file after a run that ends well: named ``last.ckpt``, it would
    delete the ModelCheckpoint's. Overriding all three leaves nothing of it.
    SIGINT (Ctrl+C) is turned into that same deferred path: the first SIGINT during training
    re-sends SIGTERM to this process, so a batch (and the optimizer step) is never cut in
    half; a second SIGINT interrupts at once, as Python does by default. A process started
    with SIGINT ignored (a shell's background job) keeps ignoring it, as Python itself does.
    """

    def __init__(self) -> None:
        self.signal_name: str | None = None  # "SIGTERM" or "SIGINT" once interrupted
        self.checkpoint_path: str | None = None
        self._previous_sigint: Any = None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.signal_name = None
        self.checkpoint_path = None
        if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:  # e.g. a background job of a shell: keep ignoring
            self._previous_sigint = None
            return
        try:
            self._previous_sigint = signal.signal(signal.SIGINT, self._on_sigint)
        except ValueError:  # not the main thread: leave SIGINT as it is
            self._previous_sigint = None

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._restore_sigint()

    def _on_sigint(self, signum: int, frame: FrameType | None) -> None:
        if self.signal_name is not None:  # the second Ctrl+C: stop now
            raise KeyboardInterrupt
        self.signal_name = "SIGINT"
        signal.raise_signal(signal.SIGTERM)  # Lightning's handler stops after this batch

    def _restore_sigint(self) -> None:
        if self._previous_sigint is not None:
            signal.signal(signal.SIGINT, self._previous_sigint)
            self._previous_sigint = None

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self._restore_sigint()
        if isinstance(exception, SIGTERMException):
            self.signal_name = self.signal_name or "SIGTERM"
        elif isinstance(exception, KeyboardInterrupt):
            self.signal_name = "SIGINT"
        else:
            return
        if trainer.state.fn != "fit" or not _weights_are_finite(pl_module):
            return
        path = checkpoint_dir(trainer) / LAST_CHECKPOINT
        callback = trainer.checkpoint_callback
        if callback is not None and getattr(callback, "save_last", False):
            # What ModelCheckpoint does before it writes last.ckpt: the path is part of the
            # saved state, so the resumed run's ModelCheckpoint overwrites this file later
            # instead of starting a last-v1.ckpt beside it.
            callback.last_model_path = str(path)
        trainer.save_checkpoint(path)
        self.checkpoint_path = str(path)

    @property
    def exit_code(self) -> int:
        """128 + the signal number, as a shell reports a process killed by it."""
        return 128 + int(signal.SIGINT if self.signal_name == "SIGINT" else signal.SIGTERM)


def checkpoint_dir(trainer: L.Trainer) -> Path:
    """The ModelCheckpoint's directory, else ``<default_root_dir>/checkpoints``."""
    callback = trainer.checkpoint_callback
    if callback is not None and getattr(callback, "dirpath", None):
        return Path(callback.dirpath)
    return Path(trainer.default_root_dir) / "checkpoints"


def _weights_are_finite(pl_module: L.LightningModule) -> bool:
    finite = [p.detach().isfinite().all() for p in pl_module.parameters()]
    return bool(torch.stack(finite).all()) if finite else True
