"""The LightningModule base every linzoo task shares: net, optimizer, schedule, compile."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch import nn

from linzoo.tasks.optim import OptimizerFactory, SchedulerFactory, weight_decay_groups

CONFIG_KEY = "linzoo_config"


class Task(L.LightningModule):
    """Trains a ready-built ``net``; subclasses define the loss and metrics.

    Args:
        net: the plain-PyTorch model (from ``linzoo.create_model`` or Hydra).
        optimizer: ``optimizer(param_groups) -> Optimizer`` (Hydra ``_partial_: true``).
            Weight decay applies to >=2-D weights only.
        scheduler: ``scheduler(optimizer, total_steps=N) -> LRScheduler`` stepped every
            optimizer step, or None for a constant learning rate.
        compile: compile the net in place with ``nn.Module.compile()``; parameter names,
            and so checkpoint keys, stay those of the plain net (no ``_orig_mod.``).
    """

    # Name and direction of the validation metric that selects the best checkpoint.
    main_metric: str = "val/loss"
    main_metric_mode: str = "min"

    def __init__(
        self,
        *,
        net: nn.Module,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        compile: bool = False,
    ) -> None:
        super().__init__()
        self.net = net
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.compiled = compile
        if compile:
            self.net.compile()
        # The config that rebuilds this task; linzoo.train sets it and it is saved in
        # every checkpoint, so eval.py needs nothing but the checkpoint.
        self.build_config: dict[str, Any] | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def step(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> torch.Tensor:
        """Loss of one batch; logs ``{stage}/<metric>``. ``stage`` is train, val or test."""
        raise NotImplementedError

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self.step(batch, "train")

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self.step(batch, "val")

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self.step(batch, "test")

    def log_epoch_means(self, stage: str, values: dict[str, torch.Tensor], *, batch_size: int) -> None:
        """Log each value as ``{stage}/{name}``, averaged over the epoch weighted by batch size.

        The first value is shown in the progress bar. Values stay tensors: no host sync.
        """
        for index, (name, value) in enumerate(values.items()):
            self.log(
                f"{stage}/{name}", value, on_step=False, on_epoch=True, prog_bar=index == 0, batch_size=batch_size
            )

    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory(weight_decay_groups(self.net))
        if self.scheduler_factory is None:
            return optimizer
        total_steps = int(self.trainer.estimated_stepping_batches)
        scheduler = self.scheduler_factory(optimizer, total_steps=total_steps)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.build_config is not None:
            checkpoint[CONFIG_KEY] = self.build_config

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.build_config = checkpoint.get(CONFIG_KEY, self.build_config)
