"""Evaluation: rebuild a task from its checkpoint alone, then ``Trainer.test`` it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from linzoo.tasks.base import CONFIG_KEY, Task
from linzoo.train import existing_checkpoint, instantiate_all, write_metrics


def load_task(ckpt_path: str | Path) -> tuple[Task, dict[str, Any]]:
    """Rebuild the task (net included) saved by ``scripts/train.py`` and load its weights.

    Returns the task in eval mode on CPU and the build config saved in the checkpoint
    (``{"model": ..., "data": ..., "precision": ...}``). The net is never compiled here;
    checkpoints of compiled runs load all the same, their keys being plain.
    """
    path = existing_checkpoint(str(ckpt_path))
    # Lightning checkpoints hold more than tensors; load only checkpoints you trust.
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    build_config = checkpoint.get(CONFIG_KEY)
    if build_config is None:
        raise ValueError(
            f"{path} has no '{CONFIG_KEY}' entry, so the model cannot be rebuilt from it; "
            "use a checkpoint written by scripts/train.py."
        )
    task: Task = instantiate({**build_config["model"], "compile": False})
    task.load_state_dict(checkpoint["state_dict"])
    task.build_config = build_config
    return task.eval(), build_config


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Test the checkpoint ``cfg.ckpt_path`` on its own data config (``data.*`` overrides win)."""
    output_dir = Path(cfg.paths.output_dir)
    task, build_config = load_task(cfg.ckpt_path)
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)
    data_cfg = OmegaConf.merge(build_config["data"], cfg.get("data") or {})
    datamodule: L.LightningDataModule = instantiate(data_cfg)
    trainer_cfg = OmegaConf.merge(cfg.trainer, {"precision": cfg.trainer.get("precision") or build_config["precision"]})
    trainer: L.Trainer = instantiate(
        trainer_cfg, callbacks=instantiate_all(cfg.get("callbacks")), logger=instantiate_all(cfg.get("logger")) or False
    )
    results = trainer.test(task, datamodule=datamodule)
    metrics = {
        **{name: float(value) for name, value in results[0].items()},
        "ckpt_path": str(cfg.ckpt_path),
        "data_source": getattr(datamodule, "source", "unknown"),
        "precision": str(trainer.precision),
    }
    output_dir.mkdir(parents=True, exist_ok=True)
    write_metrics(output_dir, metrics)
    print(json.dumps({k: v for k, v in metrics.items() if "/" in k}, indent=2))
    print(f"Run directory: {output_dir}")
    return metrics
