"""Finding a checkpoint, and reading one: the only ``torch.load`` of a checkpoint in linzoo."""

from __future__ import annotations

import json
import pickle
import re
from pathlib import Path
from typing import Any

import torch

from linzoo.common.errors import UserFileNotFoundError, UserValueError

__all__ = ["ALLOWED_GLOBALS", "checkpoint_in", "existing_checkpoint", "load_weights_only", "read_checkpoint"]


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


# Types a checkpoint may hold beyond what ``torch.load(weights_only=True)`` reads by default
# (tensors, storages, dtypes, devices, OrderedDict, and Python's plain containers and scalars).
# linzoo's own checkpoints hold none: the config is a plain dict (OmegaConf.to_container),
# hyperparameters are not saved, and the RNG state is kept as tensors, ints and tuples
# (linzoo/callbacks/rng_state.py). Checked on every model and on tests/data/before_issue10 with
# ``torch.serialization.get_unsafe_globals_in_checkpoint``: empty. A type added here is one a
# hostile file may then construct, so add one only with a test that needs it.
ALLOWED_GLOBALS: tuple[Any, ...] = ()

_UNSUPPORTED_GLOBAL = re.compile(r"Unsupported global: GLOBAL ([\w.]+)")


def load_weights_only(path: str | Path, *, map_location: Any = "cpu") -> Any:
    """``torch.load(path, weights_only=True)`` with :data:`ALLOWED_GLOBALS` allowed for this call
    only: a pickled function or class never runs. A file that names another type is one line
    (:class:`UserValueError`) naming the file and the type; so is a file torch cannot read."""
    try:
        with torch.serialization.safe_globals(list(ALLOWED_GLOBALS)):
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        found = _UNSUPPORTED_GLOBAL.search(str(error))
        if found is None and "weights_only" in str(error):
            found = _first_unsafe_global(path)
        if found is not None:
            name = found if isinstance(found, str) else found.group(1)
            raise UserValueError(
                f"{path} is refused: it holds a {name}, which is not a tensor or a plain value, and linzoo "
                "loads files with torch.load(weights_only=True), never running code from them. Use a .ckpt "
                "written by scripts/train.py or a .safetensors file written by scripts/export.py."
            ) from None
        raise _unreadable(path, error) from None
    except Exception as error:  # noqa: BLE001 (the weights-only unpickler raises KeyError, IndexError... on garbage)
        raise _unreadable(path, error) from None


def _first_unsafe_global(path: str | Path) -> str | None:
    """The first type the pickle of ``path`` names that is not allowed (read from its opcodes, run never)."""
    try:
        unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
    except Exception:  # noqa: BLE001 (only for the message: the file is refused either way)
        return None
    return unsafe[0] if unsafe else None


def _unreadable(path: str | Path, error: BaseException) -> UserValueError:
    text = str(error).strip()
    if text.startswith("Weights only load failed"):  # torch's advice to retry unsafely is not ours to give
        found = re.search(r"WeightsUnpickler error: ([^\n]+)", text)
        text = found.group(1) if found else "not a file torch.load(weights_only=True) can read"
    if isinstance(error, EOFError):
        text = "the file ends early"
    elif not isinstance(error, (pickle.UnpicklingError, RuntimeError, OSError)):
        text = "its bytes are not a PyTorch checkpoint"  # the unpickler's KeyError '101' on a text file says nothing
    reason = text.splitlines()[0] if text else type(error).__name__
    return UserValueError(
        f"ckpt_path={path} is not a readable checkpoint (torch.load: {reason}); it may be another kind "
        "of file, or truncated. Fix: point it at a .ckpt written by scripts/train.py, such as "
        "<run dir>/checkpoints/last.ckpt."
    )


def read_checkpoint(ckpt_path: str | Path) -> dict[str, Any]:
    """The checkpoint dict of ``ckpt_path``, on CPU, read by :func:`load_weights_only`: tensors
    and plain values only, never code."""
    path = existing_checkpoint(ckpt_path)
    checkpoint = load_weights_only(path)
    if not isinstance(checkpoint, dict):
        raise UserValueError(
            f"ckpt_path={ckpt_path} holds a {type(checkpoint).__name__}, not a checkpoint. Fix: point it at a "
            ".ckpt written by scripts/train.py, such as <run dir>/checkpoints/last.ckpt."
        )
    return checkpoint
