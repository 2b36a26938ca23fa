"""Checkpoints: the one place that reads them and rebuilds a trained task or net.

train, eval, sample (and predict/export) all go through here. A linzoo checkpoint is a
Lightning checkpoint plus ``checkpoint[CONFIG_KEY] = {"model": ..., "data": ...,
"precision": ...}``, the resolved config that rebuilds the task with nothing else.
"""

from __future__ import annotations

import logging
import os
import pickle
from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate
from lightning.pytorch.plugins.io import TorchCheckpointIO

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


# ----------------------------------------------------------------------------- writing
# A checkpoint is written to a temp file in its own directory, fsynced, then renamed over
# the target: a reader sees the old file or the new one, never a part. Temp names are
# ``.<name>.<pid>.tmp`` (hidden, and not ``*.ckpt``): a temp file left by SIGKILL is never
# taken for a checkpoint, and the next save into that directory removes it.
TEMP_SUFFIX = ".tmp"


def temp_checkpoint_path(path: Path) -> Path:
    """Where ``path`` is written before the rename: same directory, hidden, ``.tmp``."""
    return path.with_name(f".{path.name}.{os.getpid()}{TEMP_SUFFIX}")


def remove_stale_temp_files(directory: str | Path) -> list[Path]:
    """Delete temp checkpoint files that killed writers left in ``directory``; returns them."""
    directory = Path(directory)
    stale = sorted(directory.glob(f".*.ckpt.*{TEMP_SUFFIX}")) if directory.is_dir() else []
    for path in stale:
        path.unlink(missing_ok=True)
    if stale:
        log.info("Removed %d unfinished checkpoint temp file(s) from %s.", len(stale), directory)
    return stale


def atomic_save(checkpoint: dict[str, Any], path: str | Path) -> Path:
    """``torch.save(checkpoint, path)`` atomically on a local filesystem.

    Writes ``.<name>.<pid>.tmp`` next to ``path`` (never in ``$TMPDIR``), flushes and fsyncs
    it, ``os.replace``s it over ``path`` and fsyncs the directory. On any failure the temp
    file is removed and the previous ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temp_files(path.parent)
    temporary = temp_checkpoint_path(path)
    try:
        with open(temporary, "wb") as file:
            torch.save(checkpoint, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # make the rename itself durable
    finally:
        os.close(directory)
    return path


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's ``TorchCheckpointIO`` with :func:`atomic_save` for local paths.

    Lightning 2.6 saves through fsspec, which on some setups goes through a temp file in
    ``$TMPDIR`` and then a copy that truncates the target first: a kill during the copy
    leaves a truncated ``last.ckpt``. Remote URLs (``s3://``...) keep Lightning's path.
    Pass it as ``Trainer(plugins=[AtomicCheckpointIO()])``; linzoo.train does.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        if storage_options is not None or "://" in str(path):
            super().save_checkpoint(checkpoint, path, storage_options=storage_options)
            return
        atomic_save(checkpoint, path)
