"""Run directories: nothing a run made is overwritten, and a refused run touches nothing (.hydra/ included)."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
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
    """train over a finished run, resuming a finished run in place and eval into a training run each exit 2 saying nothing was touched, and every byte of the old run is as it was."""
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
        assert process.returncode == 2, f"{name}: {err[-2000:]}"
        assert f"hydra.run.dir={finished}" in err and "nothing was touched" in err, f"{name}: {err[-2000:]}"
        assert "Traceback" not in err, name
    assert snapshot(finished) == before


# ------------------------------------------- a refused or failed command leaves no directory behind
def tree(root: Path) -> dict[str, tuple[bytes, int] | None]:
    """Every file (bytes, mtime in ns) and folder (None) under ``root``."""
    return {
        str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime_ns) if p.is_file() else None
        for p in sorted(root.rglob("*"))
    }


@pytest.mark.slow
def test_refused_and_failed_commands_leave_the_outputs_root_as_it_was(tmp_path, compose_train, fake_mnist_root) -> None:
    """A bad value, a refused resume, missing data, a missing checkpoint: exit 2, and under the
    outputs root (paths.log_dir) no new directory, no .hydra/, no log; an old run is untouched."""
    from omegaconf import OmegaConf

    from helpers import TINY, data_overrides
    from linzoo.checkpoint import CONFIG_KEY

    cfg = compose_train(["model=mlp", *TINY["mlp"], *data_overrides(fake_mnist_root)])
    mlp = tmp_path / "mlp.ckpt"  # all a resume check reads: the linzoo config of an MLP run
    torch.save({CONFIG_KEY: {key: OmegaConf.to_container(cfg[key], resolve=True) for key in ("model", "data")}}, mlp)
    empty = tmp_path / "empty"
    empty.mkdir()
    missing = tmp_path / "missing.ckpt"
    digits = tmp_path / "digits.npy"  # valid inputs, so that predict reaches the missing checkpoint
    np.save(digits, np.zeros((2, 28, 28), dtype=np.uint8))
    commands = {
        "bad value": (["scripts/train.py", "optimizer.lr=-1"], "optimizer.lr=-1: expected a learning rate > 0"),
        "refused resume": (
            ["scripts/train.py", "model=cnn", *TINY["cnn"], f"ckpt_path={mlp}"],
            "was trained with another config",
        ),
        "missing data": (
            ["scripts/train.py", "data.source=full", f"data.root={empty}", "data.download=false"],
            "MNIST not found in",
        ),
        "failed export": (["scripts/export.py", f"ckpt_path={missing}"], "Nothing at"),
        "eval without checkpoint": (["scripts/eval.py", f"ckpt_path={missing}"], "No checkpoint at"),
        "bad sample option": (
            ["scripts/sample.py", f"ckpt_path={missing}", "temperature=0"],
            "temperature=0: expected a number > 0",
        ),
        "predict without checkpoint": (
            ["scripts/predict.py", f"ckpt_path={missing}", f"inputs={digits}"],
            "Nothing at",
        ),
    }
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    env.pop("LINZOO_DATA", None)
    running, before = {}, {}
    for index, (name, (argv, _expected)) in enumerate(commands.items()):
        outputs = tmp_path / f"outputs{index}"  # an outputs root each: they run at once
        fake_run(outputs / "train" / "old", status="finished")
        before[name] = (outputs, tree(outputs))
        running[name] = subprocess.Popen(
            [sys.executable, *argv, f"paths.log_dir={outputs}"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    for name, process in running.items():
        _out, err = process.communicate(timeout=300)
        assert process.returncode == 2, f"{name}: {err[-2000:]}"
        assert commands[name][1] in err.strip().splitlines()[-1], f"{name}: {err[-2000:]}"
        outputs, files = before[name]
        assert tree(outputs) == files, f"{name} left {sorted(set(tree(outputs)) - set(files))}"


def note_run_dir(run_dir: Path) -> None:
    """What RunDirGuard does before Hydra creates ``run_dir``: check it and note what is new."""
    from omegaconf import OmegaConf

    from linzoo.run.run_dirs import RunDirGuard

    RunDirGuard().on_run_start(config=OmegaConf.create({"task_name": "train", "hydra": {"run": {"dir": str(run_dir)}}}))


def write_hydra_files(run_dir: Path) -> logging.FileHandler:
    """What Hydra writes before the command runs: .hydra/ and the job log (open, as Hydra leaves it)."""
    (run_dir / ".hydra").mkdir(parents=True)
    for name in ("config.yaml", "hydra.yaml", "overrides.yaml"):
        (run_dir / ".hydra" / name).write_text("{}\n")
    handler = logging.FileHandler(run_dir / "cli.log")
    logging.getLogger().addHandler(handler)
    logging.getLogger().warning("started")
    return handler


def test_a_refused_command_removes_only_what_it_created(tmp_path, monkeypatch) -> None:
    """A command refused after Hydra made its run directory removes that directory, its .hydra/ and log, and the parents it created, and nothing that was there before."""
    from linzoo.run.run_dirs import remove_refused_run

    for name in ("RANK", "LOCAL_RANK", "SLURM_PROCID"):
        monkeypatch.delenv(name, raising=False)
    outputs = tmp_path / "outputs"
    (outputs / "train" / "old").mkdir(parents=True)
    (outputs / "train" / "old" / "metrics.json").write_text("{}")
    before = tree(outputs)
    run = outputs / "train" / "day" / "run"
    note_run_dir(run)
    handler = write_hydra_files(run)
    assert remove_refused_run() == [run / ".hydra", run, run.parent]  # outputs/train/ was there before
    assert handler not in logging.getLogger().handlers
    assert tree(outputs) == before
    assert remove_refused_run() == []  # once only


def test_a_refused_command_keeps_a_directory_holding_more_than_hydras_files(tmp_path, monkeypatch) -> None:
    """A refused command keeps a run directory that holds more than Hydra's files, or that existed before the command (a named hydra.run.dir)."""
    from linzoo.run.run_dirs import release_run_claims, remove_refused_run

    for name in ("RANK", "LOCAL_RANK", "SLURM_PROCID"):
        monkeypatch.delenv(name, raising=False)
    run = tmp_path / "new" / "run"
    note_run_dir(run)
    handler = write_hydra_files(run)
    (run / "config.yaml").write_text("seed: 1\n")  # the command had started writing its run
    try:
        before = tree(tmp_path)
        assert remove_refused_run() == []
        assert tree(tmp_path) == before
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()
        release_run_claims()  # what linzoo/run/cli.py does when the command ends
    existing = tmp_path / "existing"  # named with hydra.run.dir, there before the command
    existing.mkdir()
    note_run_dir(existing)
    handler = write_hydra_files(existing)
    try:
        assert remove_refused_run() == []
        release_run_claims()
        assert sorted(path.name for path in existing.iterdir()) == [".hydra", "cli.log"]
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()


def test_train_loads_its_data_before_writing_anything(compose_train, tmp_path, monkeypatch) -> None:
    from linzoo.run.train import train

    monkeypatch.delenv("LINZOO_DATA", raising=False)
    empty = tmp_path / "empty"
    empty.mkdir()
    run = tmp_path / "run"
    cfg = compose_train(["data.source=full", f"data.root={empty}", "data.download=false"], output_dir=run)
    with pytest.raises(FileNotFoundError, match="MNIST not found in"):
        train(cfg)
    assert not run.exists()


# ------------------------------------------------------------------- atomic checkpoint writes
class ExplodingPickle:
    """Pickling this fails after part of the checkpoint has been written."""

    def __reduce__(self):
        raise OSError("disk full (simulated)")


def test_an_interrupted_write_keeps_the_previous_checkpoint_and_leaves_no_temp_file(tmp_path, monkeypatch) -> None:
    """A checkpoint save that fails mid-write leaves the previous last.ckpt whole and loadable, and no temp file beside it or in TMPDIR."""
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
    """A writer killed with SIGKILL mid-save leaves the previous checkpoint whole and only a hidden .tmp file (never globbed as *.ckpt), which the next save removes."""
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


def test_hydra_guard_refuses_with_a_message_and_leaves_sweeps_to_fresh_directories(
    tmp_path, monkeypatch, capsys
) -> None:
    from omegaconf import OmegaConf

    from linzoo.run.run_dirs import CLAIM_FILE, RunDirGuard, release_run_claims

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
    before = snapshot(finished)
    with pytest.raises(SystemExit) as refused:  # a user error: one line, exit status 2
        RunDirGuard().on_run_start(config=config)
    assert refused.value.code == 2
    assert capsys.readouterr().err.startswith(f"Error: hydra.run.dir={finished} already holds a run")
    with pytest.raises(SystemExit) as refused:
        RunDirGuard().on_multirun_start(config=config)
    assert refused.value.code == 2
    assert capsys.readouterr().err.startswith(f"Error: hydra.sweep.dir={finished} is not empty")
    assert snapshot(finished) == before  # the claim taken for the check is gone again
    config.hydra.run.dir = config.hydra.sweep.dir = str(tmp_path / "new")
    RunDirGuard().on_run_start(config=config)
    RunDirGuard().on_multirun_start(config=config)
    assert (tmp_path / "new" / CLAIM_FILE).is_file()
    release_run_claims()
    assert not (tmp_path / "new" / CLAIM_FILE).exists()
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
