"""Finding a checkpoint, and reading one: the only ``torch.load`` of a checkpoint in linzoo."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import torch

from linzoo.common.errors import UserFileNotFoundError, UserValueError

__all__ = ["checkpoint_in", "existing_checkpoint", "read_checkpoint"]


def existing_checkpoint(ckpt_path: str | Path | None) -> str | None:
    """``ckpt_path`` if it names a file; a clear error if it names nothing."""
    if ckpt_path is None:
        return None
    path = Path(ckpt_path)
    if not path.is_file():
        raise UserFileNotFoundError(
            f"No checkpoint at ckpt_path={ckpt_path}. Point it at a file such as "
            "<run dir>/checkpoints/last.ckpt (runs live under outputs/train/ by default)."
        )
    return str(path)


def checkpoint_in(path: str | Path) -> Path:
    """The weights file ``path`` names: a file as it is; for a run directory, the checkpoint its
    ``metrics.json`` names: ``best_checkpoint``, else ``weights`` (the checkpoint the run kept,
    e.g. ``last.ckpt`` after ``callbacks=none``). metrics.json stores absolute paths: a run
    directory that was moved or copied is matched by the file name inside its ``checkpoints/``.
    Only without a metrics.json (a run still training, or killed) or when it names no file:
    the newest ``checkpoints/epoch_*.ckpt`` (by modification time), else ``checkpoints/last.ckpt``."""
    path = Path(path)
    if path.is_file():
        return path
    if path.is_dir():
        folder = path / "checkpoints" if (path / "checkpoints").is_dir() else path
        named = _named_in_metrics(path, folder)
        if named is not None:
            return named
        best = sorted(folder.glob("epoch_*.ckpt"), key=lambda file: file.stat().st_mtime)
        if best:
            return best[-1]
        if (folder / "last.ckpt").is_file():
            return folder / "last.ckpt"
        raise UserFileNotFoundError(
            f"The run directory {path} holds no checkpoint (looked for checkpoints/epoch_*.ckpt and "
            "checkpoints/last.ckpt); point at a .ckpt or .safetensors file, or a finished training run."
        )
    raise UserFileNotFoundError(
        f"Nothing at {path}. Give a checkpoint (<run dir>/checkpoints/last.ckpt), a run directory "
        "(outputs/train/<date_time>) or an exported .safetensors file."
    )


def _named_in_metrics(run_dir: Path, folder: Path) -> Path | None:
    """The checkpoint file ``<run_dir>/metrics.json`` names (see :func:`checkpoint_in`), or None."""
    try:
        metrics = json.loads((run_dir / "metrics.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(metrics, dict):
        return None
    for key in ("best_checkpoint", "weights"):
        name = metrics.get(key)
        if not isinstance(name, str) or not name:
            continue
        candidate = folder / Path(name).name  # the same file, wherever the run directory now lives
        if candidate.is_file():
            return candidate
    return None


def read_checkpoint(ckpt_path: str | Path) -> dict[str, Any]:
    """The checkpoint dict of ``ckpt_path``, on CPU.

    Lightning checkpoints hold more than tensors (``weights_only=False``): load only
    checkpoints you trust.
    """
    path = existing_checkpoint(ckpt_path)
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, UnicodeDecodeError, OSError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UserValueError(
            f"ckpt_path={ckpt_path} is not a readable checkpoint (torch.load: {reason}); it may be another kind "
            "of file, or truncated. Fix: point it at a .ckpt written by scripts/train.py, such as "
            "<run dir>/checkpoints/last.ckpt."
        ) from error
    if not isinstance(checkpoint, dict):
        raise UserValueError(
            f"ckpt_path={ckpt_path} holds a {type(checkpoint).__name__}, not a checkpoint. Fix: point it at a "
            ".ckpt written by scripts/train.py, such as <run dir>/checkpoints/last.ckpt."
        )
    return checkpoint
