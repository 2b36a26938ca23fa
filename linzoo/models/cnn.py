"""Small convolutional classifier: conv stack, global average pooling, Linear head."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from linzoo.common.errors import UserValueError
from linzoo.layers.activations import make_activation
from linzoo.layers.heads import HeadlessMixin, classification_head
from linzoo.layers.linear import LinearSpec
from linzoo.models.inputs import check_images
from linzoo.models.registry import register_model

__all__ = ["CNN"]


@register_model("cnn")
class CNN(HeadlessMixin, nn.Module):
    """[B, C, H, W] -> [Conv3x3, BatchNorm, act, MaxPool2] per entry of ``channels``
    -> global average pool -> [B, channels[-1]] -> head (Linear, or an MLP with
    ``head_hidden_dims``) -> [B, num_classes]; ``num_classes=0``: no head, features [B, channels[-1]].

    ``channels_last``: the conv weights and every input in NHWC memory format (same numbers, same
    state_dict); on a CPU with AVX-512 BF16, under bf16 autocast, about 2 to 3 times faster a step
    (docs/recipes.md#cnn_fast)."""

    def __init__(
        self,
        *,
        in_channels: int = 1,
        image_size: int = 28,
        num_classes: int = 10,
        channels: Sequence[int] = (32, 64, 128),
        kernel_size: int = 3,
        activation: str = "relu",
        head_hidden_dims: Sequence[int] = (),
        dropout: float = 0.0,
        channels_last: bool = False,
        linear: LinearSpec | Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if not channels:
            raise UserValueError("CNN needs at least one conv stage; set channels, e.g. channels=[32, 64].")
        if image_size < 2 ** len(channels):
            raise UserValueError(
                f"image_size={image_size} is too small for {len(channels)} pooling stages "
                f"(each halves it); use at most {max(image_size.bit_length() - 1, 1)} entries in channels."
            )
        if kernel_size % 2 == 0:
            raise UserValueError(f"kernel_size must be odd (so padding keeps the size), got {kernel_size}.")
        self.in_channels = in_channels
        self.image_size = image_size
        stages: list[nn.Module] = []
        previous = in_channels
        for width in channels:
            stages += [
                nn.Conv2d(previous, width, kernel_size, padding=kernel_size // 2, bias=False),
                nn.BatchNorm2d(width),
                make_activation(activation),
                nn.MaxPool2d(2),
            ]
            previous = width
        self.features = nn.Sequential(*stages, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.num_features, self.num_classes = previous, num_classes
        self.head_options = {
            "hidden_dims": head_hidden_dims,
            "activation": activation,
            "dropout": dropout,
            "linear": linear,
        }
        self.head = classification_head(previous, num_classes, **self.head_options)
        self.channels_last = channels_last
        if channels_last:
            self.features.to(memory_format=torch.channels_last)

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        """images: [B, C, H, W] in [0, 1] -> pooled features [B, num_features]."""
        check_images(images, in_channels=self.in_channels, image_size=self.image_size, model="CNN")
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return self.features(images)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images: [B, C, H, W] in [0, 1] -> logits [B, num_classes] (features when num_classes=0)."""
        return self.head(self.forward_features(images))
