"""A split held in memory as uint8 tensors, converted to float one whole batch at a time."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torch.utils.data import Dataset

__all__ = ["ImageTensorDataset", "collate_image_batch", "to_float_images"]


def to_float_images(images: Tensor) -> Tensor:
    """uint8 ``[..., H, W]`` in 0..255 -> float32 in [0, 1], same shape and device."""
    return images.to(torch.float32).div_(255.0)


class ImageTensorDataset(Dataset):
    """Grey images ``uint8 [N, 1, H, W]`` and labels ``int64 [N]``.

    Decoding nothing per item: ``__getitems__`` gathers a whole batch by index,
    and :func:`collate_image_batch` (pass it as the DataLoader's ``collate_fn``)
    turns it into ``(float32 [B, 1, H, W] in [0, 1], int64 [B])``.
    """

    def __init__(self, images: Tensor, labels: Tensor) -> None:
        if images.dtype != torch.uint8:
            raise TypeError(f"images must be uint8, got {images.dtype}")
        if images.ndim == 3:  # [N, H, W] as torchvision stores it: add the channel
            images = images.unsqueeze(1)
        if images.ndim != 4 or len(images) != len(labels):
            shapes = f"{tuple(images.shape)} and {tuple(labels.shape)}"
            raise ValueError(f"need images [N, C, H, W] and labels [N], got {shapes}")
        self.images = images
        self.labels = labels.to(torch.int64)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        """One example: ``(float32 [1, H, W], int64 [])``."""
        return to_float_images(self.images[index]), self.labels[index]

    def __getitems__(self, indices: Sequence[int]) -> tuple[Tensor, Tensor]:
        """A batch, still uint8: ``(uint8 [B, 1, H, W], int64 [B])``."""
        index = torch.as_tensor(indices, dtype=torch.int64)
        return self.images[index], self.labels[index]

    def subset(self, indices: Tensor) -> ImageTensorDataset:
        """The examples at ``indices`` (int64 [K]) as a new dataset."""
        return ImageTensorDataset(self.images[indices], self.labels[indices])


def collate_image_batch(batch: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
    """``(uint8 [B, 1, H, W], int64 [B])`` from ``__getitems__`` -> ``(float32 in [0, 1], int64)``."""
    images, labels = batch
    return to_float_images(images), labels
