"""Resuming a run: the config saved in the checkpoint must be the config that now runs.

Lightning restores the weights, optimizer (its learning rate included), schedule and loop
state of a checkpoint; a changed net, optimizer or data setting would either be ignored
(the old values come back with the state) or not fit the saved state at all. So resuming
compares the checkpoint's build config with the one given now and refuses any difference
that would change what is trained, naming the keys. What may change on resume: every
``trainer.*`` key (e.g. ``trainer.max_epochs`` to train longer; a schedule is then
stretched to the new length from the step reached), ``compile``, and the data keys of
:data:`CHANGEABLE_DATA_KEYS`, which only say where or how fast the same data is read.
"""

from __future__ import annotations

import inspect
import logging
from typing import Any

from linzoo.checkpoint import CONFIG_KEY, read_checkpoint
from linzoo.checkpoint.nets import check_finite
from linzoo.common.errors import UserValueError
from linzoo.common.nested import flatten
from linzoo.tasks.loading import known_target

log = logging.getLogger(__name__)

__all__ = ["CHANGEABLE_DATA_KEYS", "ResumeConfigError", "check_resume_config", "config_differences"]

CHANGEABLE_DATA_KEYS = ("root", "download", "num_workers", "pin_memory", "eval_batch_size", "on_device")
CHANGEABLE_MODEL_KEYS = ("compile",)
# Where a key of the build config comes from on the command line.
COMMAND_LINE_PREFIXES = (
    ("model.optimizer.", "optimizer."),
    ("model.scheduler.", "scheduler."),
    ("model.net.linear.", "linear."),
)


class ResumeConfigError(UserValueError):
    """The config given for a resumed run differs from the checkpoint's in a key that matters."""


def command_line_key(key: str) -> str:
    """The override a user types for a build-config key: ``model.optimizer.lr`` -> ``optimizer.lr``."""
    for internal, external in COMMAND_LINE_PREFIXES:
        if key.startswith(internal):
            return external + key[len(internal) :]
    return key


def keyword_default(config: dict[str, Any], key: str) -> Any:
    """The default of the keyword argument that ``key`` (``"data.augment"``) sets in the
    nearest enclosing ``_target_`` of ``config``, as a config holds it (tuples as lists);
    ``inspect.Parameter.empty`` when unknown."""
    *path, name = key.split(".")
    while path:
        node: Any = config
        for part in path:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict) and isinstance(node.get("_target_"), str):
            target = known_target(node["_target_"])  # looked up in linzoo's allow-lists, never imported
            try:
                parameter = inspect.signature(target).parameters.get(name) if target is not None else None
            except (TypeError, ValueError):
                return inspect.Parameter.empty
            if parameter is None:
                return inspect.Parameter.empty
            default = parameter.default  # a tuple default is a list in a config
            return list(default) if isinstance(default, tuple) else default
        name = f"{path.pop()}.{name}"
    return inspect.Parameter.empty


def config_differences(saved: dict[str, Any], current: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """``(key, saved value, current value)`` for every key of the build configs
    (``{"model": ..., "data": ..., "precision": ...}``) that differs and may not change.

    A key the checkpoint predates (an option added to linzoo after it was written) is no
    difference while it holds its default: the run was trained with that behaviour.
    """
    ignored = {f"model.{key}" for key in CHANGEABLE_MODEL_KEYS} | {f"data.{key}" for key in CHANGEABLE_DATA_KEYS}
    ignored.add("data_source")  # a record of the data the run read (linzoo.tasks.base), not a setting
    saved_flat, current_flat = flatten(saved), flatten(current)
    differences = []
    for key in sorted(set(saved_flat) | set(current_flat)):
        if key in ignored or key.startswith(("data_identity.", "init_from.")):  # data_identity: checked by
            # linzoo.run.same_data; init_from: where the weights came from, a record carried over (not a setting)
            continue
        before, now = saved_flat.get(key, "<absent>"), current_flat.get(key, "<absent>")
        if key not in saved_flat and (now == keyword_default(current, key) or _empty_role_slot(key, now)):
            continue
        if before != now:
            differences.append((command_line_key(key), before, now))
    return differences


def _empty_role_slot(key: str, value: Any) -> bool:
    """A null per-role override (``model.net.linear.roles.q.init: null``): it inherits, so a
    checkpoint written before that role's slot existed (the sub-roles q, k, v) was trained the same.
    Likewise a null factory option added later (``linear.mup``, ``linear.width``: SP, set by the model)
    and a null ``optimizer.roles.<role>.lr_mult`` (x1)."""
    return value is None and any(part in f".{key}" for part in (".linear.roles.", ".linear.", ".optimizer.roles."))


def check_resume_config(saved: dict[str, Any], current: dict[str, Any], *, ckpt_path: str) -> None:
    """Raise :class:`ResumeConfigError` naming every differing key (checkpoint -> now)."""
    differences = config_differences(saved, current)
    if not differences:
        return
    shown = "; ".join(f"{key}: {before!r} -> {now!r}" for key, before, now in differences[:12])
    if len(differences) > 12:
        shown += f"; and {len(differences) - 12} more"
    raise ResumeConfigError(
        f"ckpt_path={ckpt_path} was trained with another config than the one given now, and resuming restores "
        f"the checkpoint's net, optimizer state and data order. Differing keys (checkpoint -> now): {shown}. "
        "Fix: resume with the run's own settings (drop those overrides; trainer.*, compile, data.root, "
        "data.num_workers and data.eval_batch_size may change), or start a new run without ckpt_path."
    )


def check_resumable(ckpt_path: str, build_config: dict[str, Any]) -> dict[str, Any] | None:
    """Refuse to resume ``ckpt_path`` with a build config that differs from the one it was trained
    with; returns the saved build config (None when the checkpoint holds none)."""
    checkpoint = read_checkpoint(ckpt_path)
    check_finite(checkpoint.get("state_dict") or {}, ckpt_path)  # NaN weights: a broken file, not a divergence
    saved = checkpoint.get(CONFIG_KEY)
    if saved is None:
        log.warning("%s holds no linzoo config; resuming with the config given now.", ckpt_path)
        return None
    check_resume_config(saved, build_config, ckpt_path=ckpt_path)
    return saved
