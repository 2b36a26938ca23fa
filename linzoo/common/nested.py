"""Nested configs as flat ``{"a.b.c": value}`` dicts (plain Python)."""

from __future__ import annotations

from typing import Any

__all__ = ["flatten"]


def flatten(config: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a.b.c": value}`` for a nested dict; lists stay values, an empty dict leaves no key."""
    if not isinstance(config, dict):
        return {prefix.rstrip("."): config}
    flat: dict[str, Any] = {}
    for key, value in config.items():
        flat.update(flatten(value, f"{prefix}{key}."))
    return flat
