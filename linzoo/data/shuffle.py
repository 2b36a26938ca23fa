"""Shuffling whose order is a function of (seed, epoch) alone, so a resumed run replays it."""

from __future__ import annotations

from collections.abc import Iterator, Sized

import torch
from torch import Tensor
from torch.utils.data import RandomSampler

__all__ = ["EpochShuffle", "epoch_permutation"]


def epoch_permutation(n: int, *, seed: int, epoch: int, device: torch.device | str = "cpu") -> Tensor:
    """``torch.randperm(n)`` from a generator seeded with ``seed + epoch`` (as ``DistributedSampler``
    does): int64 [n] on ``device``. The same (seed, epoch) gives the same order in any process."""
    generator = torch.Generator(device=device).manual_seed(seed + epoch)
    return torch.randperm(n, generator=generator, device=device)


class EpochShuffle(RandomSampler):
    """A ``RandomSampler`` whose order for epoch ``e`` is :func:`epoch_permutation` (seed, e).

    Lightning calls ``set_epoch`` on a loader's sampler at the start of every epoch, from
    its restored epoch counter after a resume; so epoch k of a resumed run draws exactly
    epoch k's order instead of replaying epoch 0's (a re-seeded generator) or the next
    one's (a generator advanced by an extra pass). Being a ``RandomSampler``, it is still
    replaced by Lightning's ``DistributedSampler`` (also seeded per epoch) under DDP.
    """

    def __init__(self, data_source: Sized, *, seed: int = 0) -> None:
        super().__init__(data_source)
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        yield from epoch_permutation(len(self.data_source), seed=self.seed, epoch=self.epoch).tolist()
