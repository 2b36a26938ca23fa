"""Synthetic MNIST-family files in the real on-disk formats: for tests, smoke runs and the docs'
generated tables, with no download. ``write_fake_mnist(root)`` then ``data.root=<root>``."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Literal

import numpy as np

__all__ = ["IDX_NAMES", "fake_digits", "write_fake_mnist", "write_idx"]

IDX_NAMES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def fake_digits(num: int, *, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Learnable stand-ins for digits: ``(uint8 [num, 28, 28], uint8 [num])``, classes balanced.

    Class ``c`` is a bright blob at angle ``36 * c`` degrees on a circle around the
    centre plus a short bar whose length grows with ``c``, jittered by a pixel,
    over uniform noise: a tiny MLP tells them apart within a few epochs.
    """
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(num) % 10).astype(np.uint8)
    rows, cols = np.mgrid[0:28, 0:28].astype(np.float32)
    angle = 2 * np.pi * labels / 10
    centre_row = 14 + 9 * np.sin(angle) + rng.integers(-1, 2, num)
    centre_col = 14 + 9 * np.cos(angle) + rng.integers(-1, 2, num)
    distance2 = (rows - centre_row[:, None, None]) ** 2 + (cols - centre_col[:, None, None]) ** 2
    images = 230 * np.exp(-distance2 / (2 * 2.0**2))
    bar_end = 9 + labels  # a bar on row 14 from column 9 to 9 + label
    images[:, 13:15, 9:19] += 200 * (cols[None, 13:15, 9:19] <= bar_end[:, None, None])
    images += rng.uniform(0, 50, images.shape)
    return np.clip(images, 0, 255).astype(np.uint8), labels


def write_idx(path: Path, array: np.ndarray) -> Path:
    """Write a uint8 array in the idx format (gzipped when ``path`` ends in ``.gz``)."""
    header = (0x0800 | array.ndim).to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    payload = header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(payload, compresslevel=1) if path.suffix == ".gz" else payload)
    return path


def write_fake_mnist(
    root: Path,
    *,
    num_train: int = 1000,
    num_test: int = 200,
    seed: int = 0,
    dataset: Literal["MNIST", "FashionMNIST"] = "MNIST",
    layout: Literal["torchvision", "debian"] = "torchvision",
    gzipped: bool = False,
) -> Path:
    """Write fake train/test files; returns the folder that holds them.

    ``layout="torchvision"``: idx files in ``<root>/<dataset>/raw/``, uncompressed (read by
    ``torchvision.datasets.MNIST(root)`` / ``FashionMNIST(root)``) or, with ``gzipped``,
    as ``*.gz`` (Debian's files copied there).
    ``layout="debian"``: the four ``*.gz`` files directly in ``root``, as in
    ``/usr/share/datasets/fashion-mnist``.
    """
    folder = Path(root) / dataset / "raw" if layout == "torchvision" else Path(root)
    suffix = ".gz" if gzipped or layout == "debian" else ""
    for split, num, split_seed in (("train", num_train, seed), ("test", num_test, seed + 1)):
        images, labels = fake_digits(num, seed=split_seed)
        image_name, label_name = IDX_NAMES[split]
        write_idx(folder / f"{image_name}{suffix}", images)
        write_idx(folder / f"{label_name}{suffix}", labels)
    return folder
