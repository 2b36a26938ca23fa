"""Shuffling whose order is a function of (seed, epoch) alone, so a resumed run replays it."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sized

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

    ``batches_done`` (optional, with ``batch_size``): a function returning how many batches
    of the current epoch were already trained when a pass starts; the pass then starts after
    them. The data module passes Lightning's count, which is 0 at an epoch start and the
    restored count when a run resumes mid-epoch, so a resumed epoch continues the order
    where the interrupted one stopped instead of starting it again.
    """

    def __init__(
        self,
        data_source: Sized,
        *,
        seed: int = 0,
        batch_size: int = 1,
        batches_done: Callable[[], int] | None = None,
    ) -> None:
        super().__init__(data_source)
        self.seed = seed
        self.epoch = 0
        self.batch_size = batch_size
        self.batches_done = batches_done

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        start = self.batches_done() * self.batch_size if self.batches_done is not None else 0
        yield from epoch_permutation(len(self.data_source), seed=self.seed, epoch=self.epoch)[start:].tolist()
