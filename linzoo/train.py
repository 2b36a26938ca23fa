"""Training: config -> instantiate data, task, callbacks, logger, trainer -> fit -> test.

With ``evaluate.py`` and the scripts, the only code that knows Hydra. Every run
directory gets the resolved ``config.yaml``, ``checkpoints/`` and ``metrics.json``.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from linzoo.checkpoints import existing_checkpoint, model_config_for_resume
from linzoo.console import print_config_tree
from linzoo.instantiation import instantiate_all
from linzoo.models.summary import count_parameters
from linzoo.runs import ensure_fresh_run_dir, write_metrics
from linzoo.tasks.base import Task

log = logging.getLogger(__name__)

CPU_ONLY_PRECISIONS_FORBIDDEN = ("16-mixed", "16", "16-true")


def train(cfg: DictConfig) -> dict[str, Any]:
    """Train, validate and test the model of ``cfg``; returns what ``metrics.json`` holds."""
    output_dir = Path(cfg.paths.output_dir)
    ckpt_path = existing_checkpoint(cfg.get("ckpt_path"))
    ensure_fresh_run_dir(output_dir, resuming_from=ckpt_path)
    check_precision(cfg.trainer)
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    if cfg.get("print_config", True):
        print_config_tree(cfg)
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)

    datamodule: L.LightningDataModule = instantiate(cfg.data)
    model_cfg = OmegaConf.to_container(cfg.model, resolve=True)
    if ckpt_path is not None:
        model_cfg = model_config_for_resume(ckpt_path, fallback=model_cfg, compile=cfg.get("compile", False))
    task: Task = instantiate(model_cfg)
    task.build_config = {
        "model": model_cfg,
        "data": OmegaConf.to_container(cfg.data, resolve=True),
        "precision": str(cfg.trainer.get("precision", "32-true")),
    }
    callbacks = instantiate_all(cfg.get("callbacks"))
    loggers = instantiate_all(cfg.get("logger"))
    trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    log_hyperparameters(trainer, cfg, num_parameters=count_parameters(task.net))

    start = time.perf_counter()
    trainer.fit(task, datamodule=datamodule, ckpt_path=ckpt_path)
    fit_seconds = time.perf_counter() - start

    best_checkpoint = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    monitor = monitored_result(trainer, cfg.get("monitor"))
    test_metrics: dict[str, float] = {}
    if cfg.get("test", True):
        results = trainer.test(task, datamodule=datamodule, ckpt_path=best_checkpoint or None)
        test_metrics = {name: float(value) for name, value in results[0].items()} if results else {}

    metrics = {
        **test_metrics,
        "model": type(task.net).__name__,
        "task": type(task).__name__,
        "data_source": getattr(datamodule, "source", "unknown"),
        "num_parameters": count_parameters(task.net),
        "epochs": trainer.current_epoch,
        "global_steps": trainer.global_step,
        "fit_seconds": round(fit_seconds, 3),
        "wall_time_s": round(time.perf_counter() - start, 3),
        "best_checkpoint": best_checkpoint,
        "seed": cfg.get("seed"),
        "precision": str(trainer.precision),
        "compile": bool(cfg.get("compile", False)),
        "monitor": monitor,
    }
    write_metrics(output_dir, metrics)
    print(json.dumps({k: v for k, v in metrics.items() if "/" in k}, indent=2))
    print(f"Run directory: {output_dir}")
    return metrics


def monitored_result(trainer: L.Trainer, monitor_cfg: DictConfig | None) -> dict[str, Any]:
    """``{"metric", "mode", "best"}`` of the monitored validation metric (``cfg.monitor``):
    what a sweeper optimises. ``best`` is the checkpoint callback's best score when it
    watches that metric, else the metric's last value, else None (never validated)."""
    metric = str(monitor_cfg.metric) if monitor_cfg else "val/loss"
    mode = str(monitor_cfg.mode) if monitor_cfg else "min"
    checkpoint = trainer.checkpoint_callback
    if checkpoint is not None and checkpoint.monitor == metric and checkpoint.best_model_score is not None:
        best = checkpoint.best_model_score
    else:
        best = trainer.callback_metrics.get(metric)
    return {"metric": metric, "mode": mode, "best": None if best is None else float(best)}


def log_hyperparameters(trainer: L.Trainer, cfg: DictConfig, *, num_parameters: int) -> None:
    """Give every logger of the run the resolved config, flattened to ``group.key`` names
    (lists as their string), and the net's parameter count."""
    params: dict[str, Any] = {"num_parameters": num_parameters}
    stack = [("", OmegaConf.to_container(cfg, resolve=True))]
    while stack:
        prefix, node = stack.pop()
        for key, value in node.items():
            if isinstance(value, dict) and value:
                stack.append((f"{prefix}{key}.", value))
            else:
                params[f"{prefix}{key}"] = str(value) if isinstance(value, (list, dict)) else value
    for logger in trainer.loggers:
        logger.log_hyperparams(params)


def check_precision(trainer_cfg: DictConfig) -> None:
    """float16 mixed precision needs CUDA; say so before Lightning fails deep inside."""
    precision = str(trainer_cfg.get("precision", "32-true"))
    accelerator = str(trainer_cfg.get("accelerator", "auto"))
    on_cpu = accelerator == "cpu" or (accelerator == "auto" and not torch.cuda.is_available())
    if on_cpu and precision in CPU_ONLY_PRECISIONS_FORBIDDEN:
        raise ValueError(
            f"trainer.precision={precision} needs a CUDA GPU (float16 with gradient scaling). "
            "On CPU use trainer.precision=bf16-mixed or trainer.precision=32-true."
        )
