"""Reading a ``.safetensors`` file written by ``scripts/export.py format=safetensors``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from linzoo.checkpoint.format import SAFETENSORS_CONFIG_KEY
from linzoo.common.checks import require
from linzoo.common.errors import UserValueError

__all__ = ["read_safetensors"]


def read_safetensors(file: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Weights and build config of a file written by ``scripts/export.py format=safetensors``."""
    require("safetensors", f"Loading {file}")
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(file), framework="pt", device="cpu") as handle:
            metadata = handle.metadata() or {}
            state = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118 (safe_open is no dict)
    except SafetensorError as error:
        raise UserValueError(f"{file} is not a readable safetensors file: {error}") from error
    if SAFETENSORS_CONFIG_KEY not in metadata:
        raise UserValueError(
            f"{file} holds no '{SAFETENSORS_CONFIG_KEY}' metadata, so the net cannot be rebuilt; "
            "export it with scripts/export.py format=safetensors."
        )
    try:
        config = json.loads(metadata[SAFETENSORS_CONFIG_KEY])
    except json.JSONDecodeError as error:
        raise UserValueError(
            f"{file} is refused: its '{SAFETENSORS_CONFIG_KEY}' metadata is not JSON ({error}); export the net "
            "again with scripts/export.py format=safetensors."
        ) from None
    if not isinstance(config, dict):
        raise UserValueError(
            f"{file} is refused: its '{SAFETENSORS_CONFIG_KEY}' metadata is a {type(config).__name__}, not the "
            "config dict scripts/export.py format=safetensors writes."
        )
    return state, config
