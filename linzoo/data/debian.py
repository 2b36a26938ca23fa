"""Fashion-MNIST from Debian's package ``dataset-fashion-mnist`` (gzipped idx files; plain ones are read too)."""

from __future__ import annotations

from pathlib import Path

from torch import Tensor

from linzoo.common.errors import UserFileNotFoundError
from linzoo.data import idx
from linzoo.data.tensor_dataset import ImageTensorDataset

__all__ = ["DEBIAN_FASHION_MNIST_DIR", "has_debian_fashion_mnist", "read_debian_fashion_mnist", "read_idx_gz"]

DEBIAN_FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")

_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def has_debian_fashion_mnist(folder: Path | None = None) -> bool:
    """Whether ``folder`` (default: Debian's) holds the four idx files, each ``.gz`` or plain."""
    folder = DEBIAN_FASHION_MNIST_DIR if folder is None else folder
    return all(idx.find_idx_file(folder, name) is not None for pair in _FILES.values() for name in pair)


def read_idx_gz(path: Path, *, kind: str = "images", verify_checksum: bool = True) -> Tensor:
    """A uint8 idx file (gzipped when it ends in ``.gz``) as a uint8 tensor, checked (:func:`linzoo.data.idx.read_idx`)."""
    return idx.read_idx(path, kind=kind, dataset="FashionMNIST", verify_checksum=verify_checksum)


def read_debian_fashion_mnist(
    folder: Path | None = None, *, verify_checksums: bool = True
) -> tuple[ImageTensorDataset, ImageTensorDataset]:
    """The official train and test sets: ``uint8 [N, 1, 28, 28]`` + ``int64 [N]``."""
    folder = DEBIAN_FASHION_MNIST_DIR if folder is None else folder
    splits = []
    for images_name, labels_name in _FILES.values():
        images_path, labels_path = idx.find_idx_file(folder, images_name), idx.find_idx_file(folder, labels_name)
        if images_path is None or labels_path is None:
            raise UserFileNotFoundError(f"{folder} lacks {images_name} or {labels_name} (.gz or plain).")
        images = read_idx_gz(images_path, kind="images", verify_checksum=verify_checksums)
        labels = read_idx_gz(labels_path, kind="labels", verify_checksum=verify_checksums)
        idx.check_pair(images, labels, images_path=images_path, labels_path=labels_path)
        splits.append(ImageTensorDataset(images, labels.long()))
    return splits[0], splits[1]
