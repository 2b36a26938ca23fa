"""Fashion-MNIST from Debian's package ``dataset-fashion-mnist`` (gzipped idx files)."""

from __future__ import annotations

import gzip
from pathlib import Path

import torch
from torch import Tensor

from linzoo.data.tensor_dataset import ImageTensorDataset

__all__ = ["DEBIAN_FASHION_MNIST_DIR", "has_debian_fashion_mnist", "read_debian_fashion_mnist", "read_idx_gz"]

DEBIAN_FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")

_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
_UINT8 = 0x08


def has_debian_fashion_mnist(folder: Path | None = None) -> bool:
    folder = DEBIAN_FASHION_MNIST_DIR if folder is None else folder
    return all((folder / name).is_file() for pair in _FILES.values() for name in pair)


def read_idx_gz(path: Path) -> Tensor:
    """A gzipped uint8 idx file (big-endian header: magic, then one int32 per dimension) as a uint8 tensor."""
    data = gzip.decompress(path.read_bytes())
    magic = int.from_bytes(data[0:4], "big")
    dtype_code, ndim = (magic >> 8) & 0xFF, magic & 0xFF
    if magic >> 16 != 0 or dtype_code != _UINT8:
        raise ValueError(f"{path} is not a uint8 idx file (magic {magic:#010x})")
    shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return torch.frombuffer(bytearray(data), dtype=torch.uint8, offset=4 + 4 * ndim).view(shape)


def read_debian_fashion_mnist(folder: Path | None = None) -> tuple[ImageTensorDataset, ImageTensorDataset]:
    """The official train and test sets: ``uint8 [N, 1, 28, 28]`` + ``int64 [N]``."""
    folder = DEBIAN_FASHION_MNIST_DIR if folder is None else folder
    train, test = (
        ImageTensorDataset(read_idx_gz(folder / images), read_idx_gz(folder / labels).long())
        for images, labels in _FILES.values()
    )
    return train, test
