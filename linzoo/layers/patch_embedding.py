"""Split images into non-overlapping patches and embed each with a factory Linear."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from linzoo.common.errors import UserValueError
from linzoo.layers.linear import LinearSpec, make_linear

__all__ = ["PatchEmbedding", "patchify"]


def patchify(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    """[B, C, H, W] -> [B, (H/p)(W/p), C p p], patches in row-major order."""
    batch, channels, height, width = images.shape
    p = patch_size
    patches = images.reshape(batch, channels, height // p, p, width // p, p)
    patches = patches.permute(0, 2, 4, 1, 3, 5)  # [B, H/p, W/p, C, p, p]
    return patches.reshape(batch, (height // p) * (width // p), channels * p * p)


class PatchEmbedding(nn.Module):
    """[B, C, H, W] -> [B, num_patches, dim]: patchify, then a Linear of role ``"patch"``."""

    def __init__(
        self,
        *,
        image_size: int,
        patch_size: int,
        in_channels: int,
        dim: int,
        linear: LinearSpec | Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if patch_size < 1 or image_size % patch_size != 0:
            raise UserValueError(
                f"image_size={image_size} is not divisible by patch_size={patch_size}; "
                f"pick a patch_size that divides it (e.g. {_divisors(image_size)})."
            )
        self.patch_size = patch_size
        self.num_patches = (image_size // patch_size) ** 2
        self.proj = make_linear(in_channels * patch_size**2, dim, role="patch", spec=linear)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images: [B, C, H, W] -> [B, num_patches, dim]."""
        return self.proj(patchify(images, self.patch_size))


def _divisors(n: int) -> str:
    return ", ".join(str(d) for d in range(1, n + 1) if n % d == 0)
