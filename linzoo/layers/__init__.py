"""Plain-PyTorch building blocks; every affine map comes from :func:`make_linear`."""

from linzoo.layers.activations import ACTIVATIONS, make_activation
from linzoo.layers.attention import Attention
from linzoo.layers.heads import ClassificationHead, LMHead
from linzoo.layers.kv_cache import KVCache
from linzoo.layers.linear import (
    BIAS_INITS,
    ROLES,
    WEIGHT_INITS,
    FactoryLazyLinear,
    FactoryLinear,
    LinearSpec,
    as_linear_spec,
    make_linear,
)
from linzoo.layers.mixer import MixerBlock
from linzoo.layers.mlp import FeedForward
from linzoo.layers.patch_embedding import PatchEmbedding, patchify
from linzoo.layers.tied import TransposedLinear
from linzoo.layers.transformer import TransformerBlock

__all__ = [
    "ACTIVATIONS",
    "BIAS_INITS",
    "ROLES",
    "WEIGHT_INITS",
    "Attention",
    "ClassificationHead",
    "FactoryLazyLinear",
    "FactoryLinear",
    "FeedForward",
    "KVCache",
    "LMHead",
    "LinearSpec",
    "MixerBlock",
    "PatchEmbedding",
    "TransformerBlock",
    "TransposedLinear",
    "as_linear_spec",
    "make_activation",
    "make_linear",
    "patchify",
]
