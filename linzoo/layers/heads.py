"""Output heads: a classification head and a (optionally weight-tied) language-model head."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from linzoo.common.errors import UserValueError
from linzoo.layers.linear import LinearSpec, as_linear_spec, make_linear
from linzoo.layers.mlp import hidden_layers

__all__ = ["ClassificationHead", "HeadlessMixin", "LMHead", "classification_head"]


class ClassificationHead(nn.Module):
    """[B, in_features] -> [B, num_classes] logits.

    ``hidden_dims=()`` is one Linear; otherwise ``[Linear, act, dropout] * len(hidden_dims)``
    then the output Linear. Every Linear has role ``"head"``.
    """

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        *,
        hidden_dims: Sequence[int] = (),
        activation: str = "relu",
        dropout: float = 0.0,
        linear: LinearSpec | Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        spec = as_linear_spec(linear)
        if spec.mup is not None and hidden_dims:
            raise UserValueError(
                f"linear=mup needs a one-Linear head (the output layer), got head hidden_dims={list(hidden_dims)}; "
                "muP has one readout per net. Fix: head_hidden_dims=[] (or linear=default)."
            )
        layers, width = hidden_layers(
            in_features, hidden_dims, role="head", activation=activation, dropout=dropout, spec=spec
        )
        layers.append(make_linear(width, num_classes, role="head", spec=spec))
        self.layers = nn.Sequential(*layers)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """features: [B, in_features] -> logits [B, num_classes]."""
        return self.layers(features)


def classification_head(in_features: int, num_classes: int, **options: Any) -> nn.Module:
    """A :class:`ClassificationHead`, or ``nn.Identity()`` when ``num_classes == 0`` (a headless
    model that returns its features [B, in_features])."""
    if num_classes < 0:
        raise UserValueError(f"num_classes must be >= 0 (0: no head, the model returns features), got {num_classes}.")
    return nn.Identity() if num_classes == 0 else ClassificationHead(in_features, num_classes, **options)


class HeadlessMixin:
    """timm's transfer-learning API for classifiers whose ``forward`` is ``head(forward_features(x))``.

    The model sets ``num_features`` (width of the features), ``num_classes`` and
    ``head_options`` (keyword arguments of :class:`ClassificationHead`: hidden_dims,
    activation, dropout, linear) and builds ``self.head = classification_head(...)``.
    """

    num_features: int
    num_classes: int
    head_options: dict[str, Any]
    head: nn.Module

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        """images [B, C, H, W] -> the features the head sees, [B, num_features]."""
        raise NotImplementedError

    def get_classifier(self) -> nn.Module:
        """The head: a :class:`ClassificationHead`, or ``nn.Identity`` when headless."""
        return self.head

    def reset_classifier(self, num_classes: int) -> None:
        """Put a new head for ``num_classes`` on (factory Linears of role ``"head"``, the model's
        spec, freshly initialised, on the model's device and dtype); 0 removes it (``nn.Identity``)."""
        reference = next(iter(self.parameters()))  # type: ignore[attr-defined]
        head = classification_head(self.num_features, num_classes, **self.head_options)
        self.head = head.to(device=reference.device, dtype=reference.dtype)
        self.num_classes = num_classes


class LMHead(nn.Module):
    """Hidden states [B, T, dim] -> next-token logits [B, T, vocab_size] (role ``"lm_head"``).

    With ``tie_to`` the projection's weight IS the embedding's Parameter (same
    storage, counted once by ``model.parameters()``): logits = h Eᵀ (+ b).
    Calling ``reset_parameters()`` on the projection of a tied head would re-initialise
    the embedding too, so initialise the embedding after building the head.

    muP (``linear.mup``): the head is the output layer, logits = (h * output_mult / m) Wᵀ + b.
    Tied, W is the token embedding and keeps the embedding's rule (input-like: its own init,
    Adam lr x1, SGD lr x m); only the output multiplier output_mult / m stays with the head.
    """

    def __init__(
        self,
        dim: int,
        vocab_size: int,
        *,
        tie_to: nn.Embedding | None = None,
        linear: LinearSpec | Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.proj = make_linear(dim, vocab_size, role="lm_head", spec=linear)
        if tie_to is not None:
            if tuple(tie_to.weight.shape) != (vocab_size, dim):
                raise UserValueError(
                    f"Cannot tie the LM head [vocab_size={vocab_size}, dim={dim}] to an embedding of shape "
                    f"{tuple(tie_to.weight.shape)}; the embedding must be nn.Embedding({vocab_size}, {dim})."
                )
            self.proj.weight = tie_to.weight

    @property
    def weight(self) -> nn.Parameter:
        """The [vocab_size, dim] output matrix (the embedding's, when tied)."""
        return self.proj.weight

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """hidden: [..., dim] -> logits [..., vocab_size]."""
        return self.proj(hidden)
