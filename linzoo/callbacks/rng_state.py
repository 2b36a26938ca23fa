"""Save the random number generators' states in every checkpoint and restore them on resume."""

from __future__ import annotations

import random
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback

__all__ = ["RNG_KEY", "RestoreRNGStates", "get_rng_states", "set_rng_states"]

RNG_KEY = "linzoo_rng_states"


def get_rng_states() -> dict[str, Any]:
    """States of Python's, NumPy's and torch's global generators (and CUDA's when present),
    as tensors, ints and tuples only, so ``torch.load(weights_only=True)`` still reads the checkpoint."""
    name, key, pos, has_gauss, gauss = np.random.get_state(legacy=True)
    states: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": (name, torch.from_numpy(key.astype(np.int64)), int(pos), int(has_gauss), float(gauss)),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    """Put back what :func:`get_rng_states` returned."""
    random.setstate(states["python"])
    name, key, pos, has_gauss, gauss = states["numpy"]
    np.random.set_state((name, key.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available() and len(states["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(states["cuda"])


class RestoreRNGStates(Callback):
    """Exact resume: a checkpoint carries the global RNG states of the moment it was saved
    (``checkpoint["linzoo_rng_states"]``, rank 0's), and a run resumed from it restores them
    when training starts, after the sanity check. Lightning itself saves none of them, so
    without this dropout masks (torch's global generator) differ after a resume.

    Data loading must not draw from the global generators for this to be exact (the MNIST
    data module gives every loader its own generator, saved in its ``state_dict``).
    """

    def __init__(self) -> None:
        self._pending: dict[str, Any] | None = None

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        checkpoint[RNG_KEY] = get_rng_states()

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        self._pending = checkpoint.get(RNG_KEY)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._pending is not None:
            set_rng_states(self._pending)
            self._pending = None
