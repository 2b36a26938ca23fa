"""LoRA: a trainable low-rank update of chosen row blocks of a frozen Linear (Hu et al., 2021).

For a Linear y = x Wᵀ + b whose weight W [out, in] is made of ``blocks`` row blocks of
d = out / blocks rows each (a fused Q/K/V projection: the blocks q, k, v), LoRA on the
selected blocks c adds, with s = alpha / rank,

    y[..., rows of c] += s * dropout(x) A_cᵀ B_cᵀ        A_c: [rank, in], B_c: [d, rank]

and nothing to the other blocks: the update has no rows for them. Each selected block has
its own A_c and B_c, so LoRA on q and v of a fused projection is exactly LoRA on separate
q and v Linears whose weights are the fused weight's blocks (peft's LoRA does the separate
case; it cannot select blocks of a fused projection). A_c starts kaiming-uniform (as
``nn.Linear``'s weight), B_c at zero: a fresh adapter adds exact zeros. Merging folds the
update into the weight: W[rows of c] += s * B_c A_c.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from linzoo.common.errors import UserValueError

__all__ = ["LoRA"]


class LoRA(nn.Module):
    """The LoRA update of a Linear's selected row blocks: x [..., in] -> delta [..., out].

    Args:
        in_features, out_features: the Linear's sizes.
        blocks: row blocks of the Linear's weight (3 for a fused Q/K/V projection, else 1).
        selected: indices of the blocks that get an update, e.g. ``(0, 2)`` for q and v.
        rank: r, the inner size of B A.
        alpha: the update is scaled by alpha / rank.
        dropout: dropout probability on the adapter's input (training only), one mask for all blocks.

    Parameters: ``lora_A`` [len(selected), rank, in], ``lora_B`` [len(selected), out / blocks, rank].
    """

    is_adapter = True  # its parameters train whatever roles a fine-tune freezes (linzoo.models.transfer)

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        blocks: int = 1,
        selected: Sequence[int] = (0,),
        rank: int = 8,
        alpha: float = 16.0,
        dropout: float = 0.0,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if rank < 1:
            raise UserValueError(f"LoRA rank={rank}: expected an integer >= 1.")
        if not 0.0 <= dropout < 1.0:
            raise UserValueError(f"LoRA dropout={dropout}: expected a probability in [0, 1).")
        selected = tuple(sorted(set(selected)))
        if out_features % blocks or not selected or not all(0 <= index < blocks for index in selected):
            raise UserValueError(f"LoRA blocks={blocks}, selected={selected} do not fit out_features={out_features}.")
        self.in_features = in_features
        self.out_features = out_features
        self.blocks = blocks
        self.selected = selected
        self.rank = rank
        self.alpha = alpha
        self.scaling = alpha / rank
        self.block_size = out_features // blocks
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        factory = {"device": device, "dtype": dtype}
        self.lora_A = nn.Parameter(torch.empty(len(selected), rank, in_features, **factory))
        self.lora_B = nn.Parameter(torch.empty(len(selected), self.block_size, rank, **factory))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Each A_c kaiming-uniform with a = sqrt(5) (U(-1/sqrt(in), 1/sqrt(in))), every B_c zero."""
        with torch.no_grad():
            for a in self.lora_A:
                nn.init.kaiming_uniform_(a, a=math.sqrt(5))
            nn.init.zeros_(self.lora_B)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [..., in] -> delta [..., out], zero on the blocks not selected."""
        hidden = torch.einsum("...i,cri->...cr", self.dropout(x), self.lora_A)  # [..., n, rank]
        update = torch.einsum("...cr,cdr->...cd", hidden, self.lora_B) * self.scaling  # [..., n, d]
        if len(self.selected) == self.blocks:
            return update.flatten(-2)
        zeros = update.new_zeros(update.shape[:-2] + (self.block_size,))
        parts = [zeros] * self.blocks
        for position, index in enumerate(self.selected):
            parts[index] = update[..., position, :]
        return torch.cat(parts, dim=-1)

    def delta_weight(self) -> torch.Tensor:
        """The update as a weight [out, in]: s * B_c A_c on the rows of block c, zero elsewhere."""
        delta = self.lora_A.new_zeros(self.blocks, self.block_size, self.in_features)
        delta[list(self.selected)] = torch.bmm(self.lora_B, self.lora_A) * self.scaling
        return delta.reshape(self.out_features, self.in_features)

    def extra_repr(self) -> str:
        return f"rank={self.rank}, alpha={self.alpha}, blocks={self.blocks}, selected={self.selected}"
