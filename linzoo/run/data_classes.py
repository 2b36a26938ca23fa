"""A classifier's number of classes follows its data: ``data=image_folder`` counts its class folders.

``python scripts/train.py model=cnn data=image_folder data.root=pets`` with ``pets/cat``, ``pets/dog``
and ``pets/fox`` trains a 3-way head: ``model.num_classes`` (which ``model.net.num_classes`` follows)
is set to the number of class folders before anything is built, so the printed config, ``config.yaml``
and the checkpoint all say 3. A ``model.num_classes`` given on the command line that differs is an
error naming the fix, as is a ``model.net.num_classes`` that does not follow.
"""

from __future__ import annotations

import logging

from omegaconf import DictConfig, open_dict

from linzoo.common.errors import ConfigError
from linzoo.data.class_folders import scan_image_folder
from linzoo.data.image_folder import ImageFolderDataModule
from linzoo.data.rebuild import DATAMODULES

log = logging.getLogger(__name__)

__all__ = ["match_classes_to_data"]

IMAGE_FOLDER_TARGETS = {target for target, cls in DATAMODULES.items() if cls is ImageFolderDataModule}


def match_classes_to_data(cfg: DictConfig) -> None:
    """Set ``cfg.model.num_classes`` to the number of class folders of ``data=image_folder`` (a bad
    folder is refused here, before anything is built); other data: nothing to do."""
    data = cfg.get("data")
    if data is None or data.get("_target_") not in IMAGE_FOLDER_TARGETS:
        return
    names = scan_image_folder(data.get("root")).class_names
    model = cfg.get("model")
    if model is None or "num_classes" not in model:
        return  # an autoencoder: it reads no labels
    found = f"the {len(names)} class folders of data.root={data.root} ({', '.join(names)})"
    if model.num_classes != len(names):
        if _given_on_command_line("model.num_classes"):
            raise ConfigError(
                "model.num_classes",
                model.num_classes,
                f"{len(names)}, {found}",
                "drop model.num_classes=...: it follows the class folders",
            )
        log.info("model.num_classes=%d: %s.", len(names), found)
        with open_dict(cfg):
            model.num_classes = len(names)
    net = model.get("net")
    if net is not None and "num_classes" in net and net.num_classes != len(names):
        raise ConfigError(
            "model.net.num_classes",
            net.num_classes,
            f"{len(names)}, {found}",
            "drop model.net.num_classes=...: it follows model.num_classes, which follows the class folders",
        )


def _given_on_command_line(key: str) -> bool:
    """``key=...`` is among Hydra's command-line overrides (False outside a Hydra command)."""
    from hydra.core.hydra_config import HydraConfig

    try:
        overrides = HydraConfig.get().overrides.task
    except ValueError:
        return False
    return any(override.lstrip("+~").split("=", 1)[0] == key for override in overrides)
