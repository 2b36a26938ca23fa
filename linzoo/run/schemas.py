"""Hydra registrations (Hydra-aware: entry points only): typed schemas and a resolver.

Every config value has a real type at composition time. The schemas are dataclasses
registered in Hydra's ConfigStore; the YAMLs build on them through their defaults list,
so ``linear.bias=no``, ``model.net.depth=two`` or ``data.batch_size=abc`` fail while the
config is composed (well under a second), naming the key, the value and the type.

- ``schema_linear``: the Linear factory's options (:class:`LinearSpec`), typed, with an
  override slot for every role, so ``linear.roles.attn_out.init=zeros`` works without
  Hydra's ``+`` and a misspelled role is refused.
- ``schema_net_<model>``: built from the keyword arguments of the net each config
  instantiates (``MLP.__init__``, ...), so a schema never drifts from the code it configures.
- ``schema_task_<task>``, ``schema_data``: written out (deriving them would import
  Lightning before a config error can be reported); a test checks them against the classes.

The schemas are stored at the top of Hydra's config tree, not in a config group: the YAMLs
include them (``- /schema_net_mlp@model.net``), and a user can neither see them among the
options of ``--help`` nor choose one (``linear=schema`` is no option).

The resolver ``${lm_vocab_size:levels,conditional,num_classes}`` sizes the LM's vocabulary,
so ``model.levels=16`` or ``model.conditional=true`` need no second override.
"""

from __future__ import annotations

import inspect
import textwrap
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import MISSING, field, fields, make_dataclass
from pathlib import Path
from typing import Any, Literal, Optional, Union

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from linzoo.common.errors import format_value
from linzoo.layers.linear import ROLES, LinearSpec, overridable_fields, override_roles
from linzoo.layers.mup import MupSpec

_PRIMITIVES = (bool, int, float, str)


def omegaconf_type(annotation: Any) -> Any:
    """The closest type OmegaConf can check for a Python annotation; ``Any`` when none is.

    ``int``/``float``/``bool``/``str`` stay; ``X | None`` -> ``Optional[X]``; sequences of a
    primitive -> ``list[X]``; a ``Literal`` of strings -> ``str``; in other unions the
    members OmegaConf cannot check (tensors, paths, classes) are dropped, and a single
    primitive left is used (``str | os.PathLike`` -> ``str``); ``int | float`` -> ``Any``.
    """
    if annotation in _PRIMITIVES:
        return annotation
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is Literal:
        return str if all(isinstance(arg, str) for arg in args) else Any
    if origin in (Union, types.UnionType):
        optional = type(None) in args
        members = [omegaconf_type(arg) for arg in args if arg is not type(None)]
        members = [member for member in members if member is not Any]
        if len(members) == 1 and len(args) - optional <= 2 and not (optional and members[0] is Any):
            kept = members[0]
            # str | PathLike -> str is fine; int | float must not become int.
            numeric = {arg for arg in args if arg in (int, float)}
            if len(numeric) > 1:
                return Any
            return Optional[kept] if optional else kept
        return Any
    if origin in (list, tuple, Sequence, typing.Sequence) and args:
        item = args[0]
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis) and len(set(args)) != 1:
            return Any
        item_type = omegaconf_type(item)
        return list[item_type] if item_type in _PRIMITIVES else Any
    return Any


def schema_from_signature(cls: Callable[..., Any], *, name: str | None = None, skip: Sequence[str] = ()) -> type:
    """A dataclass with ``_target_`` and one typed field per keyword argument of ``cls``.

    Defaults are the signature's when OmegaConf can hold them, else ``None`` (field typed Any).
    """
    hints = typing.get_type_hints(cls.__init__)
    target = f"{cls.__module__}.{cls.__qualname__}"
    specs: list[tuple[str, Any, Any]] = [("_target_", str, field(default=target))]
    for parameter in list(inspect.signature(cls.__init__).parameters.values())[1:]:
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD) or parameter.name in skip:
            continue
        kind = omegaconf_type(hints.get(parameter.name, Any))
        default = parameter.default
        if default is inspect.Parameter.empty:
            specs.append((parameter.name, kind, field(default=None) if kind is Any else MISSING))
            continue
        if isinstance(default, tuple):
            default = list(default)
        if isinstance(default, list):
            specs.append((parameter.name, kind, field(default_factory=lambda value=default: list(value))))
        elif default is None or isinstance(default, _PRIMITIVES):
            specs.append((parameter.name, kind, field(default=default)))
        else:
            specs.append((parameter.name, Any, field(default=None)))
    specs = [spec if spec[2] is not MISSING else (spec[0], spec[1]) for spec in specs]
    required = [spec for spec in specs if len(spec) == 2]
    optional = [spec for spec in specs if len(spec) == 3]
    return make_dataclass(name or f"{cls.__name__}Config", [*required, *optional])


# ----------------------------------------------------------------------- linear
_LINEAR_FIELD_TYPES = typing.get_type_hints(LinearSpec)


def _optional_field_type(name: str) -> Any:
    """A role override slot: the field's type, but null allowed (null = inherit)."""
    kind = omegaconf_type(_LINEAR_FIELD_TYPES[name])
    return Any if kind is Any else Optional[kind]


RoleOverrideConfig = make_dataclass(
    "RoleOverrideConfig", [(name, _optional_field_type(name), None) for name in overridable_fields()]
)


def _spec_field(name: str) -> tuple[str, Any, Any]:
    if name == "mup":  # null (SP) or the typed muP options
        return name, Optional[MupSpec], None
    if name == "roles":
        return (
            name,
            dict[str, RoleOverrideConfig],
            field(default_factory=lambda: {r: RoleOverrideConfig() for r in override_roles()}),
        )
    spec_field = next(f for f in fields(LinearSpec) if f.name == name)
    default = spec_field.default if spec_field.default is not MISSING else None
    return name, omegaconf_type(_LINEAR_FIELD_TYPES[name]), default


LinearConfig = make_dataclass("LinearConfig", [_spec_field(f.name) for f in fields(LinearSpec)])

# optimizer.roles.<role>.lr_mult (linzoo.tasks.param_groups): a slot per role, null = 1.
RoleLrConfig = make_dataclass("RoleLrConfig", [("lr_mult", Optional[float], None)])
OptimizerRolesConfig = make_dataclass(
    "OptimizerRolesConfig", [(role, RoleLrConfig, field(default_factory=RoleLrConfig)) for role in ROLES]
)


# ----------------------------------------------------------------------- models, tasks, data
# Tasks and the datamodule are Lightning classes: deriving their schemas would import Lightning
# (8 s on a small CPU) before a config error can be reported, so they are written out here;
# tests/test_configs.py checks that they equal schema_from_signature of the classes.
_TASK_FIELDS: list[tuple[str, Any, Any]] = [
    ("net", Any, None),
    ("optimizer", Any, None),
    ("scheduler", Any, None),
    ("compile", bool, False),
]
TASK_SCHEMAS: dict[str, type] = {
    "classifier": make_dataclass(
        "ClassifierConfig",
        [
            ("_target_", str, "linzoo.tasks.classifier.Classifier"),
            *_TASK_FIELDS,
            ("num_classes", int, 10),
            ("label_smoothing", float, 0.0),
        ],
    ),
    "autoencoding": make_dataclass(
        "AutoencodingConfig",
        [
            ("_target_", str, "linzoo.tasks.autoencoding.Autoencoding"),
            *_TASK_FIELDS,
            ("loss", str, "bce"),
            ("noise_std", float, 0.0),
        ],
    ),
    "language_modeling": make_dataclass(
        "LanguageModelingConfig",
        [
            ("_target_", str, "linzoo.tasks.language_modeling.LanguageModeling"),
            *_TASK_FIELDS,
            ("levels", int, 2),
            ("image_size", Optional[int], None),
            ("conditional", bool, False),
            ("num_classes", int, 10),
        ],
    ),
}
# The keyword arguments every in-memory data module takes (linzoo.data.in_memory.InMemoryDataModule).
_LOADER_FIELDS = [
    ("eval_batch_size", int, 1000),
    ("num_workers", int, 0),
    ("pin_memory", bool, False),
    ("drop_last", bool, False),
    ("on_device", bool, False),
    ("seed", int, 0),
]


def _augment_fields() -> list[tuple[Any, ...]]:
    """A fresh list each time: a dataclass takes ownership of its ``field()`` objects."""
    return [
        ("augment", str, "none"),
        ("affine_degrees", float, 10.0),
        ("affine_translate", float, 0.1),
        ("affine_scale", list[float], field(default_factory=lambda: [0.9, 1.1])),
        ("crop_padding", int, 2),
    ]


DataModuleConfig = make_dataclass(
    "MNISTDataModuleConfig",
    [
        ("_target_", str, "linzoo.data.mnist.MNISTDataModule"),
        ("dataset", str, "mnist"),
        ("source", str, "auto"),
        ("root", Optional[str], None),
        ("download", bool, True),
        ("val_size", int, 5000),
        ("batch_size", int, 128),
        *_LOADER_FIELDS,
        ("allow_sample_fallback", bool, False),
        ("verify_checksums", bool, True),
        *_augment_fields(),
    ],
)


# finetune.* of configs/train.yaml (linzoo/run/finetune.py checks the values): a misspelled key is refused.
FinetuneConfig = make_dataclass(
    "FinetuneConfig",
    [
        ("train_roles", Any, "all"),  # all, all_but_head, or a list of roles
        ("train_other", Any, "auto"),  # auto, true or false
    ],
)


ImageFolderDataModuleConfig = make_dataclass(
    "ImageFolderDataModuleConfig",
    [
        ("_target_", str, "linzoo.data.image_folder.ImageFolderDataModule"),
        ("root", Optional[str], None),
        ("image_size", int, 28),
        ("in_channels", int, 1),
        ("invert", str, "auto"),
        ("val_fraction", float, 0.1),
        ("test_fraction", float, 0.1),
        ("batch_size", int, 64),
        *_LOADER_FIELDS,
        *_augment_fields(),
    ],
)


def _schemas() -> dict[str, type]:
    """Every schema by the name the YAMLs include it by (``schema_net_mlp``, ...); nets from their signatures."""
    from linzoo.models import CNN, MLP, Autoencoder, DecoderLM, MLPMixer, VisionTransformer

    nets = {
        "mlp": MLP,
        "cnn": CNN,
        "transformer": VisionTransformer,
        "autoencoder": Autoencoder,
        "lm": DecoderLM,
        "mixer": MLPMixer,
    }
    return {
        "schema_linear": LinearConfig,
        "schema_optimizer_roles": OptimizerRolesConfig,
        **{f"schema_net_{name}": schema_from_signature(cls) for name, cls in nets.items()},
        **{f"schema_task_{name}": schema for name, schema in TASK_SCHEMAS.items()},
        "schema_data": DataModuleConfig,
        "schema_data_image_folder": ImageFolderDataModuleConfig,
        "schema_data_overrides": overrides_of(DataModuleConfig),
        "schema_finetune": FinetuneConfig,
    }


def overrides_of(schema: type) -> type:
    """The schema with every field optional and null (eval.py's ``data.*``: null keeps the checkpoint's value)."""
    specs = []
    for spec in fields(schema):
        if spec.name == "_target_":
            continue
        kind = Any if spec.type is Any or spec.type == "Any" else Optional[spec.type]
        specs.append((spec.name, kind, field(default=None)))
    return make_dataclass(f"{schema.__name__.removesuffix('Config')}Overrides", specs)


def lm_vocab_size(levels: int, conditional: bool, num_classes: int) -> int:
    """Token ids a pixel LM needs: ``levels`` pixel values, one start token, and one class
    token per class when ``conditional``."""
    return int(levels) + 1 + (int(num_classes) if conditional else 0)


def sqlite_file(path: str) -> str:
    """``sqlite:///<path>`` for a database file, its folder created (SQLite makes no folders).
    configs/hparams_search/ keep their Optuna study in ``${sqlite_file:outputs/optuna.db}``."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def optuna_direction(task_target: str) -> str:
    """``maximize`` or ``minimize``: the direction of the task's monitored metric
    (``main_metric_mode`` of the class ``task_target``, e.g. ``linzoo.tasks.Classifier``).
    configs/hparams_search/ use it as ``${optuna_direction:${model._target_}}``."""
    from hydra.utils import get_class

    return f"{get_class(task_target).main_metric_mode}imize"


# ----------------------------------------------------------------------- --help
# configs/hydra/help/<command>.yaml: each command's --help, a template whose groups and
# settings come from these resolvers, so the help shows what the configs hold (with the
# command line's overrides applied: ``--help model=cnn`` shows model=cnn).
_HELP_WIDTH = 100


def help_groups(*, _root_: DictConfig) -> str:
    """``group=<chosen>  <its options>``, one group a line: the groups a command chooses from
    (Hydra's own and those with one option only are left out)."""
    from hydra.core.global_hydra import GlobalHydra

    choices = OmegaConf.select(_root_, "hydra.runtime.choices", default=None) or {}
    loader = GlobalHydra.instance().config_loader() if GlobalHydra.instance().is_initialized() else None
    # The command line's overrides too: hydra.searchpath=[file://my_configs] adds the user's options.
    overrides = [*OmegaConf.select(_root_, "hydra.overrides.hydra", default=[])]
    overrides += [*OmegaConf.select(_root_, "hydra.overrides.task", default=[])]
    config_name = OmegaConf.select(_root_, "hydra.job.config_name", default=None)
    rows = []
    for group, chosen in sorted(choices.items()):
        if group == "hydra" or group.startswith("hydra/") or "@" in group:
            continue
        options = (
            [] if loader is None else loader.get_group_options(group, config_name=config_name, overrides=overrides)
        )
        options = sorted(options)
        if chosen is not None and len(options) < 2:
            continue
        rows.append((f"{group}={'null' if chosen is None else chosen}", ", ".join(options)))
    return _help_rows(rows)


def help_settings(*, _parent_: DictConfig, _root_: DictConfig) -> str:
    """``key=<value now>  <description>``, one top-level setting a line (the descriptions are
    ``settings`` of the help config; a setting without one is listed all the same)."""
    descriptions = _parent_.get("settings") or {}
    values = OmegaConf.to_container(_root_, resolve=False, throw_on_missing=False)
    rows = []
    for key, value in values.items():
        if key in ("hydra", "task_name") or isinstance(value, dict):
            continue
        shown = "???" if value == "???" else format_value(value)
        rows.append((f"{key}={shown}", str(descriptions.get(key, ""))))
    return _help_rows(rows)


def _help_rows(rows: list[tuple[str, str]]) -> str:
    """Two columns, the second aligned (and wrapped under itself); a first column too long
    for it puts the second on the next line."""
    column = min(max((len(left) for left, _ in rows), default=0), 28) + 4
    lines = []
    for left, right in rows:
        head = f"  {left}"
        if len(head) + 2 > column and right:
            lines.append(head)
            head = ""
        if right:
            head = textwrap.fill(right, _HELP_WIDTH, initial_indent=head.ljust(column), subsequent_indent=" " * column)
        lines.append(head)
    # string.Template reads the help text after OmegaConf: a "$" must reach it doubled.
    return "\n".join(lines).replace("$", "$$")


def register_configs() -> None:
    """Store the schemas (``schema_linear``, ``schema_net_<model>``, ``schema_task_<task>``,
    ``schema_data``, ``schema_data_image_folder``, ``schema_data_overrides``, ``schema_finetune``; the YAMLs
    build on them) at the top of the config
    tree, outside every config group, and register the resolvers
    ``lm_vocab_size`` (configs/model/lm.yaml), ``sqlite_file`` and ``optuna_direction``
    (configs/hparams_search/), ``help_groups`` and ``help_settings`` (configs/hydra/help/)."""
    store = ConfigStore.instance()
    for name, schema in _schemas().items():
        store.store(name=name, node=schema)
    OmegaConf.register_new_resolver("lm_vocab_size", lm_vocab_size, replace=True)
    OmegaConf.register_new_resolver("sqlite_file", sqlite_file, replace=True)
    OmegaConf.register_new_resolver("optuna_direction", optuna_direction, replace=True)
    OmegaConf.register_new_resolver("help_groups", help_groups, replace=True)
    OmegaConf.register_new_resolver("help_settings", help_settings, replace=True)


__all__ = [
    "LinearConfig",
    "RoleOverrideConfig",
    "help_groups",
    "help_settings",
    "lm_vocab_size",
    "omegaconf_type",
    "register_configs",
    "optuna_direction",
    "schema_from_signature",
    "sqlite_file",
]
