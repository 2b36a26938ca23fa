"""Experiment trackers: a real local MLflow store (the default sqlite:///mlflow.db), read back
with the MLflow client and no file-store opt-out; the hyperparameters and the parameter count
reach every logger."""

from __future__ import annotations

import os

import pytest
import yaml

from helpers import SHORT, TINY, data_overrides
from linzoo.run.train import train


def test_csv_mlflow_and_tensorboard_get_the_params_metrics_and_pictures(
    compose_train, fake_mnist_root, tmp_path, monkeypatch
) -> None:
    mlflow = pytest.importorskip("mlflow")
    pytest.importorskip("tensorboard")
    monkeypatch.chdir(tmp_path)  # the default store is ./mlflow.db
    # MLflow 3 reads the old ./mlruns file store only with this opt-out; the default store needs none.
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    cfg = compose_train(
        [
            "model=mlp",
            *TINY["mlp"],
            *data_overrides(fake_mnist_root),
            *SHORT,
            "logger=[csv,mlflow,tensorboard]",
            "print_config=false",
        ]
    )
    assert cfg.logger.mlflow.tracking_uri == "sqlite:///mlflow.db"  # MLflow's own default: `mlflow ui` opens it
    metrics = train(cfg)

    assert "MLFLOW_ALLOW_FILE_STORE" not in os.environ
    assert (tmp_path / "mlflow.db").is_file()
    # No file-store metadata in ./mlruns (only artifacts): else `mlflow ui` with no flag would open that instead.
    assert not list(tmp_path.glob("mlruns/*/meta.yaml"))
    client = mlflow.tracking.MlflowClient(tracking_uri="sqlite:///mlflow.db")
    (run,) = client.search_runs([client.get_experiment_by_name("linzoo").experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.tags["run_dir"] == str(tmp_path / "run")
    params = run.data.params
    assert params["num_parameters"] == str(metrics["num_parameters"])
    assert params["model.net.hidden_dims"] == "[32]" and params["optimizer.lr"] == "0.005"
    assert params["data.root"] == str(fake_mnist_root)
    assert run.data.metrics["test/acc"] == pytest.approx(metrics["test/acc"])
    val_acc = client.get_metric_history(run.info.run_id, "val/acc")
    assert len(val_acc) == 2  # one value an epoch
    pictures = {item.path for item in client.list_artifacts(run.info.run_id, "pictures")}
    assert {"pictures/curves.png", "pictures/confusion_matrix.png", "pictures/misclassified.png"} <= pictures

    csv_hparams = yaml.safe_load((tmp_path / "run" / "csv" / "hparams.yaml").read_text())
    assert csv_hparams["num_parameters"] == metrics["num_parameters"]
    assert csv_hparams["linear.init"] == "default"
    assert list((tmp_path / "run" / "tensorboard").glob("events.out.tfevents.*"))
