"""Complete networks and the registry; importing this package registers every model."""

from linzoo.models.adapters import add_adapters, merge_adapters, train_only_adapters
from linzoo.models.autoencoder import Autoencoder
from linzoo.models.cnn import CNN
from linzoo.models.lm import DecoderLM
from linzoo.models.mixer import MLPMixer
from linzoo.models.mlp import MLP
from linzoo.models.registry import create_model, list_models, register_model
from linzoo.models.summary import count_parameters
from linzoo.models.transformer import VisionTransformer

__all__ = [
    "CNN",
    "MLP",
    "Autoencoder",
    "DecoderLM",
    "MLPMixer",
    "VisionTransformer",
    "add_adapters",
    "count_parameters",
    "create_model",
    "list_models",
    "merge_adapters",
    "register_model",
    "train_only_adapters",
]
