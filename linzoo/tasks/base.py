"""The LightningModule base every linzoo task shares: net, optimizer, schedule, compile."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch import nn

from linzoo.checkpoint.files import checkpoint_in, read_checkpoint
from linzoo.checkpoint.format import CONFIG_KEY
from linzoo.models.transfer import frozen_norm_layers
from linzoo.tasks.loading import load_task_for, register_task
from linzoo.tasks.optim import OptimizerFactory, SchedulerFactory
from linzoo.tasks.param_groups import build_optimizer


def example_input(net: nn.Module) -> torch.Tensor | None:
    """A zero input of batch size one for ``net``: images [1, in_channels, image_size,
    image_size] for image nets, token ids [1, seq_len] (int64) for a pixel LM, else None."""
    if hasattr(net, "in_channels") and hasattr(net, "image_size"):
        return torch.zeros(1, net.in_channels, net.image_size, net.image_size)
    if hasattr(net, "seq_len") and hasattr(net, "vocab_size"):
        return torch.zeros(1, net.seq_len, dtype=torch.long)
    return None


class Task(L.LightningModule):
    """Trains a ready-built ``net``; subclasses define the loss and metrics.

    Args:
        net: the plain-PyTorch model (from ``linzoo.create_model`` or Hydra).
        optimizer: ``optimizer(param_groups) -> Optimizer`` (Hydra ``_partial_: true``).
            Weight decay applies to >=2-D weights only; a ``roles`` keyword
            (``optimizer.roles.<role>.lr_mult``) and muP's multipliers set per-role learning rates
            (linzoo.tasks.param_groups).
        scheduler: ``scheduler(optimizer, total_steps=N) -> LRScheduler`` stepped every
            optimizer step, or None for a constant learning rate.
        compile: compile the net in place with ``nn.Module.compile()``; parameter names,
            and so checkpoint keys, stay those of the plain net (no ``_orig_mod.``).
    """

    # The one place that names the monitored metric: the best checkpoint, early stopping
    # (linzoo.callbacks.ModelCheckpoint/EarlyStopping) and train()'s metrics["monitor"] read it.
    main_metric: str = "val/loss"
    main_metric_mode: str = "min"
    # The metric curves.png draws beside the loss: main_metric, unless that is the loss itself.
    curve_metric: str | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Every task class can be rebuilt from a checkpoint that names it (linzoo/tasks/loading.py)."""
        super().__init_subclass__(**kwargs)
        register_task(cls)

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
        if compile:
            self.net.compile()
        # One dummy input, so Lightning's model summary can count FLOPs (not with compile:
        # the summary's forward pass would compile the net once more).
        self.example_input_array = None if compile else example_input(net)
        # The config that rebuilds this task; linzoo.run.train sets it and it is saved in
        # every checkpoint, so eval.py needs nothing but the checkpoint.
        self.build_config: dict[str, Any] | None = None
        # Running sums of the logged values per stage, weighted by batch size (log_epoch_means).
        self._epoch_sums: dict[str, dict[str, torch.Tensor]] = {}
        self._epoch_counts: dict[str, int] = {}

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

        The batch's values are only added to running sums here (tensors: no host sync);
        :meth:`log_stage_means` logs the means once, at the stage's epoch end. One
        Lightning ``self.log`` per step costs about as much Python time as an MLP's
        forward pass on a CPU (see docs/benchmarks.md). The first value is shown in
        the progress bar.
        """
        sums = self._epoch_sums.setdefault(stage, {})
        for name, value in values.items():
            if name in sums:  # one in-place op per value and step: sum += batch_size * value
                sums[name].add_(value.detach(), alpha=batch_size)
            else:
                sums[name] = value.detach().float() * batch_size
        self._epoch_counts[stage] = self._epoch_counts.get(stage, 0) + batch_size

    def log_stage_means(self, stage: str) -> dict[str, torch.Tensor]:
        """Log the epoch means collected by :meth:`log_epoch_means` and start new sums.

        Under data parallelism, sums and counts are added over all processes first.
        Returns ``{name: mean}`` (empty when nothing was collected).
        """
        sums = self._epoch_sums.pop(stage, {})
        count = self._epoch_counts.pop(stage, 0)
        if not sums:
            return {}
        totals = torch.stack([*sums.values(), torch.tensor(float(count), device=next(iter(sums.values())).device)])
        if self._trainer is not None and self.trainer.world_size > 1:
            totals = self.trainer.strategy.reduce(totals, reduce_op="sum")
        means = {name: totals[index] / totals[-1] for index, name in enumerate(sums)}
        for index, (name, mean) in enumerate(means.items()):
            self.log(f"{stage}/{name}", mean, on_step=False, on_epoch=True, prog_bar=index == 0)
        return means

    def on_train_epoch_start(self) -> None:
        """Frozen BatchNorm layers (``finetune.train_roles`` without them) stay in eval mode: their
        running statistics are part of what is frozen (Lightning sets train mode before this hook)."""
        for module in frozen_norm_layers(self.net):
            module.eval()

    def on_train_epoch_end(self) -> None:
        self.log_stage_means("train")

    def on_validation_epoch_end(self) -> None:
        self.log_stage_means("val")

    def on_test_epoch_end(self) -> None:
        self.log_stage_means("test")

    # Two per-step shortcuts of Lightning's generic path (docs/benchmarks.md measures them):
    def transfer_batch_to_device(self, batch: Any, device: torch.device, dataloader_idx: int) -> Any:
        """Return ``(images, labels)`` untouched when already on ``device`` (CPU, DeviceBatches)."""
        if isinstance(batch, (tuple, list)) and all(
            isinstance(item, torch.Tensor) and item.device == device for item in batch
        ):
            return batch
        return super().transfer_batch_to_device(batch, device, dataloader_idx)

    def configure_gradient_clipping(
        self,
        optimizer: torch.optim.Optimizer,
        gradient_clip_val: float | None = None,
        gradient_clip_algorithm: str | None = None,
    ) -> None:
        """Clip as Lightning does (``trainer.gradient_clip_val``), skipping its checks when clipping is off."""
        if gradient_clip_val:
            super().configure_gradient_clipping(optimizer, gradient_clip_val, gradient_clip_algorithm)

    def configure_optimizers(self) -> Any:
        optimizer = build_optimizer(self.net, self.optimizer_factory)
        if self.scheduler_factory is None:
            return optimizer
        total_steps = int(self.trainer.estimated_stepping_batches)
        scheduler = self.scheduler_factory(optimizer, total_steps=total_steps)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.build_config is not None:
            checkpoint[CONFIG_KEY] = self.build_config
            # What the datamodule actually loaded ("mnist", or the sample after a fallback) and its
            # identity (linzoo.data.identity): eval and resume refuse other data unless told.
            datamodule = getattr(self._trainer, "datamodule", None) if self._trainer is not None else None
            if getattr(datamodule, "source", None):
                record = {"data_source": datamodule.source}
                if hasattr(datamodule, "identity"):
                    record["data_identity"] = datamodule.identity()
                checkpoint[CONFIG_KEY] = {**self.build_config, **record}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.build_config = checkpoint.get(CONFIG_KEY, self.build_config)

    @classmethod
    def load_from_checkpoint(cls, checkpoint_path: Any, map_location: Any = None, **kwargs: Any) -> Any:
        """``Classifier.load_from_checkpoint(path)``: the task rebuilt from the config saved in
        the checkpoint (tasks take built nets, so Lightning's hyperparameters cannot rebuild
        them), weights loaded, in eval mode. With extra arguments (``net=...``), Lightning's own way."""
        if kwargs:  # Lightning's loader, after linzoo's safe one has read the file (tensors and plain values only)
            read_checkpoint(checkpoint_in(checkpoint_path))
            kwargs["weights_only"] = True
            return super().load_from_checkpoint(checkpoint_path, map_location=map_location, **kwargs)
        return load_task_for(cls, checkpoint_path, map_location=map_location)

    @staticmethod
    def predict_images(batch: Any) -> torch.Tensor:
        """The images of a predict batch: ``images`` or ``(images, labels)``."""
        return batch[0] if isinstance(batch, (tuple, list)) else batch
