"""Rebuilding the data module that a checkpoint's saved data config describes, without Hydra."""

from __future__ import annotations

import inspect
from typing import Any

from linzoo.common.errors import UserValueError
from linzoo.data.image_folder import ImageFolderDataModule
from linzoo.data.in_memory import InMemoryDataModule
from linzoo.data.mnist import MNISTDataModule

__all__ = ["build_datamodule"]

DATAMODULES: dict[str, type[InMemoryDataModule]] = {
    "linzoo.data.MNISTDataModule": MNISTDataModule,
    "linzoo.data.mnist.MNISTDataModule": MNISTDataModule,
    "linzoo.data.ImageFolderDataModule": ImageFolderDataModule,
    "linzoo.data.image_folder.ImageFolderDataModule": ImageFolderDataModule,
}


def build_datamodule(data_config: dict[str, Any], **overrides: Any) -> InMemoryDataModule:
    """The data module of a saved ``{"_target_": "linzoo.data.MNISTDataModule", **kwargs}``, with
    ``overrides`` applied where the module takes them (``download=False`` means nothing to a folder
    of images); the ``_target_`` is looked up in linzoo's own data modules, never imported."""
    target = str(data_config.get("_target_"))
    if target not in DATAMODULES:
        raise UserValueError(
            f"The saved data _target_={target!r} is not a linzoo data module; expected one of "
            f"{', '.join(sorted(DATAMODULES))}."
        )
    cls = DATAMODULES[target]
    accepted = inspect.signature(cls).parameters
    options = {key: value for key, value in data_config.items() if not key.startswith("_")}
    return cls(**{**options, **{key: value for key, value in overrides.items() if key in accepted}})
