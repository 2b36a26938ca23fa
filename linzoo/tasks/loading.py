"""Rebuilding a trained task from its checkpoint: ``load_task`` and ``Task.load_from_checkpoint``.

The task config saved in a checkpoint (``{"_target_": "linzoo.tasks.Classifier", "net": {...},
"optimizer": {"_target_": "torch.optim.AdamW", "_partial_": true, ...}, ...}``) is rebuilt from
allow-lists, without Hydra: the task from linzoo's tasks, the net from the model registry, the
optimizer from ``torch.optim``, the schedule from ``linzoo.tasks.optim``. A saved ``_target_``
is looked up, never imported. Every subclass of ``Task`` registers itself here when it is defined
(``Task.__init_subclass__``), so this module needs no task class and imports nothing above it.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from linzoo.checkpoint import CONFIG_KEY, build_net, checkpoint_in, read_checkpoint
from linzoo.checkpoint.nets import check_build_config, from_file, load_weights_into
from linzoo.common.errors import UserValueError
from linzoo.data.rebuild import DATAMODULES
from linzoo.models.registry import model_class, name_for_target
from linzoo.tasks import optim

if TYPE_CHECKING:
    from linzoo.tasks.base import Task

__all__ = ["build_task", "known_target", "load_task", "load_task_for", "register_task"]

TASKS: dict[str, type[Task]] = {}  # class path a config names -> task class


def register_task(task_class: type[Task]) -> None:
    """Let saved configs name ``task_class``: by its module path, and by ``linzoo.tasks.<Name>``
    for linzoo's own tasks (what the configs write)."""
    TASKS[f"{task_class.__module__}.{task_class.__qualname__}"] = task_class
    if task_class.__module__.startswith("linzoo.tasks."):
        TASKS[f"linzoo.tasks.{task_class.__name__}"] = task_class


SCHEDULES = {f"linzoo.tasks.optim.{name}": getattr(optim, name) for name in ("cosine", "one_cycle")}


def _optimizer_class(target: str) -> type[torch.optim.Optimizer] | None:
    """``torch.optim.<Name>`` when it names an optimizer class of torch, else None."""
    module, _, name = target.rpartition(".")
    found = getattr(torch.optim, name, None) if module == "torch.optim" else None
    return found if isinstance(found, type) and issubclass(found, torch.optim.Optimizer) else None


def known_target(target: str) -> Any:
    """The class or function a saved ``_target_`` names, when it is one linzoo rebuilds (a task,
    model, data module, torch optimizer or linzoo schedule), else None. Nothing is imported."""
    if target in TASKS:
        return TASKS[target]
    if target in SCHEDULES:
        return SCHEDULES[target]
    if target in DATAMODULES:
        return DATAMODULES[target]
    try:
        return model_class(name_for_target(target))
    except UserValueError:
        return _optimizer_class(target)


def _factory(config: dict[str, Any] | None, *, what: str) -> Any:
    """The ``functools.partial`` that a saved ``_partial_: true`` optimizer or schedule config describes."""
    if config is None:
        return None
    target = str(config.get("_target_"))
    function = _optimizer_class(target) if what == "optimizer" else SCHEDULES.get(target)
    if function is None:
        allowed = "torch.optim.<Optimizer>" if what == "optimizer" else ", ".join(SCHEDULES)
        raise UserValueError(f"The saved {what} _target_={target!r} is not one linzoo rebuilds; expected {allowed}.")
    return functools.partial(function, **{key: value for key, value in config.items() if not key.startswith("_")})


def build_task(task_config: dict[str, Any]) -> Task:
    """The task (net included, not compiled) that a saved task config describes."""
    target = str(task_config.get("_target_"))
    if target not in TASKS:
        raise UserValueError(
            f"The saved task _target_={target!r} is not a linzoo task; expected one of "
            f"{', '.join(sorted({f'linzoo.tasks.{task.__name__}' for task in TASKS.values()}))}."
        )
    options = {key: value for key, value in task_config.items() if not key.startswith("_")}
    options.update(
        net=build_net(task_config["net"]),
        optimizer=_factory(task_config.get("optimizer"), what="optimizer"),
        scheduler=_factory(task_config.get("scheduler"), what="scheduler"),
        compile=False,
    )
    return TASKS[target](**options)


def load_task(ckpt_path: str | Path) -> tuple[Task, dict[str, Any]]:
    """Rebuild the task (net included) saved by ``scripts/train.py`` and load its weights.

    Returns the task in eval mode on CPU and the build config saved in the checkpoint
    (``{"model": ..., "data": ..., "precision": ...}``). The net is never compiled here;
    checkpoints of compiled runs load all the same, their keys being plain.
    """
    checkpoint = read_checkpoint(ckpt_path)
    build_config = checkpoint.get(CONFIG_KEY)
    if build_config is None:
        raise UserValueError(
            f"{ckpt_path} has no '{CONFIG_KEY}' entry, so the model cannot be rebuilt from it; "
            "use a checkpoint written by scripts/train.py."
        )
    check_build_config(build_config, ckpt_path)
    if not isinstance(build_config.get("data"), dict) or not isinstance(checkpoint.get("state_dict"), dict):
        raise UserValueError(
            f"{ckpt_path} holds no data config or no state_dict, so the task cannot be rebuilt from it; "
            "use a checkpoint written by scripts/train.py."
        )
    with from_file(ckpt_path):
        task = build_task(build_config["model"])
    load_weights_into(task, checkpoint["state_dict"], ckpt_path)
    task.build_config = build_config
    return task.eval(), build_config


def load_task_for(task_class: type[Task], checkpoint_path: str | Path, *, map_location: Any = None) -> Task:
    """``task_class.load_from_checkpoint(path)``: the task rebuilt from its saved config, weights loaded."""
    task, _ = load_task(checkpoint_in(checkpoint_path))
    if not isinstance(task, task_class):
        raise UserValueError(
            f"{checkpoint_path} holds a {type(task).__name__} task, not a {task_class.__name__}; "
            f"load it with {type(task).__name__}.load_from_checkpoint or linzoo.load."
        )
    return task.to(map_location) if map_location is not None else task
