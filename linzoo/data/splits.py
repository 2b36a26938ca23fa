"""Seeded index splits: plain random (train/val) and stratified by class (the sample)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["random_split_indices", "stratified_split_indices"]


def _check_sizes(n: int, sizes: Sequence[int]) -> None:
    if any(size < 0 for size in sizes) or sum(sizes) != n:
        raise ValueError(f"split sizes {list(sizes)} must be non-negative and add up to {n}")


def random_split_indices(n: int, sizes: Sequence[int], *, seed: int) -> list[Tensor]:
    """Split ``range(n)`` at random into parts of ``sizes``; each part is int64 [size], sorted.

    The same ``seed`` gives the same parts, whatever the global RNG state.
    """
    _check_sizes(n, sizes)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return [part.sort().values for part in torch.split(order, list(sizes))]


def stratified_split_indices(labels: Tensor, sizes: Sequence[int], *, seed: int) -> list[Tensor]:
    """Like :func:`random_split_indices`, but every part keeps the class proportions of ``labels`` (int64 [N]).

    Each class is shuffled, its members get the ranks ``(k + 0.5) / class_size``,
    and all examples are ordered by that rank: classes interleave evenly, so any
    prefix is stratified to within one example per class.
    """
    n = len(labels)
    _check_sizes(n, sizes)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    rank = torch.empty(n, dtype=torch.float64)
    for label in labels.unique():
        members = order[labels[order] == label]  # this class, in shuffled order
        rank[members] = (torch.arange(len(members), dtype=torch.float64) + 0.5) / len(members)
    interleaved = order[torch.argsort(rank[order], stable=True)]
    return [part.sort().values for part in torch.split(interleaved, list(sizes))]
