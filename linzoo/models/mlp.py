"""Multi-layer perceptron classifier on flattened images."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from linzoo.layers.heads import HeadlessMixin, classification_head
from linzoo.layers.linear import LinearSpec, as_linear_spec
from linzoo.layers.mlp import hidden_layers
from linzoo.models.inputs import check_images
from linzoo.models.registry import register_model

__all__ = ["MLP"]


@register_model("mlp")
class MLP(HeadlessMixin, nn.Module):
    """[B, C, H, W] -> flatten -> [Linear (role "hidden"), act, dropout] * N -> head -> [B, num_classes].

    muP (``linear=mup``): the width is ``hidden_dims[0]``; every hidden width is taken to scale by the
    same m = hidden_dims[0] / mup.base_width (e.g. [256, 128] -> [512, 256]).

    ``num_classes=0``: no head, the model returns the features [B, hidden_dims[-1]]
    (``forward_features``; ``reset_classifier(n)`` puts a new head on).
    """

    def __init__(
        self,
        *,
        in_channels: int = 1,
        image_size: int = 28,
        num_classes: int = 10,
        hidden_dims: Sequence[int] = (256, 128),
        activation: str = "relu",
        dropout: float = 0.1,
        linear: LinearSpec | Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        spec = as_linear_spec(linear)
        if hidden_dims:  # muP's width: the first hidden width (all hidden widths scale together with it)
            spec = spec.with_width(hidden_dims[0])
        self.in_channels = in_channels
        self.image_size = image_size
        layers, width = hidden_layers(
            in_channels * image_size * image_size,
            hidden_dims,
            role="hidden",
            activation=activation,
            dropout=dropout,
            spec=spec,
            reads_input=True,  # muP: the first hidden Linear is the input layer
        )
        self.features = nn.Sequential(nn.Flatten(), *layers)
        self.num_features, self.num_classes = width, num_classes
        self.head_options = {"linear": spec}
        self.head = classification_head(width, num_classes, **self.head_options)

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        """images: [B, C, H, W] in [0, 1] -> features [B, num_features] (the last hidden layer's output)."""
        check_images(images, in_channels=self.in_channels, image_size=self.image_size, model="MLP")
        return self.features(images)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images: [B, C, H, W] in [0, 1] -> logits [B, num_classes] (features when num_classes=0)."""
        return self.head(self.forward_features(images))
