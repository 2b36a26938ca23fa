"""Training: config -> instantiate data, task, callbacks, logger, trainer -> fit -> test.

With ``evaluate.py`` and the scripts, the only code that knows Hydra. Every run
directory gets the resolved ``config.yaml``, ``checkpoints/`` and ``metrics.json``
(strict JSON, with ``"status"``: finished, interrupted or diverged, and ``"weights"``: the
checkpoint the run keeps, at least ``checkpoints/last.ckpt`` unless ``save_weights=false``;
see linzoo/run/run_dirs.py).
Only global rank 0 writes files and prints the summary.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from linzoo.callbacks.divergence import DivergenceError
from linzoo.callbacks.interruption import RunInterrupted, SaveOnInterrupt
from linzoo.checkpoint import existing_checkpoint, remove_stale_temp_files, write_text_atomically
from linzoo.checkpoint.init_from import InitSource
from linzoo.common.nested import flatten
from linzoo.data import SampleFallbackWarning
from linzoo.data.images import UnreadableImageWarning
from linzoo.models.adapters import add_adapters
from linzoo.models.summary import count_parameters
from linzoo.models.transfer import TrainableSummary
from linzoo.run.console import print_config, warnings_to_log
from linzoo.run.data_classes import match_classes_to_data
from linzoo.run.finetune import finetune_record, prepare_net, read_source
from linzoo.run.resume import check_resumable
from linzoo.run.run_dirs import check_run_dir, is_launched_worker, keep_csv_log, write_metrics
from linzoo.run.same_data import check_same_data
from linzoo.run.trainer import instantiate_trainer
from linzoo.run.validation import check_train_config, print_config_mode, warn_unused_role_overrides
from linzoo.tasks.base import Task

log = logging.getLogger(__name__)


def train(cfg: DictConfig) -> dict[str, Any]:
    """Train, validate and test the model of ``cfg``; returns what ``metrics.json`` holds.

    Raises :class:`DivergenceError` after a non-finite loss and :class:`RunInterrupted`
    (a ``SystemExit``, status 143 or 130) after SIGTERM/SIGINT, in both cases after
    writing ``metrics.json``.
    """
    plan = plan_run(cfg)  # every check, before anything is built or written
    if not plan.worker:
        print_config(cfg, mode=print_config_mode(cfg.get("print_config", "compact")))
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)
    datamodule = build_data(cfg, load_now=not plan.worker)  # missing data: refused before anything is written
    plan.same_data = check_resumed_data(cfg, plan, datamodule)  # other data: refused before anything is written
    start_run_directory(cfg, plan, datamodule)
    task = instantiate_task(plan.build_config)
    trainable = prepare_net(task.net, cfg, plan.init_source, report=not plan.worker)  # init_from, finetune.*
    if not plan.worker:
        print(trainable.line())
    trainer, interruption = instantiate_trainer(cfg)
    log_hyperparameters(trainer, cfg, num_parameters=count_parameters(task.net), trainable=trainable)
    outcome = fit(trainer, task, datamodule, ckpt_path=plan.ckpt_path, interruption=interruption)
    outcome.weights = keep_weights(trainer, cfg, plan.output_dir, outcome)
    outcome.test_metrics, outcome.tested = run_test(trainer, task, datamodule, cfg=cfg, outcome=outcome)
    metrics = run_metrics(cfg, trainer, task, datamodule, outcome)
    metrics["trainable_parameters"] = trainable.trainable
    if "init_from" in plan.build_config:
        metrics["init_from"] = plan.build_config["init_from"]  # lineage: the source file, its data and its own source
    if plan.same_data is not None:
        metrics["same_data_as_checkpoint"] = plan.same_data  # False: resumed on other data (allow_other_data)
    if trainer.is_global_zero:
        report(plan.output_dir, metrics, datamodule)
    end_as_the_run_ended(outcome, trainer)
    return metrics


@dataclass
class RunPlan:
    """What a checked training config asks for: where, resumed from what, and what rebuilds it."""

    output_dir: Path
    ckpt_path: str | None
    worker: bool  # a distributed process other than rank 0: writes nothing
    in_place: bool  # resuming into the run directory that holds the checkpoint
    build_config: dict[str, Any]  # saved in every checkpoint: {"model": ..., "data": ..., "precision": ...}
    saved_config: dict[str, Any] | None = None  # the resumed checkpoint's build config (None: a new run)
    same_data: bool | None = None  # resuming on the checkpoint's data (None: not a resume, or nothing to compare)
    init_source: InitSource | None = None  # init_from: the weights a new run starts from


@dataclass
class FitOutcome:
    """How ``trainer.fit`` ended, and what the test gave."""

    status: str  # finished, diverged or interrupted
    failure: DivergenceError | None
    fit_seconds: float
    started: float
    best_checkpoint: str
    monitor: dict[str, Any]
    interruption: SaveOnInterrupt
    test_metrics: dict[str, float] = field(default_factory=dict)
    tested: str | None = None
    weights: str | None = None  # the checkpoint the run keeps (metrics.json's "weights"); None: none


def plan_run(cfg: DictConfig) -> RunPlan:
    """Check the config, the run-directory rules and a resume, and say what the run will do."""
    check_train_config(cfg)
    match_classes_to_data(cfg)  # data=image_folder: model.num_classes from its class folders
    output_dir = Path(cfg.paths.output_dir)
    ckpt_path = existing_checkpoint(cfg.get("ckpt_path"))
    worker = is_launched_worker()
    in_place = check_run_dir(output_dir, job="train", ckpt_path=ckpt_path, view="worker" if worker else "in_job")
    build_config = {
        "model": OmegaConf.to_container(cfg.model, resolve=True),
        "data": OmegaConf.to_container(cfg.data, resolve=True),
        "precision": str(cfg.trainer.get("precision", "32-true")),
    }
    finetune = finetune_record(cfg)
    if finetune is not None:
        build_config["finetune"] = finetune  # resumes re-apply it (and must not change it)
    init_source = read_source(cfg, build_config["model"]["net"])  # a mismatch: refused before anything is written
    if init_source is not None:
        build_config["init_from"] = init_source.lineage()
    if cfg.get("adapter") is not None:  # part of the net's config: every rebuild adds the adapters
        build_config["model"]["net"]["adapter"] = OmegaConf.to_container(cfg.adapter, resolve=True)
    saved_config = check_resumable(ckpt_path, build_config) if ckpt_path is not None else None
    if saved_config is not None and "init_from" in saved_config:
        build_config["init_from"] = saved_config["init_from"]  # a resumed fine-tune keeps its lineage
    return RunPlan(output_dir, ckpt_path, worker, in_place, build_config, saved_config, init_source=init_source)


def start_run_directory(cfg: DictConfig, plan: RunPlan, datamodule: L.LightningDataModule) -> None:
    """Rank 0: the run directory with the resolved ``config.yaml``, and which data the run uses."""
    if plan.worker:
        return
    plan.output_dir.mkdir(parents=True, exist_ok=True)
    if plan.in_place:
        keep_csv_log(plan.output_dir)
        remove_stale_temp_files(plan.output_dir / "checkpoints")
    write_text_atomically(plan.output_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    if hasattr(datamodule, "describe"):
        print(f"Data: {datamodule.describe()}")


def build_data(cfg: DictConfig, *, load_now: bool) -> L.LightningDataModule:
    """The data module. With ``load_now``, it downloads (when allowed) and loads the data now, as
    ``Trainer.fit`` would (a datamodule loads once): missing data is one clear error before the
    run writes anything, and the offline-fallback warning also goes to the job log."""
    datamodule: L.LightningDataModule = instantiate(cfg.data)
    if load_now:
        with warnings_to_log(SampleFallbackWarning, log), warnings_to_log(UnreadableImageWarning, log):
            datamodule.prepare_data()
            datamodule.setup("fit")
    return datamodule


def check_resumed_data(cfg: DictConfig, plan: RunPlan, datamodule: L.LightningDataModule) -> bool | None:
    """A resume continues on the data its checkpoint recorded, unless ``allow_other_data=true``
    (linzoo/run/same_data.py); None when there is nothing to compare."""
    if plan.saved_config is None or plan.worker or not hasattr(datamodule, "identity"):
        return None
    return check_same_data(
        plan.saved_config.get("data_identity"),
        datamodule.identity(),
        ckpt_path=str(plan.ckpt_path),
        job="resume",
        allow_other_data=bool(cfg.get("allow_other_data", False)),
    )


def instantiate_task(build_config: dict[str, Any]) -> Task:
    """The task of the model config, its net from the Linear factory, and the config it saves.

    With an adapter in the net config (``adapter=lora``), the net gets its adapters by role; what
    trains is set afterwards by :func:`linzoo.run.finetune.prepare_net`.
    """
    model_cfg = build_config["model"]
    net_cfg = {key: value for key, value in model_cfg["net"].items() if key != "adapter"}
    net = instantiate(net_cfg)
    adapter = model_cfg["net"].get("adapter")
    if adapter is not None:
        add_adapters(net, adapter)
    task: Task = instantiate({key: value for key, value in model_cfg.items() if key != "net"}, net=net)
    warn_unused_role_overrides(model_cfg["net"].get("linear"), task.net)
    warn_unused_role_overrides(model_cfg.get("optimizer"), task.net, setting="optimizer.roles")
    task.build_config = build_config
    return task


def fit(
    trainer: L.Trainer,
    task: Task,
    datamodule: L.LightningDataModule,
    *,
    ckpt_path: str | None,
    interruption: SaveOnInterrupt,
) -> FitOutcome:
    """``trainer.fit``; a divergence or a SIGTERM/SIGINT ends it with that status instead of raising."""
    started = time.perf_counter()
    status, failure = "finished", None
    try:
        trainer.fit(task, datamodule=datamodule, ckpt_path=ckpt_path)
    except DivergenceError as error:
        status, failure = "diverged", error
    except SystemExit:  # Lightning's SIGTERMException, or sys.exit(1) after a KeyboardInterrupt
        if interruption.signal_name is None:
            raise
        status = "interrupted"
    fit_seconds = time.perf_counter() - started
    best_checkpoint = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    monitor = monitor_summary(trainer, task)  # before the test replaces the trainer's metrics
    return FitOutcome(status, failure, fit_seconds, started, best_checkpoint, monitor, interruption)


def keep_weights(trainer: L.Trainer, cfg: DictConfig, output_dir: Path, outcome: FitOutcome) -> str | None:
    """The checkpoint the run keeps: the best checkpoint, else the ModelCheckpoint's last.ckpt, else
    (no ModelCheckpoint, e.g. ``callbacks=none``, after a finished fit) ``<run>/checkpoints/last.ckpt``
    saved now through the trainer (atomically: AtomicCheckpointIO). An interrupted run keeps the
    checkpoint it saved to resume from; a diverged one nothing new (its weights are not finite).
    None with ``save_weights=false`` (an interruption's checkpoint aside)."""
    if outcome.status == "interrupted":
        return outcome.interruption.checkpoint_path
    if cfg.get("save_weights", True) is False:
        return None
    if outcome.best_checkpoint:
        return outcome.best_checkpoint
    last = getattr(trainer.checkpoint_callback, "last_model_path", "")
    if last and Path(last).is_file():
        return last
    if outcome.status != "finished":
        return None
    path = output_dir / "checkpoints" / "last.ckpt"
    trainer.save_checkpoint(path)  # every rank calls it; rank 0 writes
    return str(path)


def run_test(
    trainer: L.Trainer, task: Task, datamodule: L.LightningDataModule, *, cfg: DictConfig, outcome: FitOutcome
) -> tuple[dict[str, float], str | None]:
    """Test metrics and which weights gave them: test_ckpt=best, the best validation checkpoint;
    last (or no checkpoint), the weights as training left them. Nothing after a failed fit."""
    if outcome.status != "finished" or not cfg.get("test", True):
        return {}, None
    best = outcome.best_checkpoint
    tested = best if cfg.get("test_ckpt", "best") == "best" and best else "last"
    results = trainer.test(task, datamodule=datamodule, ckpt_path=None if tested == "last" else tested)
    return ({name: float(value) for name, value in results[0].items()} if results else {}), tested


def run_metrics(
    cfg: DictConfig, trainer: L.Trainer, task: Task, datamodule: L.LightningDataModule, outcome: FitOutcome
) -> dict[str, Any]:
    """What ``metrics.json`` holds: test metrics, status, monitor, what ran where and how long."""
    metrics = {
        **outcome.test_metrics,
        "status": outcome.status,
        "monitor": outcome.monitor,
        "model": type(task.net).__name__,
        "task": type(task).__name__,
        "data_source": getattr(datamodule, "source", "unknown"),
        "data": datamodule.identity() if getattr(datamodule, "source", None) else None,
        "num_parameters": count_parameters(task.net),
        "epochs": trainer.current_epoch,
        "global_steps": trainer.global_step,
        "fit_seconds": round(outcome.fit_seconds, 3),
        "wall_time_s": round(time.perf_counter() - outcome.started, 3),
        "best_checkpoint": outcome.best_checkpoint,
        "weights": outcome.weights,
        "tested_weights": outcome.tested,
        "seed": cfg.get("seed"),
        "precision": str(trainer.precision),
        "compile": bool(cfg.get("compile", False)),
        "device": trainer.strategy.root_device.type,
        "torch_threads": torch.get_num_threads(),
        "ended_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    if outcome.status == "interrupted":
        metrics["interrupted_by"] = outcome.interruption.signal_name
        metrics["resume_from"] = outcome.interruption.checkpoint_path
    if outcome.failure is not None:
        metrics["error"] = str(outcome.failure)
    return metrics


def report(output_dir: Path, metrics: dict[str, Any], datamodule: L.LightningDataModule) -> None:
    """Rank 0: ``metrics.json``, and the closing summary: test metrics, data, run directory."""
    write_metrics(output_dir, metrics)
    if metrics["status"] == "finished":
        print(json.dumps({k: v for k, v in metrics.items() if "/" in k}, indent=2))
        if "trainable_parameters" in metrics:
            print(f"Parameters: {metrics['trainable_parameters']:,} trainable / {metrics['num_parameters']:,} total")
        if metrics.get("weights"):
            print(f"Weights: {metrics['weights']}")
        else:
            print("Weights: no weights were saved (save_weights=false).")
    if hasattr(datamodule, "describe"):
        print(f"Data: {datamodule.describe()}")
    print(f"Run directory: {output_dir}")


def end_as_the_run_ended(outcome: FitOutcome, trainer: L.Trainer) -> None:
    """Raise for a diverged or interrupted run (after metrics.json is written); return otherwise."""
    if outcome.failure is not None:
        raise DivergenceError(str(outcome.failure)) from None
    if outcome.status == "interrupted":
        interruption = outcome.interruption
        if trainer.is_global_zero:
            where = f"; resume with ckpt_path={interruption.checkpoint_path}" if interruption.checkpoint_path else ""
            print(f"Interrupted by {interruption.signal_name}{where} (same hydra.run.dir).", file=sys.stderr)
        raise RunInterrupted(interruption.exit_code)


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


def log_hyperparameters(
    trainer: L.Trainer, cfg: DictConfig, *, num_parameters: int, trainable: TrainableSummary | None = None
) -> None:
    """Give every logger of the run the resolved config, flattened to ``group.key`` names
    (lists as their string), and the net's parameter counts (all, and those that train)."""
    params: dict[str, Any] = {"num_parameters": num_parameters}
    if trainable is not None:
        params["trainable_parameters"] = trainable.trainable
    for key, value in flatten(OmegaConf.to_container(cfg, resolve=True)).items():
        params[key] = str(value) if isinstance(value, (list, dict)) else value
    for logger in trainer.loggers:
        logger.log_hyperparams(params)
