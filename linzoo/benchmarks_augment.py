"""What ``data.augment`` costs per training epoch, against no augmentation.

One epoch = every batch of ``num_images`` images (uint8 on ``device``, as
``data.on_device=true`` keeps them) -> float -> augmentation -> forward, cross-entropy,
backward and an AdamW step of ``net``. Plain PyTorch (no Lightning), so the ratio is the
augmentation's own cost, not framework overhead. Pixel content does not change the
cost of these ops, so random images stand in for MNIST.

    from linzoo.benchmarks_augment import augmentation_cost, format_rows
    print(format_rows(augmentation_cost()))
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from linzoo.data.augment import AUGMENTATIONS, batch_generator, make_augmenter

__all__ = ["augmentation_cost", "format_rows"]


def default_net() -> nn.Module:
    """The default ``model=mlp`` shape: 784-256-128-10 with ReLU."""
    return nn.Sequential(
        nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 10)
    )


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _epoch_seconds(
    net: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, augment: str, batch_size: int
) -> tuple[float, float]:
    """(seconds for one training epoch, of which seconds spent augmenting)."""
    augmenter = make_augmenter(augment)
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3)
    augment_seconds = 0.0
    _synchronize(images.device)
    start = time.perf_counter()
    for index, first in enumerate(range(0, len(images), batch_size)):
        batch = images[first : first + batch_size].float().div_(255.0)
        if augmenter is not None:
            _synchronize(images.device)
            begin = time.perf_counter()
            batch = augmenter(batch, generator=batch_generator(seed=0, batch_index=index))
            _synchronize(images.device)
            augment_seconds += time.perf_counter() - begin
        loss = F.cross_entropy(net(batch), labels[first : first + batch_size])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    _synchronize(images.device)
    return time.perf_counter() - start, augment_seconds


def augmentation_cost(
    *,
    net: nn.Module | None = None,
    num_images: int = 55_000,
    batch_size: int = 128,
    device: str | torch.device = "cpu",
    kinds: Sequence[str] = AUGMENTATIONS,
    repeats: int = 3,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """One row per kind: ``{"augment", "epoch_s", "augment_s", "ratio"}``.

    Each of ``repeats`` rounds times one epoch of every kind back to back (after one
    warm-up of a few batches each), so a load change on a shared machine hits all
    kinds of a round alike. ``ratio`` is the median over rounds of ``epoch_s`` over the
    same round's ``none`` epoch (``kinds`` must include ``"none"``); ``epoch_s`` and
    ``augment_s`` (the part spent augmenting) are medians over rounds.
    """
    if "none" not in kinds:
        raise ValueError(f"kinds must include 'none' (the baseline of the ratio), got {list(kinds)}.")
    device = torch.device(device)
    generator = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (num_images, 1, 28, 28), generator=generator, dtype=torch.uint8).to(device)
    labels = torch.randint(0, 10, (num_images,), generator=generator).to(device)
    net = (net or default_net()).to(device)
    for kind in kinds:
        _epoch_seconds(net, images[: batch_size * 4], labels[: batch_size * 4], augment=kind, batch_size=batch_size)
    rounds = [
        {kind: _epoch_seconds(net, images, labels, augment=kind, batch_size=batch_size) for kind in kinds}
        for _ in range(repeats)
    ]
    return [
        {
            "augment": kind,
            "epoch_s": round(statistics.median(r[kind][0] for r in rounds), 4),
            "augment_s": round(statistics.median(r[kind][1] for r in rounds), 4),
            "ratio": round(statistics.median(r[kind][0] / r["none"][0] for r in rounds), 3),
        }
        for kind in kinds
    ]


def format_rows(rows: list[dict[str, Any]]) -> str:
    """A Markdown table of :func:`augmentation_cost`'s rows."""
    lines = ["| data.augment | epoch (s, median) | of which augmenting (s) | epoch / none (median of paired rounds) |", "| --- | --- | --- | --- |"]
    lines += [f"| {r['augment']} | {r['epoch_s']:.3f} | {r['augment_s']:.3f} | {r['ratio']:.3f} |" for r in rows]
    return "\n".join(lines)


if __name__ == "__main__":
    print(format_rows(augmentation_cost()))
