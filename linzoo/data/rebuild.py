"""Rebuilding the data module that a checkpoint's saved data config describes, without Hydra."""

from __future__ import annotations

from typing import Any

from linzoo.common.errors import UserValueError
from linzoo.data.mnist import MNISTDataModule

__all__ = ["build_datamodule"]

DATAMODULES = {"linzoo.data.MNISTDataModule": MNISTDataModule, "linzoo.data.mnist.MNISTDataModule": MNISTDataModule}


def build_datamodule(data_config: dict[str, Any], **overrides: Any) -> MNISTDataModule:
    """The data module of a saved ``{"_target_": "linzoo.data.MNISTDataModule", **kwargs}``, with
    ``overrides`` applied; the ``_target_`` is looked up in linzoo's own data modules, never imported."""
    target = str(data_config.get("_target_"))
    if target not in DATAMODULES:
        raise UserValueError(
            f"The saved data _target_={target!r} is not a linzoo data module; expected linzoo.data.MNISTDataModule."
        )
    options = {key: value for key, value in data_config.items() if not key.startswith("_")}
    return DATAMODULES[target](**{**options, **overrides})
