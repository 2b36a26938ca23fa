"""MLP-Mixer classifier: only Linears mix information, across patches and across channels."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from linzoo.layers.heads import HeadlessMixin, classification_head
from linzoo.layers.linear import LinearSpec, as_linear_spec
from linzoo.layers.mixer import MixerBlock
from linzoo.layers.patch_embedding import PatchEmbedding
from linzoo.models.inputs import check_images
from linzoo.models.registry import register_model

__all__ = ["MLPMixer"]


@register_model("mixer")
class MLPMixer(HeadlessMixin, nn.Module):
    """[B, C, H, W] -> patches -> Linear (role "patch") [B, N, dim] -> ``depth`` MixerBlocks
    -> LayerNorm -> mean over patches -> Linear head -> [B, num_classes]; ``num_classes=0``: no head, features [B, dim]."""

    def __init__(
        self,
        *,
        in_channels: int = 1,
        image_size: int = 28,
        num_classes: int = 10,
        patch_size: int = 4,
        dim: int = 64,
        depth: int = 4,
        token_mlp_dim: int = 64,
        channel_mlp_dim: int = 128,
        activation: str = "gelu",
        dropout: float = 0.0,
        linear: LinearSpec | Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        # muP: width = dim; channel_mlp_dim is taken to scale with dim, token_mlp_dim stays (role token_mix: fixed)
        spec = as_linear_spec(linear).with_depth(depth).with_width(dim)
        self.in_channels = in_channels
        self.image_size = image_size
        self.patch_embedding = PatchEmbedding(
            image_size=image_size, patch_size=patch_size, in_channels=in_channels, dim=dim, linear=spec
        )
        self.blocks = nn.Sequential(
            *(
                MixerBlock(
                    self.patch_embedding.num_patches,
                    dim,
                    token_mlp_dim=token_mlp_dim,
                    channel_mlp_dim=channel_mlp_dim,
                    activation=activation,
                    dropout=dropout,
                    linear=spec,
                )
                for _ in range(depth)
            )
        )
        self.norm = nn.LayerNorm(dim)
        self.num_features, self.num_classes = dim, num_classes
        self.head_options = {"linear": spec}
        self.head = classification_head(dim, num_classes, **self.head_options)

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        """images: [B, C, H, W] in [0, 1] -> features [B, dim] (normed, mean over patches)."""
        check_images(images, in_channels=self.in_channels, image_size=self.image_size, model="MLPMixer")
        x = self.blocks(self.patch_embedding(images))
        return self.norm(x).mean(dim=1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images: [B, C, H, W] in [0, 1] -> logits [B, num_classes] (features when num_classes=0)."""
        return self.head(self.forward_features(images))
