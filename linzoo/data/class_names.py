"""The class names of each dataset, in label order: plain data, so that predict can name its
classes without importing the data pipeline (torchvision, Lightning)."""

from __future__ import annotations

__all__ = ["CLASS_NAMES"]

CLASS_NAMES: dict[str, tuple[str, ...]] = {
    "mnist": tuple(str(digit) for digit in range(10)),
    # torchvision.datasets.FashionMNIST.classes (tests/test_predict.py checks they agree)
    "fashion_mnist": (
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ),
}
