"""Sample digits from a trained LM: python scripts/sample.py ckpt_path=<run>/checkpoints/last.ckpt num=64 [digit=7]"""

import hydra
from omegaconf import DictConfig

from linzoo.sampling import sample_checkpoint


@hydra.main(version_base="1.3", config_path="../configs", config_name="sample")
def main(cfg: DictConfig) -> None:
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


if __name__ == "__main__":
    main()
