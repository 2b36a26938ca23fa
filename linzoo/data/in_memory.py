"""What every linzoo data module shares: three uint8 splits in memory, seeded loaders, batch augmentation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader

from linzoo.common.errors import ConfigError
from linzoo.data.augment import DEGREES, PADDING, SCALE, TRANSLATE, batch_generator, make_augmenter
from linzoo.data.device_batches import DeviceBatches
from linzoo.data.shuffle import EpochShuffle
from linzoo.data.tensor_dataset import ImageTensorDataset, collate_image_batch

__all__ = ["InMemoryDataModule"]


class InMemoryDataModule(L.LightningDataModule):
    """Base of the data modules: ``train_set``, ``val_set`` and ``test_set`` (uint8 ``[N, C, H, W]``
    and int64 labels ``[N]``, filled by a subclass's ``setup``) served as batches
    ``(float32 [B, C, H, W] in [0, 1], int64 [B])``.

    ``on_device`` keeps each split on the trainer's device and serves :class:`DeviceBatches`
    instead of DataLoaders. ``seed`` fixes the shuffling order. ``augment`` (``none``, ``affine``,
    ``crop``; :mod:`linzoo.data.augment`) transforms training batches only, on their device.
    """

    def __init__(
        self,
        *,
        batch_size: int = 128,
        eval_batch_size: int = 1000,
        num_workers: int = 0,
        pin_memory: bool = False,
        drop_last: bool = False,
        on_device: bool = False,
        seed: int = 0,
        augment: str = "none",
        affine_degrees: float = DEGREES,
        affine_translate: float = TRANSLATE,
        affine_scale: tuple[float, float] = SCALE,
        crop_padding: int = PADDING,
    ) -> None:
        super().__init__()
        self.augmenter = make_augmenter(
            augment, degrees=affine_degrees, translate=affine_translate, scale=affine_scale, padding=crop_padding
        )
        for name, value in {"batch_size": batch_size, "eval_batch_size": eval_batch_size}.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"data.{name}", value, "an integer >= 1", f"data.{name}=128")
        if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
            raise ConfigError(
                "data.num_workers", num_workers, "an integer >= 0 (0: load in the main process)", "data.num_workers=0"
            )
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.drop_last = drop_last
        self.on_device = on_device
        self.seed = seed
        self.train_set: ImageTensorDataset | None = None
        self.val_set: ImageTensorDataset | None = None
        self.test_set: ImageTensorDataset | None = None

    def on_after_batch_transfer(self, batch: tuple[torch.Tensor, torch.Tensor], dataloader_idx: int) -> Any:
        """Augment training batches (after they reach their device); validation and test pass untouched."""
        trainer = self.trainer
        if self.augmenter is None or trainer is None or not trainer.training:
            return batch
        if not (isinstance(batch, (tuple, list)) and len(batch) == 2):
            return batch  # not a training batch: e.g. the model summary's example_input_array
        images, labels = batch
        index = trainer.fit_loop.epoch_loop.batch_progress.total.ready  # this batch's index in the fit
        generator = batch_generator(seed=self.seed, batch_index=index, rank=trainer.global_rank)
        return self.augmenter(images, generator=generator), labels

    @property
    def sizes(self) -> dict[str, int]:
        """Examples per split, e.g. ``{"train": 55000, "val": 5000, "test": 10000}``."""
        return {name: len(self._split(name)) for name in ("train", "val", "test")}

    def train_dataloader(self) -> DataLoader | DeviceBatches:
        split = self._split("train")
        return self._loader(split, batch_size=self.batch_size, shuffle=True, drop_last=self.drop_last)

    def val_dataloader(self) -> DataLoader | DeviceBatches:
        return self._loader(self._split("val"), batch_size=self.eval_batch_size, shuffle=False, drop_last=False)

    def test_dataloader(self) -> DataLoader | DeviceBatches:
        return self._loader(self._split("test"), batch_size=self.eval_batch_size, shuffle=False, drop_last=False)

    def _split(self, name: str) -> ImageTensorDataset:
        split = getattr(self, f"{name}_set")
        if split is None:
            raise RuntimeError("Call setup() before asking for data (a Trainer does this for you).")
        return split

    def _loader(
        self, split: ImageTensorDataset, *, batch_size: int, shuffle: bool, drop_last: bool
    ) -> DataLoader | DeviceBatches:
        """The training order of epoch e is a function of (seed, e) alone (EpochShuffle), so
        a resumed run draws the same orders; no loader draws from torch's global generator
        (restoring its state on resume stays exact)."""
        if self.on_device:
            trainer = self.trainer
            return DeviceBatches(
                split,
                batch_size=batch_size,
                device=trainer.strategy.root_device if trainer is not None else torch.device("cpu"),
                shuffle=shuffle,
                drop_last=drop_last,
                seed=self.seed,
                rank=trainer.global_rank if trainer is not None else 0,
                world_size=trainer.world_size if trainer is not None else 1,
                epoch=(lambda: trainer.current_epoch) if trainer is not None else None,
                batches_done=self._batches_done() if shuffle else None,
            )
        return DataLoader(
            split,
            batch_size=batch_size,
            sampler=EpochShuffle(split, seed=self.seed, batch_size=batch_size, batches_done=self._batches_done())
            if shuffle
            else None,
            drop_last=drop_last,
            collate_fn=collate_image_batch,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
            generator=torch.Generator().manual_seed(self.seed),
        )

    def _batches_done(self) -> Callable[[], int] | None:
        """Batches of the current epoch already trained (0 at an epoch start; after a mid-epoch
        resume, the restored count), read from the trainer when a pass starts."""
        trainer = self.trainer
        if trainer is None:
            return None
        return lambda: int(trainer.fit_loop.epoch_loop.batch_progress.current.ready) if trainer.training else 0
