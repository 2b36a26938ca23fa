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

__all__ = ["CONFIG_KEY", "existing_checkpoint", "load_task", "read_checkpoint"]


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


# --------------------------------------------------------------- loading a trained net
# linzoo.load / linzoo.create_model(checkpoint_path=...) / Task.load_from_checkpoint.
# Three kinds of file hold a linzoo net: a Lightning checkpoint (.ckpt, the task's
# weights under "net."), a run directory (its best checkpoint, else last.ckpt), and an
# exported .safetensors file (the plain net's weights, the config in its metadata).

SAFETENSORS_CONFIG_KEY = "linzoo_config"  # JSON of the build config, in the safetensors metadata
NET_PREFIX = "net."


def checkpoint_in(path: str | Path) -> Path:
    """The weights file ``path`` names: a file as it is; a run directory's best checkpoint
    (``checkpoints/epoch_*.ckpt``, the newest), else its ``checkpoints/last.ckpt``."""
    path = Path(path)
    if path.is_file():
        return path
    if path.is_dir():
        folder = path / "checkpoints" if (path / "checkpoints").is_dir() else path
        best = sorted(folder.glob("epoch_*.ckpt"), key=lambda file: file.stat().st_mtime)
        if best:
            return best[-1]
        if (folder / "last.ckpt").is_file():
            return folder / "last.ckpt"
        raise FileNotFoundError(
            f"The run directory {path} holds no checkpoint (looked for checkpoints/epoch_*.ckpt and "
            "checkpoints/last.ckpt); point at a .ckpt or .safetensors file, or a finished training run."
        )
    raise FileNotFoundError(
        f"Nothing at {path}. Give a checkpoint (<run dir>/checkpoints/last.ckpt), a run directory "
        "(outputs/train/<date_time>) or an exported .safetensors file."
    )


def read_net(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``(state_dict of the plain net, build config)`` from a .ckpt, a run directory or a .safetensors file.

    The build config is ``{"model": <task config with "net">, "data": ..., "precision": ...}``,
    what ``scripts/train.py`` saved. Keys of compiled nets (``_orig_mod.``) are made plain.
    """
    file = checkpoint_in(path)
    if file.suffix == ".safetensors":
        return read_safetensors(file)
    try:
        checkpoint = torch.load(file, map_location="cpu", weights_only=False)
    except (RuntimeError, ValueError, OSError, EOFError, pickle.UnpicklingError) as error:  # not a checkpoint
        raise ValueError(
            f"{file} is not a PyTorch checkpoint ({type(error).__name__}: {error}). "
            "Give a .ckpt written by scripts/train.py, a run directory or an exported .safetensors file."
        ) from error
    if not isinstance(checkpoint, dict) or CONFIG_KEY not in checkpoint or "state_dict" not in checkpoint:
        raise ValueError(
            f"{file} is not a linzoo checkpoint (no 'state_dict' and '{CONFIG_KEY}' entries), so the model "
            "cannot be rebuilt from it; use a checkpoint written by scripts/train.py."
        )
    state = {
        key[len(NET_PREFIX) :].replace("_orig_mod.", ""): value
        for key, value in checkpoint["state_dict"].items()
        if key.startswith(NET_PREFIX)
    }
    return state, checkpoint[CONFIG_KEY]


def read_safetensors(file: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Weights and build config of a file written by ``scripts/export.py format=safetensors``."""
    import json

    from linzoo.quantize import require

    require("safetensors", f"Loading {file}")
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(file), framework="pt", device="cpu") as handle:
            metadata = handle.metadata() or {}
            state = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118 (safe_open is no dict)
    except SafetensorError as error:
        raise ValueError(f"{file} is not a readable safetensors file: {error}") from error
    if SAFETENSORS_CONFIG_KEY not in metadata:
        raise ValueError(
            f"{file} holds no '{SAFETENSORS_CONFIG_KEY}' metadata, so the net cannot be rebuilt; "
            "export it with scripts/export.py format=safetensors."
        )
    return state, json.loads(metadata[SAFETENSORS_CONFIG_KEY])


def build_net(net_config: dict[str, Any]) -> torch.nn.Module:
    """The plain net of a saved net config ``{"_target_": "linzoo.models.MLP", **kwargs}`` (no Hydra)."""
    import importlib

    module_name, _, class_name = net_config["_target_"].rpartition(".")
    net_class = getattr(importlib.import_module(module_name), class_name)
    return net_class(**{key: value for key, value in net_config.items() if not key.startswith("_")})


def net_config_of(build_config: dict[str, Any]) -> dict[str, Any]:
    """The net part of a build config (the task config's ``net``)."""
    return build_config["model"]["net"]


def model_name_of(net_config: dict[str, Any]) -> str:
    """Registry name of a saved net config (``"mlp"`` for ``linzoo.models.MLP``)."""
    import importlib

    from linzoo.models.registry import name_of

    module_name, _, class_name = net_config["_target_"].rpartition(".")
    return name_of(getattr(importlib.import_module(module_name), class_name))


def load(path: str | Path, *, device: str | torch.device = "cpu") -> torch.nn.Module:
    """The trained plain net of a .ckpt, a run directory or a .safetensors file, in eval mode on ``device``."""
    state, build_config = read_net(path)
    net = build_net(net_config_of(build_config))
    net.load_state_dict(state)
    return net.to(device).eval()


def create_model_from_checkpoint(name: str, checkpoint_path: str | Path, **kwargs: Any) -> torch.nn.Module:
    """``create_model(name, **kwargs)`` with the weights of ``checkpoint_path`` (timm's way), in eval mode.

    A checkpoint of another model, or of other sizes, is a ``ValueError`` that names both configurations.
    """
    from linzoo.models.registry import create_model

    state, build_config = read_net(checkpoint_path)
    saved_config = net_config_of(build_config)
    saved_name = model_name_of(saved_config)
    saved_kwargs = _readable(saved_config)

    def mismatch(reason: str) -> ValueError:
        return ValueError(
            f"{checkpoint_path} does not fit create_model({name!r}, **{kwargs}): {reason}.\n"
            f"  asked for:   {name} {kwargs}\n  checkpoint:  {saved_name} {saved_kwargs}\n"
            f"Use linzoo.load({str(checkpoint_path)!r}), which rebuilds the checkpoint's own model, "
            f"or pass the checkpoint's arguments to create_model."
        )

    if saved_name != name:
        raise mismatch(f"it holds a {saved_name!r} model, not {name!r}")
    model = create_model(name, **kwargs)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    resized = sorted(key for key in set(expected) & set(state) if expected[key].shape != state[key].shape)
    if missing or unexpected or resized:
        details = [f"{len(missing)} missing", f"{len(unexpected)} unexpected", f"{len(resized)} of other shape"]
        example = (resized or missing or unexpected)[0]
        shapes = f" (e.g. {example})"
        if resized:
            shapes = f" (e.g. {example}: {tuple(expected[example].shape)} here, {tuple(state[example].shape)} saved)"
        raise mismatch(f"the weights differ: {', '.join(details)} tensors{shapes}")
    model.load_state_dict(state)
    return model.eval()


def _readable(net_config: dict[str, Any]) -> dict[str, Any]:
    """The net's keyword arguments, its ``linear`` spec cut to the fields that differ from the defaults."""
    from dataclasses import asdict

    from linzoo.layers.linear import as_linear_spec

    kwargs = {key: value for key, value in net_config.items() if not key.startswith("_")}
    if isinstance(kwargs.get("linear"), dict):
        defaults = asdict(as_linear_spec(None))
        spec = asdict(as_linear_spec(kwargs["linear"]))
        kwargs["linear"] = {key: value for key, value in spec.items() if value != defaults[key]}
    return kwargs


def load_task_for(task_class: type[Task], checkpoint_path: str | Path, *, map_location: Any = None) -> Task:
    """``task_class.load_from_checkpoint(path)``: the task rebuilt from its saved config, weights loaded."""
    task, _ = load_task(checkpoint_in(checkpoint_path))
    if not isinstance(task, task_class):
        raise ValueError(
            f"{checkpoint_path} holds a {type(task).__name__} task, not a {task_class.__name__}; "
            f"load it with {type(task).__name__}.load_from_checkpoint or linzoo.load."
        )
    return task.to(map_location) if map_location is not None else task
