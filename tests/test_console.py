"""The console: compact config and config tree, which data, Lightning's log lines once each,
model summary with FLOPs, progress-bar choice, debug mode."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from lightning.pytorch.callbacks import RichModelSummary, RichProgressBar, TQDMProgressBar
from lightning.pytorch.utilities import rank_zero_only
from lightning.pytorch.utilities.model_summary import ModelSummary
from omegaconf import DictConfig
from rich.console import Console

from helpers import MODELS, ROOT, tiny
from linzoo.common.errors import ConfigError
from linzoo.run.console import (
    DropLightningTips,
    compact_config,
    config_tree,
    hydra_choices_and_overrides,
    print_config,
    print_config_tree,
    tidy_lightning_logging,
)
from linzoo.run.schemas import register_configs
from linzoo.run.trainer import instantiate_all
from linzoo.run.validation import check_train_config, print_config_mode


def test_config_tree_shows_every_group_first_and_the_top_level_values_last(compose_train) -> None:
    cfg = compose_train(["model=mlp"])
    console = Console(record=True, width=120)
    console.print(config_tree(cfg))
    text = console.export_text()
    branches = [line.split("── ")[1].strip() for line in text.splitlines() if line[:4] in ("├── ", "└── ")]
    assert branches[:4] == ["data", "model", "linear", "optimizer"] and branches[-1] == "run"
    assert "_target_: linzoo.tasks.Classifier" in text and "seed: 12345" in text
    assert f"dirpath: {cfg.paths.output_dir}/checkpoints" in text  # resolved interpolations


def test_only_rank_zero_prints_the_tree(compose_train, monkeypatch) -> None:
    cfg = compose_train(["model=mlp"])
    console = Console(record=True, width=120)
    monkeypatch.setattr(rank_zero_only, "rank", 1)
    print_config_tree(cfg, console=console)
    assert console.export_text() == ""
    monkeypatch.setattr(rank_zero_only, "rank", 0)
    print_config_tree(cfg, console=console)
    assert "model" in console.export_text()


def compose_with_hydra(overrides: list[str], tmp_path) -> DictConfig:
    """configs/train.yaml with its ``hydra`` node (the group choices and the overrides), as a run sees it."""
    register_configs()
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        return compose(
            "train", overrides=[*overrides, f"paths.output_dir={tmp_path / 'run'}"], return_hydra_config=True
        )


def test_the_compact_config_names_the_groups_and_the_overrides_in_a_few_lines(tmp_path) -> None:
    cfg = compose_with_hydra(["model=transformer", "trainer.max_epochs=1", "callbacks/progress_bar=rich"], tmp_path)
    choices, overrides = hydra_choices_and_overrides(cfg)
    text = compact_config(cfg, choices=choices, overrides=overrides)
    lines = text.splitlines()
    assert len(lines) <= 5 and "roles" not in text and "null" not in text
    assert lines[0].startswith("Config: data=mnist model=transformer linear=default optimizer=adamw")
    assert "scheduler=warmup_cosine" in lines[0] and "callbacks/progress_bar=rich" in lines[0]
    assert "hydra" not in lines[0] and "schema" not in lines[0] and "experiment" not in lines[0]
    assert lines[1].startswith("Overrides: trainer.max_epochs=1") and "model=" not in lines[1]
    assert "trainer.max_epochs=1" in lines[2] and "seed=12345" in lines[2]
    assert f"{tmp_path / 'run' / 'config.yaml'}" in lines[3] and "print_config=full" in lines[3]
    defaults = compose_with_hydra([], tmp_path)
    assert "Overrides: none" in compact_config(defaults, choices=hydra_choices_and_overrides(defaults)[0])
    assert not compact_config(defaults).startswith("Config:")  # no choices known: no groups line


@pytest.mark.parametrize(("value", "mode"), [("compact", "compact"), ("full", "full"), (True, "full"), (False, "off")])
def test_print_config_compact_full_or_off(compose_train, value, mode) -> None:
    assert print_config_mode(value) == mode
    cfg = compose_train(["model=transformer", f"print_config={str(value).lower()}"])
    check_train_config(cfg)
    console = Console(record=True, width=120)
    print_config(cfg, mode=mode, console=console)
    text = console.export_text()
    assert {"compact": "Key values: seed=12345" in text, "full": "attn_out" in text, "off": text == ""}[mode]
    assert mode == "full" or len(text.splitlines()) < 10


@pytest.mark.parametrize(("value", "fix"), [("ful", "print_config=full"), ("yes", "print_config=compact")])
def test_a_bad_print_config_names_the_choices(compose_train, value, fix) -> None:
    with pytest.raises(ConfigError, match=rf"print_config={value}: expected compact .* full .* false .* Fix: {fix}"):
        check_train_config(compose_train([f"print_config={value}"]))


@pytest.fixture
def hydra_like_logging():
    """The root logger with one handler, as Hydra's job logging leaves it, and Lightning's
    loggers as Lightning's import leaves them; everything put back afterwards."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    root = logging.getLogger()
    names = ["lightning", "lightning.pytorch", "lightning.fabric", "lightning.pytorch.utilities.rank_zero"]
    saved = {name: (logging.getLogger(name).handlers[:], logging.getLogger(name).propagate) for name in names}
    saved_filters = logging.getLogger(names[-1]).filters[:]
    logging.getLogger("lightning").addHandler(logging.StreamHandler())  # what lightning/__init__.py does
    root.addHandler(handler)
    yield records
    root.removeHandler(handler)
    for name, (handlers, propagate) in saved.items():
        logging.getLogger(name).handlers[:] = handlers
        logging.getLogger(name).propagate = propagate
    logging.getLogger(names[-1]).filters[:] = saved_filters


def test_lightning_messages_reach_the_root_handlers_once_and_its_tips_never(hydra_like_logging, capsys) -> None:
    from lightning.pytorch.utilities.rank_zero import rank_zero_info

    tidy_lightning_logging()
    tidy_lightning_logging()  # twice (one call a command) changes nothing more
    rank_zero_info("GPU available: False, used: False")
    rank_zero_info("💡 Tip: For seamless cloud logging and experiment tracking, try installing [litlogger](...)")
    assert [record.getMessage() for record in hydra_like_logging] == ["GPU available: False, used: False"]
    assert "GPU available" not in capsys.readouterr().err  # Lightning's own handler is gone
    assert not DropLightningTips().filter(logging.makeLogRecord({"msg": "💡 Tip: install litmodels"}))


@pytest.mark.slow
def test_the_first_run_says_what_it_trains_on_in_a_few_lines_and_every_log_line_once(tmp_path) -> None:
    """python scripts/train.py model=transformer on a machine without MNIST (the offline sample)."""
    run_dir = tmp_path / "run"
    env = {key: value for key, value in os.environ.items() if key not in ("LINZOO_DATA", "HYDRA_FULL_ERROR")}
    env.update(PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    command = [
        sys.executable,
        str(ROOT / "scripts" / "train.py"),
        *tiny("transformer"),
        "data.download=false",  # never the network; ./data under tmp_path holds nothing
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=2",
        "trainer.limit_val_batches=1",
        "trainer.limit_test_batches=1",
        "callbacks.progress_bar.refresh_rate=0",
        f"hydra.run.dir={run_dir}",
    ]
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    before_training = lines[: next(i for i, line in enumerate(lines) if "Total params" in line)]
    assert len(before_training) < 80, "\n".join(before_training)
    assert lines[0].startswith("Config: data=mnist model=transformer") and "roles:" not in done.stdout
    # Which data: up front (before Lightning builds the Trainer) and again in the closing summary.
    data = next(i for i, line in enumerate(lines) if line.startswith("Data: "))
    assert data < next(i for i, line in enumerate(lines) if "GPU available" in line) and data < 12
    assert "the 5,000-digit MNIST sample" in lines[data] and "train/val/test 4,000/500/500" in lines[data]
    assert lines[-2:] == [lines[data], f"Run directory: {run_dir}"]
    # The fallback warning is in the job's log file too.
    (log_file,) = run_dir.glob("*.log")
    log = log_file.read_text()
    assert any("[WARNING]" in line and "using the 5,000-digit MNIST sample" in line for line in log.splitlines())
    # Every Lightning message once (not again from Lightning's own handler), and no advertising.
    output = done.stdout + done.stderr
    messages = [line.split("] - ", 1)[1] for line in log.splitlines() if "][lightning." in line]
    assert len(messages) >= 5 and any("GPU available" in message for message in messages)
    assert [message for message in messages if output.count(message) != 1] == []
    assert "INFO: " not in done.stderr
    for advert in ("Tip:", "litlogger", "litmodels"):
        assert advert not in output and advert not in log


@pytest.mark.parametrize(
    ("choice", "bar"), [(None, TQDMProgressBar), ("tqdm", TQDMProgressBar), ("rich", RichProgressBar)]
)
def test_progress_bar_choice_and_refresh_rate_zero_turns_it_off(compose_train, choice, bar) -> None:
    overrides = [] if choice is None else [f"callbacks/progress_bar={choice}"]
    callbacks = instantiate_all(compose_train(overrides).callbacks)
    assert [type(c) for c in callbacks if isinstance(c, (RichProgressBar, TQDMProgressBar))] == [bar]
    summaries = [c for c in callbacks if isinstance(c, RichModelSummary)]
    assert len(summaries) == 1 and summaries[0]._max_depth == 2
    silent = instantiate_all(compose_train([*overrides, "callbacks.progress_bar.refresh_rate=0"]).callbacks)
    assert [c.is_disabled for c in silent if isinstance(c, (RichProgressBar, TQDMProgressBar))] == [True]


def test_a_group_choice_written_with_a_dot_is_an_error_that_names_the_slash(compose_train) -> None:
    with pytest.raises(ValueError, match=r"callbacks/progress_bar=tqdm"):
        instantiate_all(compose_train(["callbacks.progress_bar=tqdm"]).callbacks)


def test_debug_default_turns_on_anomaly_detection_and_debug_logs() -> None:
    register_configs()
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        cfg = compose("train", overrides=["debug=default"], return_hydra_config=True)
    assert cfg.trainer.detect_anomaly is True and cfg.task_name == "debug"
    assert cfg.hydra.job_logging.root.level == "DEBUG"


@pytest.mark.parametrize("model", MODELS)
def test_the_model_summary_counts_flops(compose_train, model: str) -> None:
    task = instantiate(compose_train(tiny(model)).model)
    assert task.example_input_array is not None
    summary = ModelSummary(task, max_depth=2)
    assert summary.total_flops > 0
    if model == "mlp":  # 784 -> 32 -> 10: two multiply-adds a weight
        assert summary.total_flops == 2 * (784 * 32 + 32 * 10)
    if model == "lm":
        assert task.example_input_array.dtype == torch.long
