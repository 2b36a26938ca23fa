"""What a run prints: the resolved config as a tree at the start (rank zero only).

The model summary and the progress bar are Lightning callbacks (configs/callbacks/).
"""

from __future__ import annotations

from typing import Any

from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.syntax import Syntax
from rich.tree import Tree

# Groups shown first, in this order; the other keys follow in the config's own order.
FIRST_GROUPS = ("data", "model", "linear", "optimizer", "scheduler", "trainer", "callbacks", "logger", "paths")


def config_tree(cfg: DictConfig) -> Tree:
    """One branch per config group (its resolved YAML), then one for the top-level values."""
    tree = Tree("config", style="bold", guide_style="dim")
    groups = [key for key in FIRST_GROUPS if isinstance(cfg.get(key), DictConfig)]
    groups += [key for key, value in cfg.items() if isinstance(value, DictConfig) and key not in groups]
    for key in groups:
        text = OmegaConf.to_yaml(cfg[key], resolve=True)
        tree.add(str(key), style="bold cyan").add(Syntax(text, "yaml", theme="ansi_dark", background_color="default"))
    scalars: dict[str, Any] = {
        str(key): value for key, value in OmegaConf.to_container(cfg, resolve=True).items() if key not in groups
    }
    if scalars:
        text = OmegaConf.to_yaml(OmegaConf.create(scalars))
        tree.add("run", style="bold cyan").add(Syntax(text, "yaml", theme="ansi_dark", background_color="default"))
    return tree


@rank_zero_only
def print_config_tree(cfg: DictConfig, console: Console | None = None) -> None:
    """Print :func:`config_tree` of ``cfg`` (on the first process only)."""
    (console or Console()).print(config_tree(cfg))
