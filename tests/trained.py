"""Short training runs on the fake MNIST files, for the tests of what comes after training
(load, predict, export, quantize): ``train_run(run_dir, data_root, "mlp")``."""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_dir

from helpers import ROOT, SHORT, data_overrides, tiny
from linzoo.run.schemas import register_configs
from linzoo.run.train import train


def train_run(run_dir: Path, data_root: Path, model: str, *overrides: str) -> Path:
    """Train a tiny ``model`` briefly (``SHORT``, then ``overrides``) into ``run_dir``; returns ``run_dir``."""
    register_configs()
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[*tiny(model), *data_overrides(data_root), *SHORT, *overrides, f"paths.output_dir={run_dir}"],
        )
    train(cfg)
    return run_dir
