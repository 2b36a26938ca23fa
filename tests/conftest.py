"""Shared fixtures. Data for tests is generated here, in the real on-disk formats."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

# torch.compile's kernels go into a cache folder of this test session (its subprocesses inherit
# it): two sessions compiling the same kernel into the shared /tmp/torchinductor_<user> at once
# aborted one of them ("Fatal Python error: Aborted" inside a compiled forward, seen here twice).
os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", tempfile.mkdtemp(prefix="linzoo-tests-inductor-"))
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

# ------------------------------------------------------------------------ fake MNIST
# The generators live in linzoo.data.synthetic (scripts/error_table.py uses them too).
from linzoo.data.synthetic import IDX_NAMES, fake_digits, write_fake_mnist, write_idx  # noqa: E402, F401
from linzoo.run.schemas import register_configs


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
