"""An exponential moving average (EMA) of the weights: Lightning's own callback, one fix.

Lightning's ``EMAWeightAveraging`` validates with the averaged weights and saves them as
the checkpoint's ``state_dict`` (the raw ones as ``current_model_state``, for resuming).
But once it has been part of a fit, it restores the *raw* weights from any checkpoint it
sees, also in ``trainer.test(ckpt_path=...)`` right after training, so the test would
score other weights than validation and ``eval.py`` did. Here only resuming a fit does that.
"""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import EMAWeightAveraging
from lightning.pytorch.trainer.states import TrainerFn


class EMA(EMAWeightAveraging):
    """``ema = decay * ema + (1 - decay) * weights`` after every ``update_every_n_steps``-th
    optimizer step (from ``update_starting_at_step`` on); arguments as Lightning's."""

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        if trainer.state.fn == TrainerFn.FITTING:  # resuming: raw weights to train on, the average beside them
            super().on_load_checkpoint(trainer, pl_module, checkpoint)
        # testing, validating, predicting: keep the averaged weights of checkpoint["state_dict"]
