"""Train a linzoo model: python scripts/train.py model=transformer [key=value ...]"""

import hydra
from omegaconf import DictConfig

from linzoo.config import register_configs
from linzoo.train import train

register_configs()


@hydra.main(version_base="1.3", config_path="../configs", config_name="train")
def main(cfg: DictConfig) -> None:
    train(cfg)


if __name__ == "__main__":
    main()
