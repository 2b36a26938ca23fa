"""Image files: PNG grids of images, matplotlib figures as PNG (fresh names: linzoo.common.paths).

Used by the picture callbacks (``linzoo.callbacks``) and by ``scripts/sample.py``; every file is
written atomically (``linzoo.checkpoint.atomic``): a picture is there whole or not at all. Figures
are plain ``matplotlib.figure.Figure`` objects (Agg, no pyplot state, no screen), saved
without ``bbox_inches="tight"`` so a figure of ``width x height`` pixels stays that size.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from matplotlib.figure import Figure
from PIL import Image
from torchvision.utils import make_grid

from linzoo.checkpoint.atomic import atomic_write

DPI = 100


def display_scale(side: int, *, min_side: int = 56) -> int:
    """The integer factor that enlarges a ``side``-pixel image to at least ``min_side`` pixels."""
    return max(1, math.ceil(min_side / side))


def image_grid(images: torch.Tensor, *, nrow: int, padding: int = 2, min_side: int = 56) -> torch.Tensor:
    """Images [N, C, H, W] in [0, 1] -> one uint8 grid [3, H', W'] of ``nrow`` images a row.

    Each image is first enlarged by s = ``display_scale(H, min_side=min_side)`` (nearest
    neighbour: 28x28 digits by 2, 14x14 by 4), so the grid is ``nrow * (s W + padding) + padding``
    wide and ``rows * (s H + padding) + padding`` high, rows = ceil(N / nrow); grey (0.5)
    lines separate the images. Pixels round as torchvision's ``save_image`` rounds them.
    """
    images = images.detach().float().cpu().clamp(0, 1)
    scale = display_scale(images.shape[-2], min_side=min_side)
    if scale > 1:
        images = images.repeat_interleave(scale, dim=-2).repeat_interleave(scale, dim=-1)
    grid = make_grid(images, nrow=nrow, padding=padding, pad_value=0.5)
    return grid.mul(255).add_(0.5).clamp_(0, 255).to(torch.uint8)


def save_image_grid(
    images: torch.Tensor, path: str | Path, *, nrow: int, padding: int = 2, min_side: int = 56
) -> torch.Tensor:
    """Write ``image_grid(images, ...)`` as a PNG at ``path``; returns the grid [3, H', W'] (uint8)."""
    grid = image_grid(images, nrow=nrow, padding=padding, min_side=min_side)
    picture = Image.fromarray(grid.permute(1, 2, 0).numpy())
    atomic_write(path, lambda file: picture.save(file, format="PNG"))
    return grid


def new_figure(width: int, height: int) -> Figure:
    """A matplotlib figure of ``width x height`` pixels with constrained layout."""
    return Figure(figsize=(width / DPI, height / DPI), dpi=DPI, layout="constrained")


def save_figure(figure: Figure, path: str | Path) -> Path:
    """Write ``figure`` as a PNG of its own size in pixels (atomically)."""
    return atomic_write(path, lambda file: figure.savefig(file, dpi=DPI, format="png"))
