"""Sweeps: train returns the monitored metric; Hydra's grid multirun and the Optuna search."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from helpers import ROOT, SHORT, TINY, data_overrides
from linzoo.train import train

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
def test_grid_multirun_writes_one_run_directory_per_point(fake_mnist_root, tmp_path) -> None:
    run_train_script(
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
    widths = [
        json.loads((tmp_path / "sweep" / str(job) / "metrics.json").read_text())["num_parameters"] for job in (0, 1)
    ]
    assert widths == [784 * 8 + 8 + 8 * 10 + 10, 784 * 16 + 16 + 16 * 10 + 10]


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

    # The study is kept in ./outputs/optuna.db, where the same command finds it again.
    study = optuna.load_study(study_name="mlp_optuna", storage=f"sqlite:///{tmp_path / 'outputs' / 'optuna.db'}")
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE
    assert sorted(trial.value for trial in study.trials) == pytest.approx(sorted(trial_bests))
