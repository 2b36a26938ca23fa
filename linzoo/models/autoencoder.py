"""Fully connected autoencoder with optional tied (transposed) decoder weights."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from linzoo.layers.activations import make_activation
from linzoo.layers.linear import LinearSpec, as_linear_spec, make_linear
from linzoo.layers.tied import TransposedLinear
from linzoo.models.inputs import check_images
from linzoo.models.registry import register_model

__all__ = ["Autoencoder"]


@register_model("autoencoder")
class Autoencoder(nn.Module):
    """Images [B, C, H, W] -> latent z [B, latent_dim] -> reconstructions [B, C, H, W] in [0, 1].

    Encoder: flatten, [Linear (role "enc"), act] per hidden width, Linear to the latent.
    Decoder: the mirror image with role "dec", ending in logits; ``decode`` applies the
    sigmoid. ``tied=True``: each decoder Linear uses the transpose of its mirror encoder
    Linear's weight (the same Parameter) and keeps its own bias.
    """

    def __init__(
        self,
        *,
        in_channels: int = 1,
        image_size: int = 28,
        hidden_dims: Sequence[int] = (256,),
        latent_dim: int = 32,
        activation: str = "relu",
        tied: bool = False,
        linear: LinearSpec | Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        spec = as_linear_spec(linear)
        self.in_channels = in_channels
        self.image_size = image_size
        self.latent_dim = latent_dim
        self.tied = tied
        widths = [in_channels * image_size * image_size, *hidden_dims, latent_dim]
        encoder_linears = [make_linear(a, b, role="enc", spec=spec) for a, b in zip(widths[:-1], widths[1:])]
        if tied:
            decoder_linears: list[nn.Module] = [
                TransposedLinear(layer, role="dec", linear=spec) for layer in reversed(encoder_linears)
            ]
        else:
            reversed_widths = widths[::-1]
            decoder_linears = [
                make_linear(a, b, role="dec", spec=spec) for a, b in zip(reversed_widths[:-1], reversed_widths[1:])
            ]
        self.encoder = nn.Sequential(nn.Flatten(), *_with_activations(encoder_linears, activation))
        self.decoder = nn.Sequential(*_with_activations(decoder_linears, activation))

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """images: [B, C, H, W] in [0, 1] -> z: [B, latent_dim]."""
        check_images(images, in_channels=self.in_channels, image_size=self.image_size, model="Autoencoder")
        return self.encoder(images)

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        """z: [B, latent_dim] -> pre-sigmoid reconstructions [B, C, H, W] (for BCE-with-logits)."""
        return self.decoder(z).view(-1, self.in_channels, self.image_size, self.image_size)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z: [B, latent_dim] -> reconstructions sigmoid(decode_logits(z)) in [0, 1]."""
        return torch.sigmoid(self.decode_logits(z))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images: [B, C, H, W] -> reconstructions [B, C, H, W] in [0, 1]."""
        return self.decode(self.encode(images))


def _with_activations(linears: Sequence[nn.Module], activation: str) -> list[nn.Module]:
    """[L1, act, L2, act, ..., Ln]: an activation between Linears, none after the last."""
    layers: list[nn.Module] = []
    for index, layer in enumerate(linears):
        layers.append(layer)
        if index < len(linears) - 1:
            layers.append(make_activation(activation))
    return layers
