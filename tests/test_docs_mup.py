"""docs/mup.md's commands stay valid: each train.py line composes and builds its net and optimizer
(with muP's multipliers), the width-transfer line composes its grid, and each coordinate-check line
names options scripts/coord_check.py takes (the page itself is generated: scripts/mup_report.py)."""

from __future__ import annotations

import re
import shlex

import pytest
from hydra.utils import instantiate

from conftest import _compose
from helpers import ROOT
from linzoo.layers.linear import FactoryLinear
from linzoo.run.coord_check import MODELS, OPTIONS
from linzoo.tasks.param_groups import build_optimizer

PAGE = ROOT / "docs" / "mup.md"


def commands(script: str) -> list[list[str]]:
    blocks = re.findall(r"^```bash\n(.*?)^```$", PAGE.read_text(), flags=re.DOTALL | re.MULTILINE)
    lines = [shlex.split(line, comments=True) for block in blocks for line in block.splitlines() if line.strip()]
    return [words[2:] for words in lines if words[:2] == ["python", f"scripts/{script}.py"]]


def test_the_page_has_its_commands() -> None:
    assert len(commands("train")) == 4 and len(commands("coord_check")) == 3 and len(commands("width_transfer")) == 1


@pytest.mark.parametrize("args", commands("train"), ids=" ".join)
def test_every_train_command_builds_its_net_and_optimizer(args: list[str], tmp_path) -> None:
    cfg = _compose("train", args, tmp_path)
    task = instantiate(cfg.model)
    optimizer = build_optimizer(task.net, task.optimizer_factory)
    assert any(isinstance(module, FactoryLinear) for module in task.net.modules())
    lrs = {group["lr"] for group in optimizer.param_groups}
    if cfg.linear.get("mup") is not None:
        assert len(lrs) > 1  # muP: hidden weights get lr / m


@pytest.mark.parametrize("args", commands("coord_check"), ids=" ".join)
def test_every_coord_check_command_takes_its_options(args: list[str]) -> None:
    options = dict(arg.split("=", 1) for arg in args)
    assert set(options) <= set(OPTIONS) and options["model"] in MODELS


def test_the_width_transfer_command_composes(tmp_path) -> None:
    (args,) = commands("width_transfer")
    assert args[0] == "-m"
    cfg = _compose("width_transfer", args[1:], tmp_path)
    assert cfg.steps == 300 and cfg.base_width == 128
