"""The monitored metric has one source: the task. Checkpointing and early stopping read it there."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from lightning.pytorch import callbacks as lightning_callbacks

from linzoo.callbacks import EarlyStopping, ModelCheckpoint
from linzoo.callbacks.monitor import monitored_metric
from linzoo.models import MLP, Autoencoder, DecoderLM
from linzoo.tasks import Autoencoding, Classifier, LanguageModeling


def tasks() -> dict[str, L.LightningModule]:
    return {
        "classifier": Classifier(net=MLP(hidden_dims=[4]), optimizer=torch.optim.SGD),
        "autoencoder": Autoencoding(net=Autoencoder(hidden_dims=[4], latent_dim=2), optimizer=torch.optim.SGD),
        "lm": LanguageModeling(
            net=DecoderLM(vocab_size=3, seq_len=49, dim=8, depth=1, num_heads=2),
            optimizer=torch.optim.SGD,
            image_size=7,
        ),
    }


EXPECTED = {"classifier": ("val/acc", "max"), "autoencoder": ("val/loss", "min"), "lm": ("val/nll_nats", "min")}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_callbacks_take_the_tasks_metric_and_keep_lightnings_state_key(tmp_path, name: str) -> None:
    task = tasks()[name]
    trainer = L.Trainer(default_root_dir=tmp_path, logger=False, enable_progress_bar=False)
    checkpoint, stopping = ModelCheckpoint(dirpath=tmp_path, save_last=True), EarlyStopping(min_delta=0.5)
    checkpoint.setup(trainer, task, "fit")
    stopping.setup(trainer, task, "fit")
    metric, mode = EXPECTED[name]
    assert (checkpoint.monitor, checkpoint.mode) == (stopping.monitor, stopping.mode) == (metric, mode)
    assert float(checkpoint.kth_value) == (float("inf") if mode == "min" else float("-inf"))
    assert stopping.min_delta == (0.5 if mode == "max" else -0.5)  # as Lightning signs it for the mode
    # A checkpoint written with Lightning's own classes resumes with these (same state keys), and back.
    theirs = lightning_callbacks.ModelCheckpoint(dirpath=tmp_path, save_last=True, monitor=metric, mode=mode)
    assert checkpoint.state_key == theirs.state_key
    assert stopping.state_key == lightning_callbacks.EarlyStopping(monitor=metric, mode=mode).state_key


def test_top_k_checkpoints_of_the_tasks_metric(tmp_path) -> None:
    checkpoint = ModelCheckpoint(dirpath=tmp_path, save_top_k=3)  # Lightning alone refuses top-k without a monitor
    checkpoint.setup(L.Trainer(default_root_dir=tmp_path, logger=False), tasks()["classifier"], "fit")
    assert (checkpoint.monitor, checkpoint.save_top_k) == ("val/acc", 3)


def test_an_override_wins_and_takes_min_unless_it_is_the_tasks_metric() -> None:
    classifier = tasks()["classifier"]
    assert monitored_metric(classifier, "train/loss", None) == ("train/loss", "min")
    assert monitored_metric(classifier, "val/acc", None) == ("val/acc", "max")
    assert monitored_metric(classifier, "val/loss", "min") == ("val/loss", "min")
    with pytest.raises(ValueError, match="mode=min or mode=max"):
        monitored_metric(classifier, None, "up")


def test_debug_overfit_monitors_the_training_loss(compose_train, tmp_path) -> None:
    from linzoo.run.trainer import instantiate_all

    cfg = compose_train(["debug=overfit"], output_dir=tmp_path)
    checkpoint = next(c for c in instantiate_all(cfg.callbacks) if isinstance(c, ModelCheckpoint))
    checkpoint.setup(L.Trainer(default_root_dir=tmp_path, logger=False), tasks()["classifier"], "fit")
    assert (checkpoint.monitor, checkpoint.mode) == ("train/loss", "min")
    assert compose_train([], output_dir=tmp_path).callbacks.model_checkpoint.monitor is None  # the task decides


def test_checkpoint_skips_lightnings_per_step_checks_only_when_it_saves_by_epoch(tmp_path) -> None:
    calls: list[int] = []

    class Recording(ModelCheckpoint):
        def _should_skip_saving_checkpoint(self, trainer: L.Trainer) -> bool:
            calls.append(1)
            return True

    task = tasks()["classifier"]
    Recording(dirpath=tmp_path).on_train_batch_end(None, task, None, None, 0)
    assert calls == []
    Recording(dirpath=tmp_path, every_n_train_steps=5).on_train_batch_end(
        L.Trainer(default_root_dir=tmp_path, logger=False), task, None, None, 0
    )
    assert calls == [1]
