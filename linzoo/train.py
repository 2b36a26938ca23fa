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

from linzoo.models.summary import count_parameters
from linzoo.tasks.base import CONFIG_KEY, Task

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

    start = time.perf_counter()
    trainer.fit(task, datamodule=datamodule, ckpt_path=ckpt_path)
    fit_seconds = time.perf_counter() - start

    best_checkpoint = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
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
    }
    write_metrics(output_dir, metrics)
    print(json.dumps({k: v for k, v in metrics.items() if "/" in k}, indent=2))
    print(f"Run directory: {output_dir}")
    return metrics


def existing_checkpoint(ckpt_path: str | None) -> str | None:
    """``ckpt_path`` if it names a file; a clear error if it names nothing."""
    if ckpt_path is None:
        return None
    path = Path(ckpt_path)
    if not path.is_file():
        raise FileNotFoundError(
            f"No checkpoint at ckpt_path={ckpt_path}. Point it at a file such as "
            "<run dir>/checkpoints/last.ckpt (runs live under outputs/train/ by default)."
        )
    return str(path)


def ensure_fresh_run_dir(output_dir: Path, *, resuming_from: str | None) -> None:
    """Refuse to write a new run over a finished one: nothing a user made is overwritten."""
    previous = [output_dir / "metrics.json", *sorted((output_dir / "checkpoints").glob("*.ckpt"))]
    previous = [path for path in previous if path.exists()]
    if not previous:
        return
    if resuming_from is not None and Path(resuming_from).resolve().is_relative_to(output_dir.resolve()):
        keep_csv_log(output_dir)
        return
    raise FileExistsError(
        f"The run directory {output_dir} already holds a run ({', '.join(p.name for p in previous)}); "
        "nothing was touched. Choose a new hydra.run.dir, or continue that run with "
        f"ckpt_path={output_dir / 'checkpoints' / 'last.ckpt'}."
    )


def keep_csv_log(output_dir: Path) -> None:
    """Resuming into the same run directory: Lightning's CSVLogger would replace
    ``csv/metrics.csv``, so the earlier log is moved to ``csv/metrics-before-resume-N.csv``."""
    log_file = output_dir / "csv" / "metrics.csv"
    if not log_file.exists():
        return
    index = 1
    while (backup := log_file.with_name(f"metrics-before-resume-{index}.csv")).exists():
        index += 1
    log_file.rename(backup)
    log.info("Kept the earlier CSV log of %s as %s.", output_dir, backup.name)


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


def model_config_for_resume(ckpt_path: str, *, fallback: dict[str, Any], compile: bool) -> dict[str, Any]:
    """The model config saved in the checkpoint, so a resumed run rebuilds the same net."""
    checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    saved = checkpoint.get(CONFIG_KEY)
    if saved is None:
        log.warning("%s holds no linzoo config; resuming with the model config given now.", ckpt_path)
        return fallback
    log.info("Resuming: the model is rebuilt from the config saved in %s.", ckpt_path)
    return {**saved["model"], "compile": compile}


def instantiate_all(group: DictConfig | None) -> list[Any]:
    """Instantiate every entry of a callbacks/logger group that has a ``_target_``."""
    if not group:
        return []
    return [instantiate(entry) for entry in group.values() if entry and "_target_" in entry]


def write_metrics(output_dir: Path, metrics: dict[str, Any]) -> Path:
    path = output_dir / "metrics.json"
    path.write_text(json.dumps(metrics, indent=2) + "\n")
    return path
