"""Key/value cache of one attention layer, for incremental (token by token) decoding."""

from __future__ import annotations

import torch

from linzoo.common.errors import UserValueError

__all__ = ["KVCache"]


class KVCache:
    """Past keys and values of ONE attention layer; a model keeps one per block.

    Keys and values are ``[B, num_heads, T_past, head_dim]``. With ``max_length`` (the
    model's context, as torchtune's cache does) the first :meth:`update` allocates
    buffers ``[B, H, max_length, Dh]`` and every later one writes its steps in place:
    no copy of the past per step. Without it they grow by ``torch.cat`` (each step
    copies everything cached so far).
    """

    def __init__(self, max_length: int | None = None) -> None:
        if max_length is not None and max_length < 1:
            raise UserValueError(f"max_length must be >= 1 or None, got {max_length}.")
        self.max_length = max_length
        self.keys: torch.Tensor | None = None  # [B, H, T_past, Dh] (a view of the buffer when preallocated)
        self.values: torch.Tensor | None = None
        self._key_buffer: torch.Tensor | None = None  # [B, H, max_length, Dh]
        self._value_buffer: torch.Tensor | None = None
        self._length = 0

    def __len__(self) -> int:
        """Number of cached time steps (``T_past``)."""
        return self._length

    def update(self, keys: torch.Tensor, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Append new ``[B, H, T_new, Dh]`` keys/values; return all ``[B, H, T_past + T_new, Dh]``."""
        start, end = self._length, self._length + keys.shape[-2]
        if self.max_length is None:
            if self.keys is None or self.values is None:
                self.keys, self.values = keys, values
            else:
                self.keys = torch.cat([self.keys, keys], dim=-2)
                self.values = torch.cat([self.values, values], dim=-2)
        else:
            if end > self.max_length:
                raise ValueError(f"KV cache holds {self.max_length} steps; {start} cached + {end - start} new.")
            if self._key_buffer is None or self._value_buffer is None:
                size = (*keys.shape[:-2], self.max_length, keys.shape[-1])
                self._key_buffer = keys.new_empty(size)
                self._value_buffer = values.new_empty(size)
            self._key_buffer[..., start:end, :] = keys
            self._value_buffer[..., start:end, :] = values
            self.keys, self.values = self._key_buffer[..., :end, :], self._value_buffer[..., :end, :]
        self._length = end
        return self.keys, self.values

    def reset(self) -> None:
        """Forget everything (start a new sequence); a preallocated buffer is kept for reuse."""
        self.keys = None
        self.values = None
        self._length = 0
