"""LightningDataModules: MNIST family, offline sample, your own image folders, on-device batches.

The names below are imported on first use (PEP 562), so that ``linzoo.data.class_names`` and
the other light modules load without torchvision and Lightning (predict's start-up).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from linzoo.data.device_batches import DeviceBatches
    from linzoo.data.image_folder import ImageFolderDataModule
    from linzoo.data.mnist import MNISTDataModule
    from linzoo.data.sources import DATASETS, SampleFallbackWarning
    from linzoo.data.splits import random_split_indices, stratified_split_indices
    from linzoo.data.tensor_dataset import ImageTensorDataset, collate_image_batch, to_float_images
    from linzoo.data.torchvision_files import resolve_root

# name -> the module that defines it
_HOMES = {
    "DATASETS": "sources",
    "DeviceBatches": "device_batches",
    "ImageFolderDataModule": "image_folder",
    "ImageTensorDataset": "tensor_dataset",
    "MNISTDataModule": "mnist",
    "SampleFallbackWarning": "sources",
    "collate_image_batch": "tensor_dataset",
    "random_split_indices": "splits",
    "resolve_root": "torchvision_files",
    "stratified_split_indices": "splits",
    "to_float_images": "tensor_dataset",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'linzoo.data' has no attribute {name!r}")
    return getattr(importlib.import_module(f"linzoo.data.{_HOMES[name]}"), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOMES])
