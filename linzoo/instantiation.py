"""Hydra helpers shared by the run functions (train, evaluate); Hydra-aware by design."""

from __future__ import annotations

from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig


def instantiate_all(group: DictConfig | None) -> list[Any]:
    """Instantiate every entry of a callbacks/logger group that has a ``_target_``."""
    if not group:
        return []
    for name, entry in group.items():
        if isinstance(entry, str):  # e.g. callbacks.progress_bar=tqdm: a value, not a group choice
            raise ValueError(
                f"The callback/logger entry {name!r} is the text {entry!r}, not a config with a _target_. "
                f"To choose an option of a nested config group, write the group with a slash: "
                f"callbacks/{name}={entry} (e.g. callbacks/progress_bar=tqdm)."
            )
    return [instantiate(entry) for entry in group.values() if entry and "_target_" in entry]
