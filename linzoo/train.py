"""Training: config -> instantiate data, task, callbacks, logger, trainer -> fit -> test.

With ``evaluate.py`` and the scripts, the only code that knows Hydra. Every run
directory gets the resolved ``config.yaml``, ``checkpoints/`` and ``metrics.json``
(strict JSON, with ``"status"``: finished, interrupted or diverged; see linzoo/runs.py).
Only global rank 0 writes files and prints the summary.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from linzoo.callbacks.divergence import DivergenceError
from linzoo.callbacks.interruption import RunInterrupted
from linzoo.checkpoints import (
    CONFIG_KEY,
    existing_checkpoint,
    read_checkpoint,
    remove_stale_temp_files,
)
from linzoo.console import print_config, warnings_to_log
from linzoo.data import SampleFallbackWarning
from linzoo.instantiation import instantiate_trainer
from linzoo.models.summary import count_parameters
from linzoo.resume import check_resume_config
from linzoo.runs import check_run_dir, is_launched_worker, keep_csv_log, write_metrics
from linzoo.tasks.base import Task
from linzoo.validation import check_train_config, print_config_mode, warn_unused_role_overrides

log = logging.getLogger(__name__)

CUDA_ONLY_PRECISIONS = ("16-mixed", "16", "16-true")


def train(cfg: DictConfig) -> dict[str, Any]:
    """Train, validate and test the model of ``cfg``; returns what ``metrics.json`` holds.

    Raises :class:`DivergenceError` after a non-finite loss and :class:`RunInterrupted`
    (a ``SystemExit``, status 143 or 130) after SIGTERM/SIGINT, in both cases after
    writing ``metrics.json``.
    """
    check_train_config(cfg)  # bad values fail here, before anything is built or written
    output_dir = Path(cfg.paths.output_dir)
    ckpt_path = existing_checkpoint(cfg.get("ckpt_path"))
    worker = is_launched_worker()
    in_place = check_run_dir(output_dir, job="train", ckpt_path=ckpt_path, view="worker" if worker else "in_job")
    check_precision(cfg.trainer)
    check_strategy(cfg.trainer)
    model_cfg = OmegaConf.to_container(cfg.model, resolve=True)
    build_config = {
        "model": model_cfg,
        "data": OmegaConf.to_container(cfg.data, resolve=True),
        "precision": str(cfg.trainer.get("precision", "32-true")),
    }
    if ckpt_path is not None:
        check_resumable(ckpt_path, build_config)
    if not worker:
        print_config(cfg, mode=print_config_mode(cfg.get("print_config", "compact")))
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)
    datamodule: L.LightningDataModule = instantiate(cfg.data)
    if not worker:
        # Missing data stops the run here, before anything is written; the offline-fallback
        # warning also goes to the job log, and the Data: line below says which data this is.
        with warnings_to_log(SampleFallbackWarning, log):
            load_data(datamodule)
        output_dir.mkdir(parents=True, exist_ok=True)
        if in_place:
            keep_csv_log(output_dir)
            remove_stale_temp_files(output_dir / "checkpoints")
        (output_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
        if hasattr(datamodule, "describe"):
            print(f"Data: {datamodule.describe()}")

    task: Task = instantiate(model_cfg)
    warn_unused_role_overrides(model_cfg["net"].get("linear"), task.net)
    task.build_config = build_config
    trainer, interruption = instantiate_trainer(cfg)
    log_hyperparameters(trainer, cfg, num_parameters=count_parameters(task.net))

    start = time.perf_counter()
    status, failure = "finished", None
    try:
        trainer.fit(task, datamodule=datamodule, ckpt_path=ckpt_path)
    except DivergenceError as error:
        status, failure = "diverged", error
    except SystemExit:  # Lightning's SIGTERMException, or sys.exit(1) after a KeyboardInterrupt
        if interruption.signal_name is None:
            raise
        status = "interrupted"
    fit_seconds = time.perf_counter() - start

    best_checkpoint = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    monitor = monitor_summary(trainer, task)  # before the test replaces the trainer's metrics
    test_metrics: dict[str, float] = {}
    tested = None
    if status == "finished" and cfg.get("test", True):
        # test_ckpt=best: the best validation checkpoint; last (or no checkpoint): the weights as training left them.
        tested = best_checkpoint if cfg.get("test_ckpt", "best") == "best" and best_checkpoint else "last"
        results = trainer.test(task, datamodule=datamodule, ckpt_path=None if tested == "last" else tested)
        test_metrics = {name: float(value) for name, value in results[0].items()} if results else {}

    metrics = {
        **test_metrics,
        "status": status,
        "monitor": monitor,
        "model": type(task.net).__name__,
        "task": type(task).__name__,
        "data_source": getattr(datamodule, "source", "unknown"),
        "num_parameters": count_parameters(task.net),
        "epochs": trainer.current_epoch,
        "global_steps": trainer.global_step,
        "fit_seconds": round(fit_seconds, 3),
        "wall_time_s": round(time.perf_counter() - start, 3),
        "best_checkpoint": best_checkpoint,
        "tested_weights": tested,
        "seed": cfg.get("seed"),
        "precision": str(trainer.precision),
        "compile": bool(cfg.get("compile", False)),
        "device": trainer.strategy.root_device.type,
        "torch_threads": torch.get_num_threads(),
        "ended_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    if status == "interrupted":
        metrics["interrupted_by"] = interruption.signal_name
        metrics["resume_from"] = interruption.checkpoint_path
    if failure is not None:
        metrics["error"] = str(failure)
    if trainer.is_global_zero:
        write_metrics(output_dir, metrics)
        if status == "finished":
            print(json.dumps({k: v for k, v in metrics.items() if "/" in k}, indent=2))
        if hasattr(datamodule, "describe"):
            print(f"Data: {datamodule.describe()}")
        print(f"Run directory: {output_dir}")
    if failure is not None:
        raise DivergenceError(str(failure)) from None
    if status == "interrupted":
        if trainer.is_global_zero:
            where = f"; resume with ckpt_path={interruption.checkpoint_path}" if interruption.checkpoint_path else ""
            print(f"Interrupted by {interruption.signal_name}{where} (same hydra.run.dir).", file=sys.stderr)
        raise RunInterrupted(interruption.exit_code)
    return metrics


def load_data(datamodule: L.LightningDataModule) -> None:
    """Download (when allowed) and load the data now, as ``Trainer.fit`` would (a datamodule loads
    once), so that missing data is one clear error before the run writes anything."""
    datamodule.prepare_data()
    datamodule.setup("fit")


def check_resumable(ckpt_path: str, build_config: dict[str, Any]) -> None:
    """Refuse to resume with a config that differs from the checkpoint's (linzoo/resume.py)."""
    saved = read_checkpoint(ckpt_path).get(CONFIG_KEY)
    if saved is None:
        log.warning("%s holds no linzoo config; resuming with the config given now.", ckpt_path)
        return
    check_resume_config(saved, build_config, ckpt_path=ckpt_path)


def monitor_summary(trainer: L.Trainer, task: Task) -> dict[str, Any]:
    """``{"metric": name, "mode": "min"|"max", "best": float | None}`` of the validation
    metric that picks the best checkpoint (the task's main_metric unless the checkpoint
    callback was told another): what a sweeper optimises. best: the checkpoint callback's
    best score, else (no checkpoint callback) the metric's last value, so call it before
    ``trainer.test``; None when never measured or not finite."""
    callback = trainer.checkpoint_callback
    if getattr(callback, "monitor", None) is None:  # no checkpoints, or Lightning's default (last epoch only)
        metric, mode, score = task.main_metric, task.main_metric_mode, None
    else:
        metric, mode, score = callback.monitor, callback.mode, callback.best_model_score
    if score is None:
        score = trainer.callback_metrics.get(metric)
    best = None if score is None else float(score)
    if best is not None and not torch.isfinite(torch.tensor(best)):
        best = None
    return {"metric": metric, "mode": mode, "best": best}


def check_strategy(trainer_cfg: DictConfig) -> None:
    """Lightning's FSDPStrategy runs on CUDA GPUs only; say so before anything is written."""
    strategy = trainer_cfg.get("strategy")
    target = str(strategy.get("_target_", "")) if isinstance(strategy, DictConfig) else str(strategy or "")
    accelerator = str(trainer_cfg.get("accelerator", "auto"))
    on_cpu = accelerator == "cpu" or (accelerator == "auto" and not torch.cuda.is_available())
    if on_cpu and ("FSDP" in target or target.startswith("fsdp")):
        raise ValueError(
            f"trainer=fsdp (strategy {target}) needs CUDA GPUs: Lightning's FSDPStrategy refuses "
            f"accelerator={accelerator} without CUDA. On CPU use trainer=ddp trainer.accelerator=cpu."
        )


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
    if on_cpu and precision in CUDA_ONLY_PRECISIONS:
        raise ValueError(
            f"trainer.precision={precision} needs a CUDA GPU (float16 with gradient scaling). "
            "On CPU use trainer.precision=bf16-mixed or trainer.precision=32-true."
        )
