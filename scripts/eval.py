"""Test a checkpoint: python scripts/eval.py ckpt_path=<run>/checkpoints/last.ckpt"""

import hydra
from omegaconf import DictConfig

from linzoo.evaluate import evaluate


@hydra.main(version_base="1.3", config_path="../configs", config_name="eval")
def main(cfg: DictConfig) -> None:
    evaluate(cfg)


if __name__ == "__main__":
    main()
