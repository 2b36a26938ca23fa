"""Run directories: nothing a run made is overwritten, and a refused run touches nothing (.hydra/ included)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from helpers import ROOT
from linzoo.callbacks.checkpoint_io import AtomicCheckpointIO
from linzoo.checkpoint import atomic_save
from linzoo.run.run_dirs import RunDirError, check_run_dir, run_status


def fake_run(run: Path, *, status: str | None) -> Path:
    """A run directory as train.py leaves it (small stand-in files), with ``status`` in metrics.json
    (None: no metrics.json, as after a SIGKILL)."""
    for name, text in {
        ".hydra/config.yaml": "seed: 1\n",
        ".hydra/hydra.yaml": "hydra: {}\n",
        ".hydra/overrides.yaml": "[]\n",
        "train.log": "log\n",
        "config.yaml": "seed: 1\n",
        "csv/metrics.csv": "epoch,step\n0,1\n",
        "checkpoints/last.ckpt": "not really a checkpoint",
    }.items():
        (run / name).parent.mkdir(parents=True, exist_ok=True)
        (run / name).write_text(text)
    if status is not None:
        (run / "metrics.json").write_text(json.dumps({"status": status, "test/acc": 0.9}))
    return run


def snapshot(run: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under ``run``: bytes and modification time in ns."""
    return {
        str(p.relative_to(run)): (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(run.rglob("*")) if p.is_file()
    }


# -------------------------------------------------------------------------- the rules
def test_rules_for_train_eval_and_sample(tmp_path) -> None:
    finished = fake_run(tmp_path / "finished", status="finished")
    interrupted = fake_run(tmp_path / "interrupted", status="interrupted")
    killed = fake_run(tmp_path / "killed", status=None)
    assert check_run_dir(tmp_path / "new", job="train", ckpt_path=None) is False
    for job in ("eval", "sample"):
        with pytest.raises(RunDirError, match="new directory only"):
            check_run_dir(interrupted, job=job, ckpt_path=None)
    with pytest.raises(RunDirError, match="That run is finished"):  # the checkpoint inside does not make it a resume
        check_run_dir(finished, job="train", ckpt_path=finished / "checkpoints" / "last.ckpt")
    for unfinished in (interrupted, killed):
        assert check_run_dir(unfinished, job="train", ckpt_path=unfinished / "checkpoints" / "last.ckpt") is True
        with pytest.raises(RunDirError, match="resume it in place"):
            check_run_dir(unfinished, job="train", ckpt_path=None)
        with pytest.raises(RunDirError, match="resume it in place"):  # a checkpoint of another run
            check_run_dir(unfinished, job="train", ckpt_path=finished / "checkpoints" / "last.ckpt")


def test_metrics_json_without_status_counts_as_finished(tmp_path) -> None:
    (tmp_path / "metrics.json").write_text('{"test/acc": 0.9}')
    assert run_status(tmp_path) == "finished"
    assert run_status(tmp_path / "nothing") is None


def test_inside_a_job_hydra_own_files_do_not_count(tmp_path) -> None:
    (tmp_path / ".hydra").mkdir()
    (tmp_path / "train.log").write_text("")
    assert check_run_dir(tmp_path, job="train", ckpt_path=None) is False
    with pytest.raises(RunDirError):
        check_run_dir(tmp_path, job="train", ckpt_path=None, view="before_hydra")


def test_ranks_above_zero_see_only_another_runs_results(tmp_path) -> None:
    """A rank > 0 starts while rank 0 writes this run's config.yaml and logs: those do not
    count, another run's metrics.json or checkpoints do."""
    (tmp_path / "config.yaml").write_text("seed: 1\n")
    (tmp_path / "csv").mkdir()
    (tmp_path / "checkpoints").mkdir()
    assert check_run_dir(tmp_path, job="train", ckpt_path=None, view="worker") is False
    (tmp_path / "checkpoints" / "epoch_000.ckpt").write_text("x")
    with pytest.raises(RunDirError):
        check_run_dir(tmp_path, job="train", ckpt_path=None, view="worker")


# ------------------------------------------------ refused from the command line: no byte changes
@pytest.mark.slow
def test_refused_command_line_runs_leave_every_byte_of_the_old_run(tmp_path) -> None:
    finished = fake_run(tmp_path / "finished", status="finished")
    before = snapshot(finished)
    last = finished / "checkpoints" / "last.ckpt"
    commands = {
        "train over a finished run": ["scripts/train.py", "optimizer.lr=0.1", f"hydra.run.dir={finished}"],
        "resume a finished run in place": ["scripts/train.py", f"ckpt_path={last}", f"hydra.run.dir={finished}"],
        "eval into the training run": ["scripts/eval.py", f"ckpt_path={last}", f"hydra.run.dir={finished}"],
    }
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    running = {
        name: subprocess.Popen(
            [sys.executable, *argv], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for name, argv in commands.items()
    }
    for name, process in running.items():
        _out, err = process.communicate(timeout=120)
        assert process.returncode == 1, f"{name}: {err[-2000:]}"
        assert f"hydra.run.dir={finished}" in err and "nothing was touched" in err, f"{name}: {err[-2000:]}"
        assert "Traceback" not in err, name
    assert snapshot(finished) == before


# ------------------------------------------------------------------- atomic checkpoint writes
class ExplodingPickle:
    """Pickling this fails after part of the checkpoint has been written."""

    def __reduce__(self):
        raise OSError("disk full (simulated)")


def test_an_interrupted_write_keeps_the_previous_checkpoint_and_leaves_no_temp_file(tmp_path, monkeypatch) -> None:
    elsewhere = tmp_path / "tmpdir"
    elsewhere.mkdir()
    monkeypatch.setenv("TMPDIR", str(elsewhere))  # where Lightning's fsspec path put its temp files
    target = tmp_path / "checkpoints" / "last.ckpt"
    atomic_save({"step": 1, "w": torch.ones(1000)}, target)
    good = target.read_bytes()
    with pytest.raises(OSError, match="disk full"):
        AtomicCheckpointIO().save_checkpoint({"w": torch.zeros(1000), "bad": ExplodingPickle()}, target)
    assert target.read_bytes() == good
    assert torch.load(target, weights_only=True)["step"] == 1
    assert [p.name for p in target.parent.iterdir()] == ["last.ckpt"]
    assert list(elsewhere.iterdir()) == []


SLOW_WRITER = """
import sys, time, torch
from linzoo.checkpoint import atomic_save

class Slow:
    def __reduce__(self):
        print("writing", flush=True)
        time.sleep(60)
        return (int, (0,))

atomic_save({"step": 1}, sys.argv[1])
atomic_save({"big": torch.ones(1_000_000), "slow": Slow()}, sys.argv[1])
"""


@pytest.mark.slow
def test_sigkill_mid_write_leaves_the_previous_checkpoint_and_the_next_save_cleans_up(tmp_path) -> None:
    target = tmp_path / "last.ckpt"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    writer = subprocess.Popen(
        [sys.executable, "-c", SLOW_WRITER, str(target)], env=env, stdout=subprocess.PIPE, text=True
    )
    assert writer.stdout.readline().strip() == "writing"  # the big tensor is being written to the temp file
    writer.send_signal(signal.SIGKILL)
    writer.wait(timeout=30)
    assert torch.load(target, weights_only=True) == {"step": 1}
    stale = [p for p in tmp_path.iterdir() if p != target]
    assert len(stale) == 1 and stale[0].name.startswith(".last.ckpt.") and stale[0].suffix == ".tmp"
    assert sorted(tmp_path.glob("*.ckpt")) == [target]  # what ModelCheckpoint and users glob for
    atomic_save({"step": 2}, target)
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]
    assert torch.load(target, weights_only=True) == {"step": 2}


def test_hydra_guard_refuses_with_a_message_and_leaves_sweeps_to_fresh_directories(tmp_path, monkeypatch) -> None:
    from omegaconf import OmegaConf

    from linzoo.run.run_dirs import RunDirGuard

    for name in ("RANK", "LOCAL_RANK", "SLURM_PROCID"):
        monkeypatch.delenv(name, raising=False)
    finished = fake_run(tmp_path / "finished", status="finished")
    config = OmegaConf.create(
        {
            "task_name": "train",
            "ckpt_path": None,
            "hydra": {"run": {"dir": str(finished)}, "sweep": {"dir": str(finished)}},
        }
    )
    with pytest.raises(SystemExit, match="^Error: hydra.run.dir=.*already holds a run"):
        RunDirGuard().on_run_start(config=config)
    with pytest.raises(SystemExit, match="hydra.sweep.dir=.*is not empty"):
        RunDirGuard().on_multirun_start(config=config)
    config.hydra.run.dir = config.hydra.sweep.dir = str(tmp_path / "new")
    RunDirGuard().on_run_start(config=config)
    RunDirGuard().on_multirun_start(config=config)
    monkeypatch.setenv("LOCAL_RANK", "1")  # a rank > 0: checks, and writes no .hydra/
    RunDirGuard().on_run_start(config=config)
    assert config.hydra.output_subdir is None


def test_before_hydra_a_job_log_alone_is_no_run(tmp_path) -> None:
    """Under torchrun every rank's Hydra opens <job>.log while rank 0 checks the directory."""
    from linzoo.run.run_dirs import run_contents

    (tmp_path / "cli.log").write_text("rank 1 started\n")
    assert run_contents(tmp_path, view="before_hydra") == []
    (tmp_path / ".hydra").mkdir()
    assert run_contents(tmp_path, view="before_hydra") == [".hydra"]
    assert run_contents(tmp_path, view="in_job") == []
