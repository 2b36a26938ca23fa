"""Key/value cache of one attention layer, for incremental (token by token) decoding."""

from __future__ import annotations

import torch

__all__ = ["KVCache"]


class KVCache:
    """Past keys and values of ONE attention layer; a model keeps one per block.

    Keys and values are stored as ``[B, num_heads, T_past, head_dim]`` and grow along
    the time axis with every :meth:`update` (``torch.cat``: simple, fine for short
    sequences).
    """

    def __init__(self) -> None:
        self.keys: torch.Tensor | None = None
        self.values: torch.Tensor | None = None

    def __len__(self) -> int:
        """Number of cached time steps (``T_past``)."""
        return 0 if self.keys is None else self.keys.shape[-2]

    def update(self, keys: torch.Tensor, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Append new ``[B, H, T_new, Dh]`` keys/values; return all ``[B, H, T_past + T_new, Dh]``."""
        if self.keys is None or self.values is None:
            self.keys, self.values = keys, values
        else:
            self.keys = torch.cat([self.keys, keys], dim=-2)
            self.values = torch.cat([self.values, values], dim=-2)
        return self.keys, self.values

    def reset(self) -> None:
        """Forget everything (start a new sequence)."""
        self.keys = None
        self.values = None
