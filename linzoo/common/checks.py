"""Value checks shared by the Python API (create_model, LinearSpec) and the configs.

Plain Python (no torch, no Hydra), so every floor may use them. Each failed check raises
:class:`linzoo.common.errors.ConfigError`, which names the setting, the value, what is expected
and the fix; ``prefix`` says how the caller spells the setting (``"model.net."`` for a
config, ``""`` for a keyword argument).
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping, Sequence
from typing import Any

from linzoo.common.errors import ConfigError, UserModuleNotFoundError, format_value

__all__ = ["check_dataclass_types", "check_net_options", "check_value_type", "is_number", "require"]

# Sizes of a model: a width, depth or count of 0 builds a net that cannot learn.
POSITIVE_INT_OPTIONS = (
    "in_channels",
    "image_size",
    "patch_size",
    "dim",
    "depth",
    "num_heads",
    "token_mlp_dim",
    "channel_mlp_dim",
    "latent_dim",
    "kernel_size",
    "vocab_size",
    "seq_len",
)
# Lists of widths: every entry >= 1 (an empty list is fine where a stage may be absent).
WIDTH_LIST_OPTIONS = ("hidden_dims", "channels", "head_hidden_dims")
NON_EMPTY_LISTS = ("channels",)
PROBABILITY_OPTIONS = ("dropout", "attn_dropout")
POSITIVE_FLOAT_OPTIONS = ("mlp_ratio",)


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_net_options(options: Mapping[str, Any], *, prefix: str = "") -> None:
    """Sizes >= 1, width lists of positive ints, dropout in [0, 1), mlp_ratio > 0."""
    for name, value in options.items():
        setting = f"{prefix}{name}"
        if name in POSITIVE_INT_OPTIONS and value is not None and not (is_int(value) and value >= 1):
            raise ConfigError(
                setting,
                value,
                "an integer >= 1 (a size of 0 builds a net that cannot learn)",
                f"{setting}=<a positive integer>",
                number=True,
            )
        if name == "num_classes" and value is not None and not (is_int(value) and value >= 0):
            raise ConfigError(
                setting,
                value,
                "an integer >= 0 (0: no head, the net returns its features)",
                f"{setting}=10",
                number=True,
            )
        if name in WIDTH_LIST_OPTIONS:
            if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
                raise ConfigError(setting, value, "a list of integers >= 1", f"{setting}=[64,32]", number=True)
            if name in NON_EMPTY_LISTS and len(value) == 0:
                raise ConfigError(setting, value, "at least one stage", f"{setting}=[32,64]")
            bad = [width for width in value if not (is_int(width) and width >= 1)]
            if bad:
                raise ConfigError(
                    setting,
                    list(value),
                    f"widths >= 1 ({format_value(bad[0])} is not)",
                    f"{setting}=[64,32]",
                    number=True,
                )
        if name in PROBABILITY_OPTIONS and value is not None and not (is_number(value) and 0 <= value < 1):
            raise ConfigError(setting, value, "a probability in [0, 1)", f"{setting}=0.1", number=True)
        if name in POSITIVE_FLOAT_OPTIONS and value is not None and not (is_number(value) and value > 0):
            raise ConfigError(setting, value, "a number > 0", f"{setting}=4.0", number=True)


_TYPE_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def check_value_type(setting: str, value: Any, annotation: Any) -> None:
    """``value`` must fit ``annotation`` (``bool``, ``int``, ``float``, ``str``, ``X | None``);
    other annotations are not checked. ``bool`` is not accepted as a number, nor "no" as a bool."""
    args = typing.get_args(annotation)
    optional = type(None) in args
    kinds = [arg for arg in args if arg is not type(None)] if args else [annotation]
    if len(kinds) != 1 or kinds[0] not in _TYPE_NAMES:
        return
    kind = kinds[0]
    if value is None:
        if optional:
            return
        raise ConfigError(setting, value, _TYPE_NAMES[kind], f"give {setting} a value")
    fits = {
        bool: isinstance(value, bool),
        int: is_int(value),
        float: is_number(value),
        str: isinstance(value, str),
    }[kind]
    if not fits:
        expected = _TYPE_NAMES[kind] + (" or null" if optional else "")
        raise ConfigError(setting, value, expected, f"{setting}=<{_TYPE_NAMES[kind]}>", number=kind in (int, float))


def check_dataclass_types(instance: Any, *, prefix: str) -> None:
    """Every primitive-typed field of a dataclass instance holds a value of its type."""
    hints = typing.get_type_hints(type(instance))
    for field in dataclasses.fields(instance):
        check_value_type(f"{prefix}{field.name}", getattr(instance, field.name), hints[field.name])


def require(module: str, feature: str) -> None:
    """A clear error when an optional dependency of the ``export`` extra is missing."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise UserModuleNotFoundError(
            f"{feature} needs the package {module!r}: pip install 'linzoo[export]' (or pip install {module})."
        )
