"""Resume: exact at an epoch boundary, finishing after a mid-epoch interruption, refusing a changed config."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import lightning as L
import pytest
import torch

from helpers import SHORT, TINY, data_overrides
from linzoo.run.resume import ResumeConfigError
from linzoo.run.train import train

# Dropout stays on (MLP default 0.1): the global RNG matters. Three epochs of four batches.
EXACT = ["model=mlp", *TINY["mlp"], *SHORT, "trainer.max_epochs=3", "trainer.num_sanity_val_steps=2"]


class SignalAt(L.Callback):
    """Test helper: send SIGTERM to this process at the end of one training batch
    (``batch=-1``: at the end of the epoch, after its validation)."""

    def __init__(self, epoch: int, batch: int, signum: int = signal.SIGTERM) -> None:
        self.epoch, self.batch, self.signum = epoch, batch, signum

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.current_epoch == self.epoch and batch_idx == self.batch:
            signal.raise_signal(self.signum)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if trainer.current_epoch == self.epoch and self.batch == -1:
            signal.raise_signal(signal.SIGTERM)


class CrashAt(L.Callback):
    """Test helper: die at the start of an epoch like a killed process: no metrics.json, only
    the checkpoints ModelCheckpoint wrote."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if trainer.current_epoch == self.epoch:
            raise MemoryError("simulated kill")


def signal_override(epoch: int, batch: int) -> list[str]:
    return [
        "+callbacks.signal._target_=test_resume.SignalAt",
        f"+callbacks.signal.epoch={epoch}",
        f"+callbacks.signal.batch={batch}",
    ]


def final_weights(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]


def interrupted_then_resumed(compose_train, common: list[str], run: Path, *, epoch: int, batch: int) -> dict:
    with pytest.raises(SystemExit) as stopped:
        train(compose_train([*common, *signal_override(epoch, batch)], output_dir=run))
    assert stopped.value.code == 128 + signal.SIGTERM
    interrupted = json.loads((run / "metrics.json").read_text())
    assert interrupted["status"] == "interrupted" and interrupted["interrupted_by"] == "SIGTERM"
    assert interrupted["resume_from"] == str(run / "checkpoints" / "last.ckpt")
    return train(compose_train([*common, f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}"], output_dir=run))


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, fake_mnist_root) -> Path:
    from hydra import compose, initialize_config_dir

    from conftest import CONFIG_DIR
    from linzoo.run.schemas import register_configs

    run = tmp_path_factory.mktemp("uninterrupted") / "run"
    register_configs()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("train", overrides=[*EXACT, *data_overrides(fake_mnist_root), f"paths.output_dir={run}"])
    train(cfg)
    return run


@pytest.mark.parametrize("batch", [-1, 3], ids=["after_epoch_end", "after_last_batch"])
def test_sigterm_at_an_epoch_boundary_then_resume_gives_the_uninterrupted_weights(
    compose_train, fake_mnist_root, tmp_path, uninterrupted, batch: int
) -> None:
    """SIGTERM at the end of epoch 0: after its last batch (before validation) or after the epoch end."""
    common = [*EXACT, *data_overrides(fake_mnist_root)]
    resumed = interrupted_then_resumed(compose_train, common, tmp_path / "run", epoch=0, batch=batch)
    assert resumed["status"] == "finished" and resumed["epochs"] == 3 and resumed["global_steps"] == 12
    expected, got = final_weights(uninterrupted), final_weights(tmp_path / "run")
    assert expected.keys() == got.keys()
    differing = [name for name in expected if not torch.equal(expected[name], got[name])]
    assert not differing, f"resumed run differs in {differing}"
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir()) == ["epoch_002.ckpt", "last.ckpt"]


def test_a_killed_run_resumed_from_its_last_checkpoint_gives_the_uninterrupted_weights(
    compose_train, fake_mnist_root, tmp_path, uninterrupted
) -> None:
    """A run that crashes mid-training (no metrics.json) and is resumed in place from its last.ckpt ends with the same weights, bit for bit, as a run never stopped."""
    common = [*EXACT, *data_overrides(fake_mnist_root)]
    run = tmp_path / "run"
    with pytest.raises(MemoryError):
        train(
            compose_train(
                [*common, "+callbacks.crash._target_=test_resume.CrashAt", "+callbacks.crash.epoch=1"], output_dir=run
            )
        )
    assert not (run / "metrics.json").exists()
    train(compose_train([*common, f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}"], output_dir=run))
    expected, got = final_weights(uninterrupted), final_weights(run)
    assert all(torch.equal(expected[name], got[name]) for name in expected)


def test_last_ckpt_is_the_last_epoch_even_when_the_best_epoch_was_earlier(
    compose_train, fake_mnist_root, tmp_path, uninterrupted
) -> None:
    """The monitor (highest val/loss) keeps epoch 0 as the best; a kill at the start of epoch 2
    must still resume from epoch 1, not from the best epoch."""
    common = [*EXACT, *data_overrides(fake_mnist_root)]
    worst_first = ["callbacks.model_checkpoint.monitor=val/loss", "callbacks.model_checkpoint.mode=max"]
    run = tmp_path / "run"
    with pytest.raises(MemoryError):
        train(
            compose_train(
                [*common, *worst_first, "+callbacks.crash._target_=test_resume.CrashAt", "+callbacks.crash.epoch=2"],
                output_dir=run,
            )
        )
    last = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert (last["epoch"], last["global_step"]) == (1, 8)
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["epoch_000.ckpt", "last.ckpt"]
    train(compose_train([*common, *worst_first, f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}"], output_dir=run))
    expected, got = final_weights(uninterrupted), final_weights(run)
    assert all(torch.equal(expected[name], got[name]) for name in expected)


@pytest.fixture
def sigint_handler(request):
    """SIGINT set to ``request.param`` for the test (pytest may itself run with SIGINT ignored, as
    a shell's background job), then put back."""
    previous = signal.signal(signal.SIGINT, request.param)
    yield request.param
    signal.signal(signal.SIGINT, previous)


@pytest.mark.parametrize("sigint_handler", [signal.default_int_handler], indirect=True)
def test_sigint_is_handled_like_sigterm_at_the_end_of_the_batch(
    compose_train, fake_mnist_root, tmp_path, sigint_handler
) -> None:
    """Ctrl+C (SIGINT) stops at the end of the batch like SIGTERM: last.ckpt of where training was, metrics.json with status interrupted, exit 130, and Python's own SIGINT handler restored."""
    run = tmp_path / "run"
    with pytest.raises(SystemExit) as stopped:
        train(
            compose_train(
                [
                    *EXACT,
                    *data_overrides(fake_mnist_root),
                    *signal_override(0, 1),
                    f"+callbacks.signal.signum={int(signal.SIGINT)}",
                ],
                output_dir=run,
            )
        )
    assert stopped.value.code == 128 + signal.SIGINT
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "interrupted" and metrics["interrupted_by"] == "SIGINT"
    assert torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["global_step"] == 2
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # Python's handler is back


@pytest.mark.parametrize("sigint_handler", [signal.SIG_IGN], indirect=True)
def test_an_ignored_sigint_stays_ignored(compose_train, fake_mnist_root, tmp_path, sigint_handler) -> None:
    """Started as a background job (SIGINT ignored): a SIGINT neither interrupts nor is handled."""
    run = tmp_path / "run"
    signal_at_batch_1 = [*signal_override(0, 1), f"+callbacks.signal.signum={int(signal.SIGINT)}"]
    train(compose_train([*EXACT, *data_overrides(fake_mnist_root), *signal_at_batch_1], output_dir=run))
    assert json.loads((run / "metrics.json").read_text())["status"] == "finished"
    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN


def test_sigterm_mid_epoch_then_resume_gives_the_uninterrupted_weights(
    compose_train, fake_mnist_root, tmp_path, uninterrupted
) -> None:
    """Mid-epoch: the checkpoint holds the 6 steps done; the resumed run continues epoch 1's
    order after its second batch (EpochShuffle's batches_done) and does the other 6."""
    common = [*EXACT, *data_overrides(fake_mnist_root)]
    run = tmp_path / "run"
    with pytest.raises(SystemExit):
        train(compose_train([*common, *signal_override(1, 1)], output_dir=run))
    saved = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert saved["global_step"] == 6 and saved["epoch"] == 1
    resumed = train(compose_train([*common, f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}"], output_dir=run))
    assert resumed["status"] == "finished" and resumed["epochs"] == 3 and resumed["global_steps"] == 12
    expected, got = final_weights(uninterrupted), final_weights(run)
    differing = [name for name in expected if not torch.equal(expected[name], got[name])]
    assert not differing, f"resumed run differs in {differing}"


# ------------------------------------------------------------ resume with a changed config
@pytest.fixture
def mlp_checkpoint(compose_train, fake_mnist_root, tmp_path) -> Path:
    """A file holding only the linzoo config of a tiny MLP run (all a config check reads)."""
    from omegaconf import OmegaConf

    from linzoo.checkpoint import CONFIG_KEY

    cfg = compose_train(["model=mlp", *TINY["mlp"], *data_overrides(fake_mnist_root)], output_dir=tmp_path / "x")
    build = {
        "model": OmegaConf.to_container(cfg.model, resolve=True),
        "data": OmegaConf.to_container(cfg.data, resolve=True),
        "precision": "32-true",
    }
    path = tmp_path / "mlp.ckpt"
    torch.save({CONFIG_KEY: build}, path)
    return path


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        (["model=cnn", *TINY["cnn"]], "model.net._target_: 'linzoo.models.MLP' -> 'linzoo.models.CNN'"),
        (["model=mlp", *TINY["mlp"], "optimizer.lr=0.5"], "optimizer.lr: 0.005 -> 0.5"),
        (["model=mlp", *TINY["mlp"], "data.batch_size=7"], "data.batch_size: 128 -> 7"),
    ],
)
def test_resume_with_a_changed_config_is_refused_naming_the_keys(
    compose_train, fake_mnist_root, tmp_path, mlp_checkpoint, overrides, named
) -> None:
    cfg = compose_train(
        [*overrides, *data_overrides(fake_mnist_root), f"ckpt_path={mlp_checkpoint}"], output_dir=tmp_path / "run"
    )
    with pytest.raises(ResumeConfigError, match="Differing keys") as refused:
        train(cfg)
    assert named in str(refused.value)
    assert not (tmp_path / "run" / "config.yaml").exists()  # nothing recorded for a run that did not run


def test_resume_may_change_trainer_keys_and_where_data_is_read(mlp_checkpoint) -> None:
    from linzoo.checkpoint import CONFIG_KEY
    from linzoo.run.resume import config_differences

    saved = torch.load(mlp_checkpoint, weights_only=False)[CONFIG_KEY]
    current = {
        **saved,
        "model": {**saved["model"], "compile": True},
        "data": {**saved["data"], "root": "/elsewhere", "num_workers": 2},
    }
    assert config_differences(saved, current) == []


def test_an_option_the_checkpoint_predates_is_no_change_only_at_its_default() -> None:
    from linzoo.run.resume import config_differences

    data = {"_target_": "linzoo.data.MNISTDataModule", "dataset": "mnist"}
    saved = {"model": {}, "data": dict(data), "precision": "32-true", "data_source": "mnist"}
    assert config_differences(saved, {"model": {}, "data": {**data, "augment": "none"}, "precision": "32-true"}) == []
    assert config_differences(saved, {"model": {}, "data": {**data, "augment": "affine"}, "precision": "32-true"}) == [
        ("data.augment", "<absent>", "affine")
    ]
    # A tuple default (affine_scale=(0.9, 1.1)) is a list in the config: still its default.
    for scale, differs in (([0.9, 1.1], False), ([0.8, 1.2], True)):
        current = {"model": {}, "data": {**data, "affine_scale": scale}, "precision": "32-true"}
        assert config_differences(saved, current) == ([("data.affine_scale", "<absent>", scale)] if differs else [])


# ------------------------------------------------------------------ SIGTERM from outside
@pytest.mark.slow
def test_sigterm_to_scripts_train_saves_exits_143_and_the_run_resumes_in_place(
    compose_train, fake_mnist_root, tmp_path
) -> None:
    """SIGTERM to scripts/train.py saves where training was, writes metrics.json (interrupted), exits 143 naming the resume command, and that command resumes and finishes the run in place."""
    import os
    import subprocess
    import sys
    import time

    from helpers import ROOT

    run = tmp_path / "run"
    common = [
        "model=mlp",
        *TINY["mlp"],
        "data.download=false",
        "data.val_size=200",
        "data.batch_size=8",
        "callbacks.progress_bar.refresh_rate=0",
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "LINZOO_DATA": str(fake_mnist_root)}
    process = subprocess.Popen(
        [sys.executable, "scripts/train.py", *common, "trainer.max_epochs=50", f"hydra.run.dir={run}"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 240
    while not (run / "checkpoints" / "epoch_000.ckpt").exists() and process.poll() is None:
        assert time.monotonic() < deadline, "no checkpoint after 240 s"
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    _out, err = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM, err[-3000:]
    assert "Interrupted by SIGTERM; resume with ckpt_path=" in err
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "interrupted" and metrics["epochs"] >= 1
    saved = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert saved["global_step"] == metrics["global_steps"]  # where training was, not the last epoch end
    stop_after = saved["epoch"] + 1
    resumed = train(
        compose_train(
            [
                *common,
                *data_overrides(fake_mnist_root),
                f"trainer.max_epochs={stop_after}",
                f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}",
            ],
            output_dir=run,
        )
    )
    assert resumed["status"] == "finished" and resumed["epochs"] == stop_after


@pytest.mark.parametrize("corruption", ["shape", "nan"])
def test_a_corrupt_optimizer_state_is_refused_naming_the_file(
    compose_train, fake_mnist_root, tmp_path, corruption: str
) -> None:
    """A checkpoint whose optimizer state cannot be trained from is refused before training,
    naming the file, instead of diverging ("lower optimizer.lr") or failing in optimizer.step."""
    from linzoo.common.errors import UserValueError

    common = ["model=mlp", *TINY["mlp"], *data_overrides(fake_mnist_root), *SHORT, "trainer.max_epochs=1"]
    train(compose_train(common, output_dir=tmp_path / "first"))
    checkpoint = torch.load(tmp_path / "first" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    state = checkpoint["optimizer_states"][0]["state"][0]
    if corruption == "shape":
        state["exp_avg"] = torch.zeros(3)
    else:
        state["exp_avg_sq"] = torch.full_like(state["exp_avg_sq"], float("nan"))
    corrupt = tmp_path / "corrupt.ckpt"
    torch.save(checkpoint, corrupt)
    with pytest.raises(UserValueError, match="corrupt optimizer state") as raised:
        train(compose_train([*common, "trainer.max_epochs=2", f"ckpt_path={corrupt}"], output_dir=tmp_path / "second"))
    message = str(raised.value)
    assert str(corrupt) in message and "\n" not in message and "optimizer.lr" not in message
    assert ("shape (3,)" if corruption == "shape" else "NaN") in message
    assert not (tmp_path / "second" / "metrics.json").exists()
