"""Where the Hydra configs are: the clone's ``configs/`` or the wheel's ``linzoo.configs``."""

from __future__ import annotations

from pathlib import Path

__all__ = ["CONFIG_PATH", "config_path"]


def config_path() -> str:
    """Where the configs are: the clone's ``configs/`` when this linzoo is a clone (or
    an editable install of one), else those the wheel carries, ``pkg://linzoo.configs``."""
    clone = Path(__file__).resolve().parents[2]
    if (clone / "pyproject.toml").is_file() and (clone / "configs" / "train.yaml").is_file():
        return str(clone / "configs")
    return "pkg://linzoo.configs"


CONFIG_PATH = config_path()
