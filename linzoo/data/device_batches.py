"""Batches drawn by index from a split that lives on the training device."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import torch
from torch import Tensor

from linzoo.data.shuffle import epoch_permutation
from linzoo.data.tensor_dataset import ImageTensorDataset, to_float_images

__all__ = ["DeviceBatches"]


class DeviceBatches:
    """An iterable with a length that yields ``(float32 [B, 1, H, W] in [0, 1], int64 [B])`` on ``device``.

    The whole split is copied to ``device`` once (as uint8); every batch is an
    index gather there: no DataLoader workers, no per-batch host-to-device copy.
    With ``shuffle`` each pass draws a new ``torch.randperm`` from a generator
    seeded with ``seed``, so epochs differ but a new object replays the same
    orders. With ``epoch`` (a function returning the current epoch; the data module passes
    the trainer's), the order of epoch e is instead ``epoch_permutation(seed, e)``, so a
    resumed run replays epoch e's order exactly; ``batches_done`` (a function returning the
    batches of the epoch already trained) makes a pass start after them (mid-epoch resume).
    Under data parallelism each of ``world_size`` ranks takes every
    ``world_size``-th example of the same order (padded to equal length, as
    ``DistributedSampler`` does).
    """

    def __init__(
        self,
        dataset: ImageTensorDataset,
        *,
        batch_size: int,
        device: torch.device | str = "cpu",
        shuffle: bool = False,
        drop_last: bool = False,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        epoch: Callable[[], int] | None = None,
        batches_done: Callable[[], int] | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.images = dataset.images.to(device)
        self.labels = dataset.labels.to(device)
        self.device = self.images.device
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.rank = rank
        self.world_size = world_size
        self.seed = seed
        self.epoch = epoch
        self.batches_done = batches_done
        self.generator = torch.Generator(device=self.device).manual_seed(seed)

    @property
    def num_samples(self) -> int:
        """Examples this rank sees per pass."""
        return math.ceil(len(self.labels) / self.world_size)

    def __len__(self) -> int:
        if self.drop_last:
            return self.num_samples // self.batch_size
        return math.ceil(self.num_samples / self.batch_size)

    def indices(self) -> Tensor:
        """This rank's order for one pass: int64 [num_samples] on ``device``."""
        n = len(self.labels)
        if self.shuffle and self.epoch is not None:
            order = epoch_permutation(n, seed=self.seed, epoch=self.epoch(), device=self.device)
        elif self.shuffle:
            order = torch.randperm(n, generator=self.generator, device=self.device)
        else:
            order = torch.arange(n, device=self.device)
        if self.world_size > 1:
            padding = self.num_samples * self.world_size - n
            order = torch.cat([order, order[:padding]])[self.rank :: self.world_size]
        return order

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        order = self.indices()
        first = self.batches_done() if self.batches_done is not None else 0
        for start in range(first * self.batch_size, len(self) * self.batch_size, self.batch_size):
            index = order[start : start + self.batch_size]
            yield to_float_images(self.images[index]), self.labels[index]
