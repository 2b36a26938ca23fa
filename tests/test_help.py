"""``--help`` of every command: usage examples first, then only what a user chooses from."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from helpers import ROOT

COMMANDS = ("train", "eval", "sample", "predict", "export")
CONFIGS = ROOT / "configs"


@pytest.fixture(scope="module")
def helps() -> dict[str, str]:
    """``{command: what scripts/<command>.py --help prints}`` (``train+cnn``: with ``model=cnn``)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    commands = {command: [f"scripts/{command}.py", "--help"] for command in COMMANDS}
    commands["train+cnn"] = ["scripts/train.py", "--help", "model=cnn"]
    running = {
        name: subprocess.Popen(
            [sys.executable, *argv], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for name, argv in commands.items()
    }
    texts = {}
    for name, process in running.items():
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, f"{name}: {err[-2000:]}"
        texts[name] = out
    return texts


def user_groups() -> dict[str, list[str]]:
    """Every config group of configs/ a training run picks an option of, with its options (not hydra/, not
    paths/, not quantize/: eval, export and predict choose that one)."""
    groups = {}
    for folder in sorted(path for path in CONFIGS.rglob("*") if path.is_dir()):
        group = folder.relative_to(CONFIGS).as_posix()
        options = sorted(path.stem for path in folder.glob("*.yaml"))
        if options and group.split("/")[0] not in ("hydra", "paths", "quantize", "__pycache__"):
            groups[group] = options
    return groups


@pytest.mark.parametrize("command", COMMANDS)
def test_help_opens_with_usage_and_examples_and_is_short(helps, command: str) -> None:
    lines = helps[command].splitlines()
    assert len(lines) < 80, f"{command} --help is {len(lines)} lines"
    assert lines[0].startswith(f"Usage: linzoo-{command} "), lines[:3]
    examples = lines.index("Examples:")
    assert examples < 6 and lines[examples + 1].strip().startswith(f"linzoo-{command}")
    text = helps[command].lower()
    assert "schema" not in text and "powered by hydra" not in text and "== config ==" not in text


@pytest.mark.parametrize("command", COMMANDS)
def test_help_lists_every_setting_of_the_command_with_its_value(helps, command: str) -> None:
    settings = {
        key: value
        for key, value in OmegaConf.to_container(OmegaConf.load(CONFIGS / f"{command}.yaml")).items()
        if key not in ("defaults", "task_name") and not isinstance(value, dict)
    }
    assert settings
    for key, value in settings.items():
        shown = "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
        assert f"  {key}={shown} " in helps[command] or f"  {key}={shown}\n" in helps[command], key


def test_train_help_lists_every_user_group_with_all_its_options(helps) -> None:
    lines = helps["train"].splitlines()
    for group, options in user_groups().items():
        row = next((line for line in lines if line.startswith(f"  {group}=")), None)
        assert row is not None, f"{group} is missing from train --help"
        listed = " ".join(lines[lines.index(row) : lines.index(row) + 2])  # a long row wraps once
        assert all(option in listed for option in options), (group, options, listed)
    assert "  model=mlp " in helps["train"] and "  model=cnn " in helps["train+cnn"]  # the option chosen now


def test_eval_help_lists_its_own_groups_only(helps) -> None:
    listed = {
        line.split("=")[0].strip() for line in helps["eval"].splitlines() if line.startswith("  ") and "=" in line
    }
    assert {"trainer", "callbacks", "logger"} <= listed
    assert not {"model", "linear", "optimizer", "experiment"} & listed
    for command in ("sample", "predict", "export"):  # these choose no group
        assert "Groups" not in helps[command]
