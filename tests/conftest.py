"""Shared fixtures. Data for tests is generated here, in the real on-disk formats."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Literal

import numpy as np
import pytest
from collections.abc import Callable
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from linzoo.config import register_configs

# ------------------------------------------------------------------------ fake MNIST
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
) -> Path:
    """Write fake train/test files; returns the folder that holds them.

    ``layout="torchvision"``: uncompressed idx files in ``<root>/<dataset>/raw/``, read by
    ``torchvision.datasets.MNIST(root)`` / ``FashionMNIST(root)``.
    ``layout="debian"``: the four ``*.gz`` files directly in ``root``, as in
    ``/usr/share/datasets/fashion-mnist``.
    """
    folder = Path(root) / dataset / "raw" if layout == "torchvision" else Path(root)
    suffix = ".gz" if layout == "debian" else ""
    for split, num, split_seed in (("train", num_train, seed), ("test", num_test, seed + 1)):
        images, labels = fake_digits(num, seed=split_seed)
        image_name, label_name = IDX_NAMES[split]
        write_idx(folder / f"{image_name}{suffix}", images)
        write_idx(folder / f"{label_name}{suffix}", labels)
    return folder


@pytest.fixture(scope="session")
def fake_mnist_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data root with fake ``MNIST/raw`` and ``FashionMNIST/raw`` (1,000 train, 200 test each).

    Shared by the whole session: read it, never write into it (use ``fake_mnist_writer``).
    """
    root = tmp_path_factory.mktemp("data")
    write_fake_mnist(root, dataset="MNIST", seed=0)
    write_fake_mnist(root, dataset="FashionMNIST", seed=100)
    return root


@pytest.fixture
def fake_mnist_writer():
    """:func:`write_fake_mnist`, for tests that need their own files."""
    return write_fake_mnist


# --- composing the real Hydra configs (what scripts/train.py and eval.py see) -------

CONFIG_DIR = str(Path(__file__).resolve().parents[1] / "configs")


def _compose(config_name: str, overrides: list[str], output_dir: Path) -> DictConfig:
    register_configs()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name, overrides=[*overrides, f"paths.output_dir={output_dir}"])


@pytest.fixture
def compose_train(tmp_path: Path) -> Callable[..., DictConfig]:
    """compose_train(overrides, output_dir=None) -> the composed configs/train.yaml."""

    def compose_with(overrides: list[str], output_dir: Path | None = None) -> DictConfig:
        return _compose("train", overrides, output_dir or tmp_path / "run")

    return compose_with


@pytest.fixture
def compose_eval(tmp_path: Path) -> Callable[..., DictConfig]:
    """compose_eval(overrides, output_dir=None) -> the composed configs/eval.yaml."""

    def compose_with(overrides: list[str], output_dir: Path | None = None) -> DictConfig:
        return _compose("eval", overrides, output_dir or tmp_path / "eval")

    return compose_with
