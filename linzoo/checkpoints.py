"""Checkpoints: the one place that reads them and rebuilds a trained task or net.

train, eval, sample (and predict/export) all go through here. A linzoo checkpoint is a
Lightning checkpoint plus ``checkpoint[CONFIG_KEY] = {"model": ..., "data": ...,
"precision": ...}``, the resolved config that rebuilds the task with nothing else.
"""

from __future__ import annotations

import logging
import pickle
from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate

from linzoo.tasks.base import CONFIG_KEY, Task

log = logging.getLogger(__name__)

__all__ = ["CONFIG_KEY", "existing_checkpoint", "load_task", "model_config_for_resume", "read_checkpoint"]


def existing_checkpoint(ckpt_path: str | Path | None) -> str | None:
    """``ckpt_path`` if it names a file; a clear error if it names nothing."""
    if ckpt_path is None:
        return None
    path = Path(ckpt_path)
    if not path.is_file():
        raise FileNotFoundError(
            f"No checkpoint at ckpt_path={ckpt_path}. Point it at a file such as "
            "<run dir>/checkpoints/last.ckpt (runs live under outputs/train/ by default)."
        )
    return str(path)


def read_checkpoint(ckpt_path: str | Path) -> dict[str, Any]:
    """The checkpoint dict of ``ckpt_path``, on CPU.

    Lightning checkpoints hold more than tensors (``weights_only=False``): load only
    checkpoints you trust.
    """
    path = existing_checkpoint(ckpt_path)
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, UnicodeDecodeError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(
            f"ckpt_path={ckpt_path} is not a readable checkpoint (torch.load: {reason}); it may be another kind "
            "of file, or truncated. Fix: point it at a .ckpt written by scripts/train.py, such as "
            "<run dir>/checkpoints/last.ckpt."
        ) from error
    if not isinstance(checkpoint, dict):
        raise ValueError(
            f"ckpt_path={ckpt_path} holds a {type(checkpoint).__name__}, not a checkpoint. Fix: point it at a "
            ".ckpt written by scripts/train.py, such as <run dir>/checkpoints/last.ckpt."
        )
    return checkpoint


def load_task(ckpt_path: str | Path) -> tuple[Task, dict[str, Any]]:
    """Rebuild the task (net included) saved by ``scripts/train.py`` and load its weights.

    Returns the task in eval mode on CPU and the build config saved in the checkpoint
    (``{"model": ..., "data": ..., "precision": ...}``). The net is never compiled here;
    checkpoints of compiled runs load all the same, their keys being plain.
    """
    checkpoint = read_checkpoint(ckpt_path)
    build_config = checkpoint.get(CONFIG_KEY)
    if build_config is None:
        raise ValueError(
            f"{ckpt_path} has no '{CONFIG_KEY}' entry, so the model cannot be rebuilt from it; "
            "use a checkpoint written by scripts/train.py."
        )
    task: Task = instantiate({**build_config["model"], "compile": False})
    task.load_state_dict(checkpoint["state_dict"])
    task.build_config = build_config
    return task.eval(), build_config


def model_config_for_resume(ckpt_path: str, *, fallback: dict[str, Any], compile: bool) -> dict[str, Any]:
    """The model config saved in the checkpoint, so a resumed run rebuilds the same net."""
    saved = read_checkpoint(ckpt_path).get(CONFIG_KEY)
    if saved is None:
        log.warning("%s holds no linzoo config; resuming with the model config given now.", ckpt_path)
        return fallback
    log.info("Resuming: the model is rebuilt from the config saved in %s.", ckpt_path)
    return {**saved["model"], "compile": compile}
