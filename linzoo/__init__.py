"""linzoo: a model zoo of Linear-based architectures, every Linear built by one factory."""

from linzoo.layers.linear import LinearSpec, make_linear
from linzoo.models import (
    CNN,
    MLP,
    Autoencoder,
    DecoderLM,
    MLPMixer,
    VisionTransformer,
    count_parameters,
    create_model,
    list_models,
    register_model,
)

__version__ = "0.1.0"

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
    "make_linear",
    "register_model",
]
