"""Data parallelism: a 2-process CPU DDP run, every rank refusing bad input, the FSDP config."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate

from helpers import ROOT, SHORT, TINY
from linzoo.run.train import train

DDP_CPU = ["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2"]


def env_for(data_root: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "LINZOO_DATA": str(data_root)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_process_cpu_ddp_run_only_rank_zero_writes_and_reports(fake_mnist_root, tmp_path) -> None:
    run = tmp_path / "ddp"
    command = [
        sys.executable,
        "scripts/train.py",
        *TINY["mlp"],
        "data.download=false",
        "data.val_size=200",
        *SHORT,
        "trainer.max_epochs=1",
        *DDP_CPU,
        f"hydra.run.dir={run}",
    ]
    done = subprocess.run(
        command, cwd=ROOT, env=env_for(fake_mnist_root), capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("Run directory:") == 1 and done.stdout.count('"test/acc"') == 1
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "finished" and metrics["global_steps"] == 4
    assert (run / "train_ddp_process_1.log").is_file()  # rank 1 ran, in the same directory ...
    assert sorted(p.name for p in (run / ".hydra").iterdir()) == ["config.yaml", "hydra.yaml", "overrides.yaml"]
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["epoch_000.ckpt", "last.ckpt"]


@pytest.mark.slow
def test_every_torchrun_rank_refuses_the_same_bad_input(fake_mnist_root, tmp_path) -> None:
    """Under torchrun every rank runs the whole script: each must stop on its own, before training
    (the run-directory rule on ranks > 0: tests/test_runs.py::test_ranks_above_zero_...)."""
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={free_port()}"]
    command = [
        *torchrun,
        "scripts/train.py",
        *TINY["mlp"],
        *DDP_CPU,
        "trainer.precision=16-mixed",
        f"hydra.run.dir={tmp_path / 'run'}",
    ]
    done = subprocess.run(
        command, cwd=ROOT, env=env_for(fake_mnist_root), capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode != 0
    assert (done.stdout + done.stderr).count("trainer.precision=16-mixed needs a CUDA GPU") == 2, done.stderr[-3000:]
    assert not (tmp_path / "run" / "config.yaml").exists()


def test_fsdp_config_composes_into_lightnings_fsdp_strategy(compose_train, tmp_path) -> None:
    from lightning.pytorch.strategies import FSDPStrategy

    cfg = compose_train(["trainer=fsdp"], output_dir=tmp_path / "run")
    strategy = instantiate(cfg.trainer.strategy)
    assert isinstance(strategy, FSDPStrategy) and strategy._state_dict_type == "full"
    assert cfg.trainer.devices == 2 and cfg.trainer.use_distributed_sampler


@pytest.mark.skipif(torch.cuda.is_available(), reason="on a GPU, FSDP is allowed")
def test_fsdp_on_cpu_is_a_clear_error_before_anything_is_written(compose_train, tmp_path) -> None:
    with pytest.raises(ValueError, match="trainer=ddp trainer.accelerator=cpu"):
        train(compose_train(["trainer=fsdp"], output_dir=tmp_path / "run"))
    assert not (tmp_path / "run").exists()
