"""MNIST-family files in torchvision's layout: ``<root>/<MNIST|FashionMNIST>/raw/*-ubyte``,
each file plain or gzipped (``*-ubyte.gz``, as downloaded or copied from a Debian package)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from torchvision import datasets

from linzoo.common.errors import UserFileNotFoundError
from linzoo.data import idx
from linzoo.data.tensor_dataset import ImageTensorDataset

__all__ = ["DOWNLOAD_TIMEOUT_S", "download", "has_files", "raw_folder", "read_splits", "resolve_root"]

# Seconds a stalled socket may wait during a download. Without it a network that
# drops packets (instead of refusing) can hang the fallback for minutes.
DOWNLOAD_TIMEOUT_S = 10.0


def resolve_root(root: str | os.PathLike[str] | None) -> Path:
    """``root`` if given, else ``$LINZOO_DATA`` if set, else ``./data``; made absolute."""
    if root is None or str(root) == "":
        root = os.environ.get("LINZOO_DATA") or "data"
    return Path(root).expanduser().resolve()


def raw_folder(root: Path, dataset_class: type[datasets.MNIST]) -> Path:
    """Where torchvision looks: ``<root>/<class name>/raw``."""
    return root / dataset_class.__name__ / "raw"


def has_files(root: Path, dataset_class: type[datasets.MNIST]) -> bool:
    """Whether all four idx files are there, each plain or gzipped."""
    folder = raw_folder(root, dataset_class)
    return all(idx.find_idx_file(folder, name) is not None for name, _ in dataset_class.resources)


def download(root: Path, dataset_class: type[datasets.MNIST], *, timeout_s: float = DOWNLOAD_TIMEOUT_S) -> str | None:
    """Fetch the four files into ``root`` with torchvision; ``None`` on success, else the reason in one line."""
    previous_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout_s)
    try:
        dataset_class(str(root), train=True, download=True)  # downloads all four files
    except (RuntimeError, OSError) as error:  # URLError, timeouts, unwritable root, bad checksum
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        return lines[-1] if lines else type(error).__name__
    finally:
        socket.setdefaulttimeout(previous_timeout)
    return None


def read_splits(
    root: Path, dataset_class: type[datasets.MNIST], *, verify_checksums: bool = True
) -> tuple[ImageTensorDataset, ImageTensorDataset]:
    """The official train and test sets from the four idx files in torchvision's layout (each
    plain or ``.gz``; see :func:`has_files`): ``uint8 [N, 1, 28, 28]`` + ``int64 [N]``. Each file
    is checked (:mod:`linzoo.data.idx`): a damaged one raises
    :class:`~linzoo.data.idx.CorruptDataError` naming it."""
    folder = raw_folder(root, dataset_class)
    splits = []
    for prefix in ("train", "t10k"):
        images_path, labels_path = (
            idx.find_idx_file(folder, f"{prefix}-{kind}") for kind in ("images-idx3-ubyte", "labels-idx1-ubyte")
        )
        if images_path is None or labels_path is None:
            raise UserFileNotFoundError(f"{folder} lacks the {prefix} idx files (plain or .gz); see has_files().")
        images, labels = (
            idx.read_idx(path, kind=kind, dataset=dataset_class.__name__, verify_checksum=verify_checksums)
            for path, kind in ((images_path, "images"), (labels_path, "labels"))
        )
        idx.check_pair(images, labels, images_path=images_path, labels_path=labels_path)
        splits.append(ImageTensorDataset(images, labels.long()))
    return splits[0], splits[1]
