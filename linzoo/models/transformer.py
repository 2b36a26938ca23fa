"""Vision Transformer (ViT) classifier built from factory Linears."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from linzoo.common.errors import UserValueError
from linzoo.layers.heads import HeadlessMixin, classification_head
from linzoo.layers.linear import LinearSpec, as_linear_spec
from linzoo.layers.patch_embedding import PatchEmbedding
from linzoo.layers.transformer import TransformerBlock
from linzoo.models.inputs import check_images
from linzoo.models.registry import register_model

__all__ = ["VisionTransformer"]

POOLS = ("cls", "mean")


@register_model("transformer")
class VisionTransformer(HeadlessMixin, nn.Module):
    """[B, C, H, W] -> patches [B, N, C p²] -> Linear (role "patch") + position embedding
    -> (CLS token) -> ``depth`` pre-norm TransformerBlocks -> LayerNorm -> CLS token or
    mean over patches -> Linear head -> [B, num_classes]; ``num_classes=0``: no head, features [B, dim]."""

    def __init__(
        self,
        *,
        in_channels: int = 1,
        image_size: int = 28,
        num_classes: int = 10,
        patch_size: int = 4,
        dim: int = 64,
        depth: int = 4,
        num_heads: int = 4,
        mlp_ratio: float = 2.0,
        fused_qkv: bool = False,
        qkv_bias: bool = True,
        gated: bool = False,
        activation: str = "gelu",
        dropout: float = 0.0,
        attn_dropout: float = 0.0,
        pool: str = "cls",
        linear: LinearSpec | Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if pool not in POOLS:
            raise UserValueError(f"Unknown pool {pool!r}; valid: {', '.join(POOLS)}.")
        spec = as_linear_spec(linear).with_depth(depth).with_width(dim)  # muP: width = dim, num_heads fixed
        self.in_channels = in_channels
        self.image_size = image_size
        self.pool = pool
        self.patch_embedding = PatchEmbedding(
            image_size=image_size, patch_size=patch_size, in_channels=in_channels, dim=dim, linear=spec
        )
        num_tokens = self.patch_embedding.num_patches + (1 if pool == "cls" else 0)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim)) if pool == "cls" else None
        self.position_embedding = nn.Parameter(torch.zeros(1, num_tokens, dim))
        self.dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            TransformerBlock(
                dim,
                num_heads,
                mlp_ratio=mlp_ratio,
                activation=activation,
                gated=gated,
                fused_qkv=fused_qkv,
                qkv_bias=qkv_bias,
                dropout=dropout,
                attn_dropout=attn_dropout,
                linear=spec,
            )
            for _ in range(depth)
        )
        self.norm = nn.LayerNorm(dim)
        self.num_features, self.num_classes = dim, num_classes
        self.head_options = {"linear": spec}
        self.head = classification_head(dim, num_classes, **self.head_options)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Position embedding and CLS token ~ trunc_normal(std=0.02), as in ViT/timm."""
        nn.init.trunc_normal_(self.position_embedding, std=0.02, a=-0.04, b=0.04)
        if self.cls_token is not None:
            nn.init.trunc_normal_(self.cls_token, std=0.02, a=-0.04, b=0.04)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images: [B, C, H, W] in [0, 1] -> logits [B, num_classes] (features when num_classes=0)."""
        return self.head(self.forward_features(images))

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        """images: [B, C, H, W] in [0, 1] -> pooled features [B, dim] (CLS token or mean, after the norm)."""
        check_images(images, in_channels=self.in_channels, image_size=self.image_size, model="VisionTransformer")
        x = self.patch_embedding(images)  # [B, N, dim]
        if self.cls_token is not None:
            x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        x = self.dropout(x + self.position_embedding)
        for block in self.blocks:
            x = block(x)
        x = self.norm(x)
        return x[:, 0] if self.pool == "cls" else x.mean(dim=1)
