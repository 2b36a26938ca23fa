"""The console: config tree, model summary with FLOPs, progress-bar choice, debug mode."""

from __future__ import annotations

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from lightning.pytorch.callbacks import RichModelSummary, RichProgressBar, TQDMProgressBar
from lightning.pytorch.utilities import rank_zero_only
from lightning.pytorch.utilities.model_summary import ModelSummary
from rich.console import Console

from helpers import MODELS, ROOT, tiny
from linzoo.config import register_configs
from linzoo.console import config_tree, print_config_tree
from linzoo.instantiation import instantiate_all


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
