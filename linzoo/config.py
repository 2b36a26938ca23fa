"""Hydra registrations (Hydra-aware: entry points only): the ``linear`` schema and a resolver.

The schema pre-declares an override slot for every role, so the plain override
``linear.roles.attn_out.init=zeros`` works without Hydra's ``+`` append syntax. Slots
left at null inherit the group-level value; ``LinearSpec`` validates names and values.
The resolver ``${lm_vocab_size:levels,conditional,num_classes}`` sizes the LM's vocabulary,
so ``model.levels=16`` or ``model.conditional=true`` need no second override.
"""

from __future__ import annotations

from dataclasses import MISSING, field, fields, make_dataclass
from pathlib import Path
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

from linzoo.layers.linear import ROLES, LinearSpec, overridable_fields

RoleOverrideConfig = make_dataclass(
    "RoleOverrideConfig", [(name, Optional[Any], None) for name in overridable_fields()]
)


def _spec_field(name: str) -> tuple[str, Any, Any]:
    if name == "roles":
        return name, dict[str, RoleOverrideConfig], field(default_factory=lambda: {r: RoleOverrideConfig() for r in ROLES})
    spec_field = next(f for f in fields(LinearSpec) if f.name == name)
    default = spec_field.default if spec_field.default is not MISSING else None
    return name, Optional[Any], default


LinearConfig = make_dataclass("LinearConfig", [_spec_field(f.name) for f in fields(LinearSpec)])


def lm_vocab_size(levels: int, conditional: bool, num_classes: int) -> int:
    """Token ids a pixel LM needs: ``levels`` pixel values, one start token, and one class
    token per class when ``conditional``."""
    return int(levels) + 1 + (int(num_classes) if conditional else 0)


def sqlite_file(path: str) -> str:
    """``sqlite:///<path>`` for a database file, its folder created (SQLite makes no folders).
    configs/hparams_search/ keep their Optuna study in ``${sqlite_file:outputs/optuna.db}``."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def register_configs() -> None:
    """Store the ``linear`` schema as ``linear/schema`` (the linear YAMLs build on it) and
    register the resolvers ``lm_vocab_size`` (configs/model/lm.yaml) and ``sqlite_file``."""
    ConfigStore.instance().store(group="linear", name="schema", node=LinearConfig)
    OmegaConf.register_new_resolver("lm_vocab_size", lm_vocab_size, replace=True)
    OmegaConf.register_new_resolver("sqlite_file", sqlite_file, replace=True)
