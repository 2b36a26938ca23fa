"""What a run prints: the config at the start (rank zero only) and Lightning's log lines, once each.

``print_config=compact`` (the default) prints the config groups chosen, the values the
command line changed and a few key values; ``print_config=full`` the whole resolved config
as a tree; ``print_config=false`` nothing. The model summary and the progress bar are
Lightning callbacks (configs/callbacks/).
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.syntax import Syntax
from rich.tree import Tree

# Groups shown first, in this order; the other keys follow in the config's own order.
FIRST_GROUPS = ("data", "model", "linear", "optimizer", "scheduler", "trainer", "callbacks", "logger", "paths")
# Shown by the compact view whatever the command line said (when the config has them).
KEY_VALUES = ("seed", "trainer.max_epochs", "trainer.precision", "data.batch_size", "optimizer.lr")
# Loggers that print Lightning's messages; lightning/__init__.py gives "lightning" a stderr handler of its own.
LIGHTNING_LOGGERS = ("lightning", "lightning.pytorch", "lightning.fabric")
# Where Lightning's rank_zero_info logs ("💡 Tip: ... install litlogger" among them).
LIGHTNING_RANK_ZERO_LOGGERS = (
    "lightning.pytorch.utilities.rank_zero",
    "lightning.fabric.utilities.rank_zero",
    "lightning_utilities.core.rank_zero",
)


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


def compact_config(
    cfg: DictConfig, *, choices: Mapping[str, str | None] | None = None, overrides: Sequence[str] = ()
) -> str:
    """A few lines: the groups chosen (``data=mnist model=transformer ...``; Hydra's
    ``runtime.choices``), the command line's other overrides, :data:`KEY_VALUES` and where
    the full config is saved. Without ``choices`` (a config composed outside the command
    line) the groups line is left out."""
    lines = []
    if choices is not None:
        groups = {
            name: option
            for name, option in choices.items()
            if option is not None and name != "hydra" and not name.startswith(("hydra/", "schema/"))
        }
        order = [name for name in FIRST_GROUPS if name in groups] + [n for n in groups if n not in FIRST_GROUPS]
        lines.append("Config: " + " ".join(f"{name}={groups[name]}" for name in order))
        values = [item for item in overrides if _override_key(item) not in choices]
        lines.append("Overrides: " + (" ".join(values) if values else "none (the defaults of these groups)"))
    key_values = [(key, OmegaConf.select(cfg, key, default=None)) for key in KEY_VALUES]
    lines.append("Key values: " + " ".join(f"{key}={value}" for key, value in key_values if value is not None))
    output_dir = OmegaConf.select(cfg, "paths.output_dir", default=None)
    where = f"{Path(output_dir) / 'config.yaml'} " if output_dir else ""
    lines.append(f"Full config: {where}(print_config=full prints it here)")
    return "\n".join(lines)


def _override_key(override: str) -> str:
    """``model`` of ``model=mlp``, ``+model.x`` or ``~model``."""
    return override.split("=", 1)[0].lstrip("+~").split("@", 1)[0]


def hydra_choices_and_overrides(cfg: DictConfig) -> tuple[dict[str, str | None] | None, list[str]]:
    """The group choices and the command line's overrides of the running Hydra job (or of
    ``cfg.hydra``, composed with ``return_hydra_config=True``); ``(None, [])`` without either."""
    from hydra.core.hydra_config import HydraConfig

    hydra_cfg = HydraConfig.get() if HydraConfig.initialized() else cfg.get("hydra")
    if hydra_cfg is None:
        return None, []
    return dict(hydra_cfg.runtime.choices), list(hydra_cfg.overrides.task)


@rank_zero_only
def print_config(cfg: DictConfig, *, mode: str = "compact", console: Console | None = None) -> None:
    """Print ``cfg`` as ``mode`` says: ``"compact"`` (:func:`compact_config`), ``"full"``
    (:func:`config_tree`) or ``"off"`` (nothing); on the first process only."""
    if mode == "full":
        (console or Console()).print(config_tree(cfg))
    elif mode == "compact":
        choices, overrides = hydra_choices_and_overrides(cfg)
        text = compact_config(cfg, choices=choices, overrides=overrides)
        (console or Console()).print(text, markup=False, highlight=False, soft_wrap=True)


@rank_zero_only
def print_config_tree(cfg: DictConfig, console: Console | None = None) -> None:
    """Print :func:`config_tree` of ``cfg`` (on the first process only)."""
    (console or Console()).print(config_tree(cfg))


class DropLightningTips(logging.Filter):
    """Drops Lightning's advertising lines (``💡 Tip: ... try installing litlogger``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().lstrip("💡 ").startswith("Tip:")


def tidy_lightning_logging() -> None:
    """Every Lightning message once, and no advertising.

    At import Lightning gives its ``lightning`` logger a stderr handler of its own (and
    ``lightning.pytorch``/``lightning.fabric`` one, with ``propagate=False``, if the root logger
    had none yet); its messages also reach the root logger, where Hydra's job logging prints
    them again, to the console and ``<run>/<job>.log``. When the root logger has handlers,
    Lightning's own are removed, so Hydra's print each message once (and the log file gets
    them all). The tips are dropped by :class:`DropLightningTips` on the loggers that
    ``rank_zero_info`` writes to.
    """
    if logging.getLogger().hasHandlers():
        for name in LIGHTNING_LOGGERS:
            logger = logging.getLogger(name)
            for handler in list(logger.handlers):
                if type(handler) is logging.StreamHandler:  # Lightning's own; never a file handler
                    logger.removeHandler(handler)
            logger.propagate = True
    for name in LIGHTNING_RANK_ZERO_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(existing, DropLightningTips) for existing in logger.filters):
            logger.addFilter(DropLightningTips())


@contextlib.contextmanager
def warnings_to_log(category: type[Warning], logger: logging.Logger) -> Iterator[None]:
    """Warnings of ``category`` raised inside go to ``logger`` as WARNING records instead of
    stderr, so that Hydra's job logging writes them into the run's log file too; other warnings
    are shown as usual."""
    caught: list[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", category)
            yield
    finally:
        for warning in caught:
            if issubclass(warning.category, category):
                logger.warning(str(warning.message))
            else:
                warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
