"""Command-line entry points (Hydra-aware): ``scripts/*.py`` and the console scripts call these.

    python scripts/train.py model=transformer      train + validate + test
    python scripts/eval.py ckpt_path=...           test a checkpoint
    python scripts/sample.py ckpt_path=... num=64  draw digits from a pixel LM
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

from linzoo.config import register_configs


def config_path() -> str:
    """Where the configs are: the clone's ``configs/`` when this linzoo is a clone (or
    an editable install of one), else those the wheel carries, ``pkg://linzoo.configs``."""
    clone = Path(__file__).resolve().parents[1]
    if (clone / "pyproject.toml").is_file() and (clone / "configs" / "train.yaml").is_file():
        return str(clone / "configs")
    return "pkg://linzoo.configs"


CONFIG_PATH = config_path()

register_configs()


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="train")
def train(cfg: DictConfig) -> float | None:
    """Returns the best value of the monitored metric (``monitor.metric``): what sweepers optimise."""
    from linzoo.train import train as run_training

    return run_training(cfg)["monitor"]["best"]


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="eval")
def evaluate(cfg: DictConfig) -> Any:
    from linzoo.evaluate import evaluate as run_evaluation

    return run_evaluation(cfg)


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="sample")
def sample(cfg: DictConfig) -> None:
    from linzoo.sampling import sample_checkpoint

    path = sample_checkpoint(
        ckpt_path=cfg.ckpt_path,
        num=cfg.num,
        digit=cfg.digit,
        temperature=cfg.temperature,
        top_k=cfg.top_k,
        seed=cfg.seed,
        use_cache=cfg.use_cache,
        device=cfg.device,
        out=cfg.out,
        run_dir=cfg.paths.output_dir,
    )
    print(f"Samples: {path}")
