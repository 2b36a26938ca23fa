"""Rebuilding a trained plain net: ``linzoo.load`` and ``create_model(checkpoint_path=)``.

Three kinds of file hold a linzoo net: a Lightning checkpoint (.ckpt, the task's weights
under ``net.``), a run directory (its best checkpoint, else last.ckpt), and an exported
.safetensors file (the plain net's weights, the config in its metadata). The net is rebuilt
from linzoo's model registry: a saved ``_target_`` is matched against the registered classes,
never imported.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
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

__all__ = [
    "build_net",
    "check_build_config",
    "check_finite",
    "check_plain",
    "create_model_from_checkpoint",
    "from_file",
    "load",
    "load_weights_into",
    "model_name_of",
    "net_config_of",
    "read_net",
    "readable_kwargs",
    "rebuild_net",
]

PLAIN_SCALARS = (int, float, str, bool, type(None))


def read_net(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``(state_dict of the plain net, build config)`` from a .ckpt, a run directory or a .safetensors file.

    The build config is ``{"model": <task config with "net">, "data": ..., "precision": ...}``,
    what ``scripts/train.py`` saved. Keys of compiled nets (``_orig_mod.``) are made plain.
    """
    file = checkpoint_in(path)
    if file.suffix == ".safetensors":
        state, build_config = read_safetensors(file)
        check_build_config(build_config, file)
        return state, build_config
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
    check_build_config(checkpoint[CONFIG_KEY], file)
    return state, checkpoint[CONFIG_KEY]


def check_build_config(build_config: Any, file: str | Path) -> None:
    """Refuse, naming ``file``, a saved build config that is not ``{"model": {"net": {"_target_": ..., ...}}}``
    with plain keyword values (numbers, strings, booleans, None, lists and dicts of those, no ``_target_``)."""
    model = build_config.get("model") if isinstance(build_config, dict) else None
    net = model.get("net") if isinstance(model, dict) else None
    if not isinstance(net, dict) or not isinstance(net.get("_target_"), str):
        raise UserValueError(
            f"{file} holds no net config that linzoo can rebuild (expected {{'model': {{'net': {{'_target_': "
            f"'linzoo.models.<Model>', ...}}}}}}, found {_shape(build_config)}); use a file written by "
            "scripts/train.py or scripts/export.py."
        )
    for key, value in model.items():
        if key != "net":
            check_plain(value, f"model.{key}", file, targets=key in ("optimizer", "scheduler"))
    for key, value in net.items():
        if key != "_target_":
            check_plain(value, f"model.net.{key}", file)
    if "data" in build_config:
        check_plain(build_config["data"], "data", file, targets=True)


def check_plain(value: Any, entry: str, file: str | Path, *, targets: bool = False) -> None:
    """Refuse, naming ``file`` and ``entry``, a value that is not plain data: only numbers, strings,
    booleans, None, and lists and dicts of those; a nested ``_target_`` only where ``targets`` (the
    optimizer and scheduler configs, whose ``_target_`` is then looked up in an allow-list)."""
    if isinstance(value, PLAIN_SCALARS):
        return
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            check_plain(item, f"{entry}[{index}]", file)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                break
            if key.startswith("_") and not (targets and key in ("_target_", "_partial_")):
                raise UserValueError(
                    f"{file} is refused: its entry {entry}.{key}={item!r} names code to build; a file's settings "
                    "must be plain values (numbers, strings, booleans, lists, dicts), never a _target_."
                )
            check_plain(item, f"{entry}.{key}", file)
        else:
            return
    raise UserValueError(
        f"{file} is refused: its entry {entry} holds a {type(value).__name__}; a file's settings must be "
        "plain values (numbers, strings, booleans, lists, dicts)."
    )


def _shape(value: Any) -> str:
    if isinstance(value, dict):
        return f"a dict with keys {sorted(map(str, value))[:6]}"
    return f"a {type(value).__name__}"


def check_finite(state: dict[str, torch.Tensor], file: str | Path) -> None:
    """Refuse, naming ``file`` and the tensor, weights that hold NaN or infinity."""
    for key, tensor in state.items():
        if isinstance(tensor, torch.Tensor) and tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise UserValueError(
                f"{file} is refused: its weight {key} holds NaN or infinity; a trained net's weights are finite "
                "(a diverged run leaves such weights: use an earlier checkpoint)."
            )


@contextlib.contextmanager
def from_file(file: str | Path) -> Iterator[None]:
    """Errors of rebuilding from ``file`` name the file: a user error without it gets it as a prefix."""
    try:
        yield
    except UserValueError as error:
        if str(file) in str(error):
            raise
        raise UserValueError(f"{file}: {error}") from None
    except TypeError as error:  # a keyword the model, task or data module does not take
        raise UserValueError(f"{file}: its config does not fit linzoo's code ({error}).") from None


def load_weights_into(module: torch.nn.Module, state: dict[str, Any], file: str | Path) -> None:
    """``module.load_state_dict(state)``, its weights checked finite; a mismatch is one line naming ``file``."""
    check_finite(state, file)
    try:
        module.load_state_dict(state)
    except RuntimeError as error:
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        detail = lines[1] if len(lines) > 1 else (lines[0] if lines else "the weights do not fit")
        raise UserValueError(
            f"{file} does not fit the model its config describes ({detail}); the file is damaged or was edited."
        ) from None


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
    net, _ = rebuild_net(path)
    return net.to(device).eval()


def rebuild_net(path: str | Path) -> tuple[torch.nn.Module, dict[str, Any]]:
    """``(plain net with its weights, on CPU, build config)`` of a .ckpt, run directory or .safetensors
    file: the config checked plain, the net rebuilt from the registry, the weights checked finite."""
    file = checkpoint_in(path)
    state, build_config = read_net(file)
    with from_file(file):
        net = build_net(net_config_of(build_config))
    load_weights_into(net, state, file)
    return net, build_config


def create_model_from_checkpoint(name: str, checkpoint_path: str | Path, **kwargs: Any) -> torch.nn.Module:
    """``create_model(name, **kwargs)`` with the weights of ``checkpoint_path`` (timm's way), in eval mode.

    A checkpoint of another model, or of other sizes, is a ``ValueError`` that names both configurations.
    """
    file = checkpoint_in(checkpoint_path)
    state, build_config = read_net(file)
    check_finite(state, file)
    saved_config = net_config_of(build_config)
    with from_file(file):
        saved_name = model_name_of(saved_config)
    saved_kwargs = readable_kwargs(saved_config)

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


def readable_kwargs(net_config: dict[str, Any]) -> dict[str, Any]:
    """The net's keyword arguments, its ``linear`` spec cut to the fields that differ from the defaults."""
    kwargs = {key: value for key, value in net_config.items() if not key.startswith("_")}
    if isinstance(kwargs.get("linear"), dict):
        defaults = asdict(as_linear_spec(None))
        spec = asdict(as_linear_spec(kwargs["linear"]))
        kwargs["linear"] = {key: value for key, value in spec.items() if value != defaults[key]}
    return kwargs
