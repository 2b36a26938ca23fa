"""Test helpers shared by the test files (``from helpers import ...``): tiny model
overrides, a short training budget, data overrides for the fake MNIST root, PNG checks."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
MODELS = ["autoencoder", "cnn", "lm", "mixer", "mlp", "transformer"]
# Small nets and few batches: each run takes seconds on a 2-core CPU.
TINY = {
    "mlp": ["model.net.hidden_dims=[32]"],
    "cnn": ["model.net.channels=[8,16]"],
    "transformer": ["model.net.dim=16", "model.net.depth=1", "model.net.num_heads=2", "model.net.patch_size=7"],
    "mixer": ["model.net.dim=16", "model.net.depth=1", "model.net.patch_size=7"],
    "autoencoder": ["model.net.hidden_dims=[32]", "model.net.latent_dim=8"],
    "lm": ["model.image_size=7", "model.net.seq_len=49", "model.net.dim=16", "model.net.depth=1"],
}
SHORT = [
    "trainer.max_epochs=2",
    "trainer.limit_train_batches=4",
    "trainer.limit_val_batches=2",
    "data.batch_size=32",
    "data.eval_batch_size=100",
    "callbacks.progress_bar.refresh_rate=0",
]


def tiny(model: str) -> list[str]:
    """``model=<model>`` plus the overrides that make it tiny."""
    return [f"model={model}", *TINY[model]]


def data_overrides(root: Path) -> list[str]:
    """Train on the fake MNIST files under ``root`` (never the network)."""
    return ["data=mnist", f"data.root={root}", "data.download=false", "data.val_size=200"]


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) of a PNG, after checking that PIL reads it as one and decodes every pixel."""
    with Image.open(path) as image:
        assert image.format == "PNG"
        image.load()  # a truncated file fails here
        return image.size


def same_metric(expected: float) -> object:
    """``pytest.approx`` for a metric that another run recomputed from the same weights on the same
    data (eval after train, an old checkpoint on another machine, compiled against eager). Its float32
    sums may be taken in another order (thread count, AVX2/AVX-512/AMX kernels, fusion), which moves
    a mean by a few ulps of its value: 1 ulp is 6e-8 relative, 3e-5 absolute at 500. Hence a relative
    tolerance of 1e-5 (~100 ulps, far below any real change), and 1e-7 absolute for values near 0."""
    import pytest

    return pytest.approx(expected, rel=1e-5, abs=1e-7)


def requires_exact_int8() -> object:
    """Skip where this CPU's int8 matmul saturates (x86 without AVX-512 VNNI or AMX): there
    ``quantize=int8`` refuses to run, which test_quantize.py checks under ``ONEDNN_MAX_CPU_ISA=AVX2``."""
    import pytest

    from linzoo.tools.quantize import int8_matmul_error

    error = int8_matmul_error()
    return pytest.mark.skipif(
        error != 0, reason=f"this CPU's int8 matmul saturates (off by {error}): quantize=int8 refuses it here"
    )
