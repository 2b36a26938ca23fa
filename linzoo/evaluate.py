"""Evaluation: rebuild a task from its checkpoint alone, then ``Trainer.test`` it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from linzoo.checkpoints import load_task
from linzoo.instantiation import instantiate_all
from linzoo.quantize import check_quantize, quantize_int8
from linzoo.runs import write_metrics


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Test the checkpoint ``cfg.ckpt_path`` on its own data config (``data.*`` overrides win)."""
    output_dir = Path(cfg.paths.output_dir)
    task, build_config = load_task(cfg.ckpt_path)
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)
    data_cfg = OmegaConf.merge(build_config["data"], cfg.get("data") or {})
    datamodule: L.LightningDataModule = instantiate(data_cfg)
    trainer_cfg = OmegaConf.merge(cfg.trainer, {"precision": cfg.trainer.get("precision") or build_config["precision"]})
    quantize = check_quantize(cfg.get("quantize"))
    if quantize:  # int8 Linears run on CPU, in float32 around them
        quantize_int8(task.net)
        trainer_cfg = OmegaConf.merge(trainer_cfg, {"accelerator": "cpu", "devices": 1, "precision": "32-true"})
    trainer: L.Trainer = instantiate(
        trainer_cfg, callbacks=instantiate_all(cfg.get("callbacks")), logger=instantiate_all(cfg.get("logger")) or False
    )
    results = trainer.test(task, datamodule=datamodule)
    metrics = {
        **{name: float(value) for name, value in results[0].items()},
        "ckpt_path": str(cfg.ckpt_path),
        "data_source": getattr(datamodule, "source", "unknown"),
        "precision": str(trainer.precision),
        "quantize": quantize,
    }
    output_dir.mkdir(parents=True, exist_ok=True)
    write_metrics(output_dir, metrics)
    print(json.dumps({k: v for k, v in metrics.items() if "/" in k}, indent=2))
    print(f"Run directory: {output_dir}")
    return metrics
