"""linzoo: a model zoo of Linear-based architectures, every Linear built by one factory."""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

from linzoo import models
from linzoo.layers.linear import LinearSpec, make_linear
from linzoo.models import (
    CNN,
    MLP,
    Autoencoder,
    DecoderLM,
    MLPMixer,
    VisionTransformer,
    count_parameters,
    list_models,
    register_model,
)

__version__ = "0.1.0"


def create_model(name: str, *, checkpoint_path: str | os.PathLike[str] | None = None, **kwargs: Any) -> nn.Module:
    """Build the registered model ``name`` from ``kwargs``, as in timm.

    With ``checkpoint_path`` (a .ckpt, a run directory or an exported .safetensors file) the
    trained weights are loaded and the model is returned in eval mode; a checkpoint of
    another model or of other sizes is a ``ValueError`` naming both configurations.
    """
    if checkpoint_path is None:
        return models.create_model(name, **kwargs)
    from linzoo.checkpoint import create_model_from_checkpoint

    return create_model_from_checkpoint(name, checkpoint_path, **kwargs)


def load(path: str | os.PathLike[str], *, device: str | torch.device = "cpu") -> nn.Module:
    """The trained plain net (an ``nn.Module`` in eval mode on ``device``) of ``path``:
    a checkpoint (.ckpt), a run directory (the checkpoint its metrics.json names: the best,
    else last.ckpt; see :func:`linzoo.checkpoint.checkpoint_in`) or a .safetensors file written by ``scripts/export.py`` (no Lightning object needed)."""
    from linzoo.checkpoint import load as load_net

    return load_net(path, device=device)


__all__ = [
    "CNN",
    "MLP",
    "Autoencoder",
    "DecoderLM",
    "LinearSpec",
    "MLPMixer",
    "VisionTransformer",
    "count_parameters",
    "create_model",
    "list_models",
    "load",
    "make_linear",
    "register_model",
]
