"""Rebuilding a trained plain net: ``linzoo.load`` and ``create_model(checkpoint_path=)``.

Three kinds of file hold a linzoo net: a Lightning checkpoint (.ckpt, the task's weights
under ``net.``), a run directory (its best checkpoint, else last.ckpt), and an exported
.safetensors file (the plain net's weights, the config in its metadata). The net is rebuilt
from linzoo's model registry: a saved ``_target_`` is matched against the registered classes,
never imported.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from linzoo.checkpoint.files import checkpoint_in, read_checkpoint
from linzoo.checkpoint.format import CONFIG_KEY, NET_PREFIX
from linzoo.checkpoint.safetensors import read_safetensors
from linzoo.common.errors import UserValueError
from linzoo.layers.linear import as_linear_spec
from linzoo.models.registry import create_model, name_for_target

__all__ = ["build_net", "create_model_from_checkpoint", "load", "model_name_of", "net_config_of", "read_net"]


def read_net(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``(state_dict of the plain net, build config)`` from a .ckpt, a run directory or a .safetensors file.

    The build config is ``{"model": <task config with "net">, "data": ..., "precision": ...}``,
    what ``scripts/train.py`` saved. Keys of compiled nets (``_orig_mod.``) are made plain.
    """
    file = checkpoint_in(path)
    if file.suffix == ".safetensors":
        return read_safetensors(file)
    checkpoint = read_checkpoint(file)
    if CONFIG_KEY not in checkpoint or "state_dict" not in checkpoint:
        raise UserValueError(
            f"{file} is not a linzoo checkpoint (no 'state_dict' and '{CONFIG_KEY}' entries), so the model "
            "cannot be rebuilt from it; use a checkpoint written by scripts/train.py."
        )
    state = {
        key[len(NET_PREFIX) :].replace("_orig_mod.", ""): value
        for key, value in checkpoint["state_dict"].items()
        if key.startswith(NET_PREFIX)
    }
    return state, checkpoint[CONFIG_KEY]


def net_config_of(build_config: dict[str, Any]) -> dict[str, Any]:
    """The net part of a build config (the task config's ``net``)."""
    return build_config["model"]["net"]


def model_name_of(net_config: dict[str, Any]) -> str:
    """Registry name of a saved net config (``"mlp"`` for ``{"_target_": "linzoo.models.MLP", ...}``)."""
    return name_for_target(str(net_config.get("_target_")))


def build_net(net_config: dict[str, Any]) -> torch.nn.Module:
    """The plain net of a saved net config ``{"_target_": "linzoo.models.MLP", **kwargs}``, from the registry."""
    kwargs = {key: value for key, value in net_config.items() if not key.startswith("_")}
    return create_model(model_name_of(net_config), **kwargs)


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
    state, build_config = read_net(checkpoint_path)
    saved_config = net_config_of(build_config)
    saved_name = model_name_of(saved_config)
    saved_kwargs = _readable(saved_config)

    def mismatch(reason: str) -> UserValueError:
        return UserValueError(
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
    kwargs = {key: value for key, value in net_config.items() if not key.startswith("_")}
    if isinstance(kwargs.get("linear"), dict):
        defaults = asdict(as_linear_spec(None))
        spec = asdict(as_linear_spec(kwargs["linear"]))
        kwargs["linear"] = {key: value for key, value in spec.items() if value != defaults[key]}
    return kwargs
