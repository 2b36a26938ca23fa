"""The installed package: a wheel that carries configs/ and console commands that train
from any directory. The wheel goes into a throw-away virtualenv that sees the packages
of this interpreter (torch, Lightning, ...) through a .pth file: nothing is downloaded."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from helpers import ROOT, data_overrides
from linzoo.run import cli

SOURCE_FILES = ["pyproject.toml", "setup.py", "README.md", "linzoo", "configs"]


def test_a_clone_uses_its_own_configs_directory() -> None:
    assert Path(cli.CONFIG_PATH) == ROOT / "configs"


def build_wheel(tmp_path: Path) -> Path:
    """Build the wheel from a copy of the sources (no build/ or egg-info in the clone)."""
    pytest.importorskip("setuptools")
    source = tmp_path / "source"
    source.mkdir()
    for name in SOURCE_FILES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(ROOT / name, source / name)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-q",
            "-w",
            str(tmp_path / "dist"),
            str(source),
        ],
        check=True,
    )
    (wheel,) = (tmp_path / "dist").glob("linzoo-*.whl")
    return wheel


def venv_with_this_interpreters_packages(folder: Path) -> Path:
    """A virtualenv without pip whose .pth file adds this interpreter's site-packages; returns its bin/."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True)
    bin_dir = folder / ("Scripts" if os.name == "nt" else "bin")
    python = bin_dir / "python"
    site_dir = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    shared = [p for p in sys.path if p.endswith(("site-packages", "dist-packages")) and Path(p).is_dir()]
    (Path(site_dir) / "_linzoo_test_shared.pth").write_text("\n".join(shared) + "\n")
    return bin_dir


@pytest.mark.slow
def test_the_wheel_trains_from_any_directory_with_its_own_and_a_users_configs(tmp_path, fake_mnist_root) -> None:
    wheel = build_wheel(tmp_path)
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    assert {
        "linzoo/configs/train.yaml",
        "linzoo/configs/model/transformer.yaml",
        "linzoo/configs/hparams_search/mlp_optuna.yaml",
        "linzoo/configs/hydra/help/train.yaml",
        "linzoo/run/cli.py",
    } <= names

    bin_dir = venv_with_this_interpreters_packages(tmp_path / "venv")
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env["OMP_NUM_THREADS"] = "1"
    subprocess.run(
        [bin_dir / "python", "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel)], check=True, env=env
    )

    # A user's own config folder with an experiment of their own.
    work = tmp_path / "elsewhere"
    (work / "my_configs" / "experiment").mkdir(parents=True)
    (work / "my_configs" / "experiment" / "mine.yaml").write_text(
        "# @package _global_\nmodel:\n  net:\n    hidden_dims: [12]\n"
    )
    where = subprocess.run(
        [bin_dir / "python", "-c", "import linzoo.run.cli as c; print(c.__file__, c.CONFIG_PATH)"],
        cwd=work,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    assert Path(where[0]).is_relative_to(tmp_path / "venv") and where[1] == "pkg://linzoo.configs"

    subprocess.run(
        [
            bin_dir / "linzoo-train",
            "model=mlp",
            *data_overrides(fake_mnist_root),
            "debug=fast_dev_run",
            "hydra.searchpath=[file://my_configs]",
            "experiment=mine",
            "print_config=false",
        ],
        cwd=work,
        env=env,
        check=True,
        timeout=300,
    )
    (metrics_file,) = (work / "outputs" / "train").glob("*/metrics.json")
    metrics = json.loads(metrics_file.read_text())
    assert metrics["data_source"] == "mnist" and "test/acc" in metrics
    assert metrics["num_parameters"] == 784 * 12 + 12 + 12 * 10 + 10  # the user's experiment: one hidden layer of 12
    shown = subprocess.run(
        [bin_dir / "linzoo-eval", "ckpt_path=some.ckpt", "--cfg", "job"],
        cwd=work,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout  # eval.yaml from the wheel too
    assert "ckpt_path: some.ckpt" in shown and (bin_dir / "linzoo-sample").is_file()
    help_text = subprocess.run(
        [bin_dir / "linzoo-train", "--help", "hydra.searchpath=[file://my_configs]"],
        cwd=work,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout  # the wheel's help config, and the user's own experiment among the options
    assert help_text.startswith("Usage: linzoo-train") and "mine" in help_text and "schema" not in help_text
    assert not list((tmp_path / "venv").rglob("outputs")) and not list((tmp_path / "venv").rglob("metrics.json"))
