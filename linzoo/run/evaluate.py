"""Evaluation: rebuild a task from its checkpoint alone, then ``Trainer.test`` it.

``backend=onnxruntime`` tests the net exported to ONNX and run by ONNX Runtime (CPU);
``quantize=int8`` tests ONNX Runtime's int8 (torchao's with ``backend=torch``).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from linzoo.checkpoint.nets import from_file
from linzoo.data.rebuild import build_datamodule
from linzoo.run.run_dirs import check_run_dir, is_launched_worker, write_metrics
from linzoo.run.same_data import check_same_data
from linzoo.run.trainer import instantiate_all
from linzoo.run.validation import check_eval_config, eval_data_config, load_eval_data
from linzoo.tasks.loading import load_task
from linzoo.tools.onnx_runtime import choose_backend, onnx_net
from linzoo.tools.quantize import quantize_int8, quantize_options


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Test the checkpoint ``cfg.ckpt_path`` on its own data config (``data.*`` overrides win).

    Writes into a fresh run directory only (never into the training run's: linzoo/run/run_dirs.py).
    """
    check_eval_config(cfg)
    quantize, roles = quantize_options(cfg.get("quantize"))
    backend = choose_backend(cfg.get("backend"), quantize=quantize)
    output_dir = Path(cfg.paths.output_dir)
    check_run_dir(output_dir, job="eval", ckpt_path=None, view="worker" if is_launched_worker() else "in_job")
    task, build_config = load_task(cfg.ckpt_path)
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)
    trained_source = build_config.get("data_source")
    data_cfg = eval_data_config(build_config["data"], cfg.get("data"), trained_source=trained_source)
    with from_file(cfg.ckpt_path):  # the data config comes from the file: rebuilt from linzoo's data modules
        datamodule: L.LightningDataModule = build_datamodule(OmegaConf.to_container(data_cfg, resolve=True))
    load_eval_data(datamodule, ckpt_path=str(cfg.ckpt_path), trained_source=trained_source)
    same_data = check_same_data(
        build_config.get("data_identity"),
        datamodule.identity(),
        ckpt_path=str(cfg.ckpt_path),
        job="eval",
        allow_other_data=bool(cfg.get("allow_other_data", False)),
    )
    trainer_cfg = OmegaConf.merge(cfg.trainer, {"precision": cfg.trainer.get("precision") or build_config["precision"]})
    if quantize or backend == "onnxruntime":  # int8 Linears and ONNX Runtime run on CPU, float32 around them
        trainer_cfg = OmegaConf.merge(trainer_cfg, {"accelerator": "cpu", "devices": 1, "precision": "32-true"})
    if quantize and backend == "torch":
        quantize_int8(task.net, roles=roles)
    trainer: L.Trainer = instantiate(
        trainer_cfg, callbacks=instantiate_all(cfg.get("callbacks")), logger=instantiate_all(cfg.get("logger")) or False
    )
    with tempfile.TemporaryDirectory(prefix="linzoo-onnx-") as directory:
        if backend == "onnxruntime":
            task.net = onnx_net(task.net, directory=directory, quantize=quantize, roles=roles)
        results = trainer.test(task, datamodule=datamodule)
    metrics = {
        **{name: float(value) for name, value in results[0].items()},
        "status": "finished",
        "ckpt_path": str(cfg.ckpt_path),
        "data_source": getattr(datamodule, "source", "unknown"),
        "data": datamodule.identity(),  # what was evaluated
        "same_data_as_checkpoint": same_data,  # False: other data on purpose (allow_other_data); None: not recorded
        "precision": str(trainer.precision),
        "quantize": quantize,
        "quantize_roles": roles,
        "backend": backend,
    }
    if trainer.is_global_zero:
        output_dir.mkdir(parents=True, exist_ok=True)
        write_metrics(output_dir, metrics)
        print(json.dumps({k: v for k, v in metrics.items() if "/" in k}, indent=2))
        print(f"Run directory: {output_dir}")
    return metrics
