"""linzoo.load, create_model(checkpoint_path=...), Task.load_from_checkpoint(path) and predict_step."""

from __future__ import annotations

import shutil
from pathlib import Path

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader

import linzoo
from linzoo.checkpoint import CONFIG_KEY, checkpoint_in
from linzoo.tasks import Autoencoding, Classifier
from trained import train_run


@pytest.fixture(scope="module")
def mlp_run(fake_mnist_root, tmp_path_factory) -> Path:
    return train_run(tmp_path_factory.mktemp("load") / "mlp", fake_mnist_root, "mlp")


def test_load_a_checkpoint_or_a_run_directory(mlp_run) -> None:
    best = next((mlp_run / "checkpoints").glob("epoch_*.ckpt"))
    assert checkpoint_in(mlp_run) == best
    saved = torch.load(best, map_location="cpu", weights_only=False)["state_dict"]
    for path in (best, mlp_run):
        net = linzoo.load(path)
        assert isinstance(net, linzoo.MLP) and not net.training
        assert next(net.parameters()).device.type == "cpu"
        for name, tensor in net.state_dict().items():
            assert torch.equal(tensor, saved[f"net.{name}"]), name


def test_a_run_directory_without_a_best_checkpoint_loads_last(mlp_run, tmp_path) -> None:
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    shutil.copy(mlp_run / "checkpoints" / "last.ckpt", tmp_path / "run" / "checkpoints" / "last.ckpt")
    assert checkpoint_in(tmp_path / "run") == tmp_path / "run" / "checkpoints" / "last.ckpt"
    images = torch.rand(3, 1, 28, 28)
    torch.testing.assert_close(
        linzoo.load(tmp_path / "run")(images), linzoo.load(mlp_run / "checkpoints" / "last.ckpt")(images)
    )
    with pytest.raises(FileNotFoundError, match="holds no checkpoint"):
        linzoo.load(tmp_path)  # no checkpoints/ at all


def test_create_model_with_a_checkpoint_loads_its_weights(mlp_run) -> None:
    images = torch.rand(4, 1, 28, 28)
    model = linzoo.create_model("mlp", hidden_dims=[32], checkpoint_path=mlp_run)
    assert not model.training
    torch.testing.assert_close(model(images), linzoo.load(mlp_run)(images))


def test_create_model_mismatch_names_both_configurations(mlp_run) -> None:
    with pytest.raises(
        ValueError,
        match=r"(?s)other shape.*asked for:   mlp \{'hidden_dims': \[64\]\}.*checkpoint:  mlp .*'hidden_dims': \[32\]",
    ):
        linzoo.create_model("mlp", hidden_dims=[64], checkpoint_path=mlp_run)
    with pytest.raises(ValueError, match=r"(?s)holds a 'mlp' model, not 'cnn'.*asked for:   cnn"):
        linzoo.create_model("cnn", checkpoint_path=mlp_run)


def test_load_from_checkpoint_needs_no_arguments(mlp_run) -> None:
    path = mlp_run / "checkpoints" / "last.ckpt"
    task = Classifier.load_from_checkpoint(path)
    assert isinstance(task, Classifier) and not task.training
    images = torch.rand(2, 1, 28, 28)
    torch.testing.assert_close(task(images), linzoo.load(path)(images))
    assert task.build_config == torch.load(path, weights_only=False)[CONFIG_KEY]
    with pytest.raises(ValueError, match="holds a Classifier task, not a Autoencoding"):
        Autoencoding.load_from_checkpoint(path)


def test_files_that_are_no_linzoo_checkpoint_are_clear_errors(tmp_path) -> None:
    (tmp_path / "notes.ckpt").write_text("not a checkpoint")
    with pytest.raises(ValueError, match="is not a readable checkpoint"):
        linzoo.load(tmp_path / "notes.ckpt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.ckpt")
    with pytest.raises(ValueError, match="is not a linzoo checkpoint"):
        linzoo.load(tmp_path / "other.ckpt")
    with pytest.raises(FileNotFoundError, match="Nothing at"):
        linzoo.load(tmp_path / "missing.ckpt")


def test_trainer_predict_returns_class_probabilities(mlp_run) -> None:
    task = Classifier.load_from_checkpoint(mlp_run)
    images = torch.rand(10, 1, 28, 28)
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False)
    batches = trainer.predict(task, dataloaders=DataLoader(images, batch_size=4))
    probabilities = torch.cat(batches)
    assert probabilities.shape == (10, 10)
    torch.testing.assert_close(probabilities.sum(dim=1), torch.ones(10))
    assert torch.equal(probabilities.argmax(dim=1), task.net(images).argmax(dim=1))


@pytest.mark.slow
def test_a_compiled_runs_checkpoint_loads(fake_mnist_root, tmp_path) -> None:
    run = train_run(tmp_path / "compiled", fake_mnist_root, "mlp", "compile=true")
    saved = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
    net = linzoo.load(run)
    images = torch.rand(2, 1, 28, 28)
    task = Classifier.load_from_checkpoint(run / "checkpoints" / "last.ckpt")
    assert saved[CONFIG_KEY]["model"]["compile"] is True
    torch.testing.assert_close(net(images), task(images))
