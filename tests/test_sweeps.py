"""Sweeps: train returns the monitored metric; Hydra's grid multirun and the Optuna search."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from helpers import ROOT, SHORT, TINY, data_overrides
from linzoo.run.run_dirs import write_metrics
from linzoo.run.sweeps import SweepSummary
from linzoo.run.train import train

QUICK = [
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=2",
    "trainer.limit_val_batches=1",
    "trainer.limit_test_batches=1",
    "data.batch_size=32",
    "callbacks.progress_bar.refresh_rate=0",
    "print_config=false",
]


def run_train_script(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "train.py"), *args],
        cwd=cwd,
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_train_returns_the_best_value_of_the_monitored_metric(compose_train, fake_mnist_root, tmp_path) -> None:
    cfg = compose_train(["model=mlp", *TINY["mlp"], *data_overrides(fake_mnist_root), *SHORT, "print_config=false"])
    metrics = train(cfg)
    monitor = metrics["monitor"]
    assert monitor["metric"] == "val/acc" and monitor["mode"] == "max"
    with open(tmp_path / "run" / "csv" / "metrics.csv") as log:
        val_acc = [float(row["val/acc"]) for row in csv.DictReader(log) if row.get("val/acc")]
    assert len(val_acc) == 2 and monitor["best"] == pytest.approx(max(val_acc))
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["monitor"] == monitor


@pytest.mark.slow
def test_grid_multirun_writes_one_run_directory_per_point_and_a_summary(fake_mnist_root, tmp_path) -> None:
    completed = run_train_script(
        [
            "-m",
            "model=mlp",
            "model.net.hidden_dims=[8],[16]",
            *data_overrides(fake_mnist_root),
            *QUICK,
            f"hydra.sweep.dir={tmp_path / 'sweep'}",
        ],
        cwd=tmp_path,
    )
    metrics = [json.loads((tmp_path / "sweep" / str(job) / "metrics.json").read_text()) for job in (0, 1)]
    assert [m["num_parameters"] for m in metrics] == [784 * 8 + 8 + 8 * 10 + 10, 784 * 16 + 16 + 16 * 10 + 10]

    # The sweep ends with a summary: each job's overrides and monitored metric, best first.
    summary = yaml.safe_load((tmp_path / "sweep" / "sweep_results.yaml").read_text())
    bests = {str(job): m["monitor"]["best"] for job, m in enumerate(metrics)}
    ranked = sorted(bests, key=lambda job: -bests[job])  # val/acc: higher is better; ties keep the job order
    assert [job["dir"] for job in summary["jobs"]] == ranked and summary["best"] == summary["jobs"][0]
    assert [job["best"] for job in summary["jobs"]] == pytest.approx([bests[job] for job in ranked])
    widths = {"0": ["model.net.hidden_dims=[8]"], "1": ["model.net.hidden_dims=[16]"]}
    assert all(job["overrides"] == widths[job["dir"]] for job in summary["jobs"])
    assert {job["metric"] for job in summary["jobs"]} == {"val/acc"} and "model=mlp" in summary["common_overrides"]
    printed = completed.stdout[completed.stdout.index("Sweep results, best first") :].splitlines()
    assert printed[1].split()[:2] == [ranked[0], f"val/acc={bests[ranked[0]]:.4g}"] and "hidden_dims" in printed[1]


@pytest.mark.slow
def test_optuna_search_finishes_reports_the_best_value_and_stores_its_study(fake_mnist_root, tmp_path) -> None:
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    optuna = pytest.importorskip("optuna")
    run_train_script(
        [
            "hparams_search=mlp_optuna",
            "hydra.sweeper.n_trials=3",
            *data_overrides(fake_mnist_root),
            *QUICK,
            f"hydra.sweep.dir={tmp_path / 'sweep'}",
        ],
        cwd=tmp_path,
    )  # 2 batches: width hardly matters

    # Each trial is an ordinary run; the sweep directory names the best params and value.
    trial_bests = [
        json.loads((tmp_path / "sweep" / str(trial) / "metrics.json").read_text())["monitor"]["best"]
        for trial in range(3)
    ]
    results = OmegaConf.load(tmp_path / "sweep" / "optimization_results.yaml")
    assert results.best_value == pytest.approx(max(trial_bests))  # the MLP's val/acc: maximize
    assert set(results.best_params) == {"optimizer.lr", "model.net.hidden_dims", "model.net.dropout", "linear.init"}
    summary = yaml.safe_load((tmp_path / "sweep" / "sweep_results.yaml").read_text())  # every trial, best first
    assert len(summary["jobs"]) == 3 and summary["best"]["best"] == pytest.approx(results.best_value)

    # The study is kept in ./outputs/optuna.db, where the same command finds it again.
    study = optuna.load_study(study_name="mlp_optuna", storage=f"sqlite:///{tmp_path / 'outputs' / 'optuna.db'}")
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE
    assert sorted(trial.value for trial in study.trials) == pytest.approx(sorted(trial_bests))


def fake_job(sweep: Path, name: str, overrides: list[str], monitor: dict | None, *, status: str = "finished") -> None:
    """A job directory as a sweep leaves it: .hydra/overrides.yaml and (unless ``monitor`` is None) metrics.json."""
    (sweep / name / ".hydra").mkdir(parents=True)
    (sweep / name / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    if monitor is not None:
        write_metrics(sweep / name, {"status": status, "monitor": monitor})


def test_sweep_summary_ranks_each_metric_in_its_direction_and_lists_jobs_without_a_value_last(
    tmp_path, capsys, monkeypatch
) -> None:
    for name in ("RANK", "LOCAL_RANK", "SLURM_PROCID"):
        monkeypatch.delenv(name, raising=False)
    sweep = tmp_path / "sweep"
    acc, loss = {"metric": "val/acc", "mode": "max"}, {"metric": "val/loss", "mode": "min"}
    fake_job(sweep, "0", ["model=mlp", "optimizer.lr=0.001"], {**acc, "best": 0.5})
    fake_job(sweep, "1", ["model=mlp", "optimizer.lr=0.01"], {**acc, "best": 0.9})
    fake_job(sweep, "2", ["model=mlp", "optimizer.lr=0.1"], None)  # killed: no metrics.json
    fake_job(sweep, "3", ["model=mlp", "optimizer.lr=1.0"], {**acc, "best": None}, status="diverged")
    fake_job(sweep, "10", ["model=autoencoder", "optimizer.lr=0.001"], {**loss, "best": 0.3})
    fake_job(sweep, "11", ["model=autoencoder", "optimizer.lr=0.01"], {**loss, "best": 0.2})
    fake_job(sweep, "12", ["model=mlp", "optimizer.lr=0.003"], {**acc, "best": 0.7})

    SweepSummary().on_multirun_end(config=OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep)}}}))

    summary = yaml.safe_load((sweep / "sweep_results.yaml").read_text())
    assert [job["dir"] for job in summary["jobs"]] == ["1", "12", "0", "11", "10", "2", "3"]
    assert summary["best"]["dir"] == "1" and summary["best"]["best"] == 0.9
    assert summary["common_overrides"] == [] and summary["jobs"][0]["overrides"] == ["model=mlp", "optimizer.lr=0.01"]
    assert [job["status"] for job in summary["jobs"][-2:]] == ["no metrics.json", "diverged"]
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"Sweep results, best first ({sweep / 'sweep_results.yaml'}):"
    assert lines[1].split() == ["1", "val/acc=0.9", "(max)", "model=mlp", "optimizer.lr=0.01"]
    assert lines[4].split()[:3] == ["11", "val/loss=0.2", "(min)"]
    assert lines[6].split()[:3] == ["2", "metric", "not"] and "(no metrics.json)" in lines[6]


def test_sweep_summary_of_one_job_names_all_its_overrides(tmp_path, capsys) -> None:
    fake_job(tmp_path, "0", ["model=mlp", "seed=1"], {"metric": "val/acc", "mode": "max", "best": 0.25})
    SweepSummary().on_multirun_end(config=OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}}))
    summary = yaml.safe_load((tmp_path / "sweep_results.yaml").read_text())
    assert summary["jobs"][0]["overrides"] == ["model=mlp", "seed=1"] and summary["best"]["best"] == 0.25
    assert "val/acc=0.25 (max)  model=mlp seed=1" in capsys.readouterr().out
