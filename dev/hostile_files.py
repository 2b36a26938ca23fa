"""Files made hostile by editing a copy of a real linzoo checkpoint: each would create a marker file
if any code it names ran. tests/test_hostile_files.py loads them on every path; scripts/error_table.py
shows what each command prints for them (docs/errors.md)."""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from linzoo.checkpoint import CONFIG_KEY, SAFETENSORS_CONFIG_KEY

__all__ = ["CKPT_KINDS", "Gadget", "hostile_ckpt", "hostile_safetensors", "touch_command"]


class Gadget:
    """A pickled object whose loading would run ``touch <marker>`` (``os.system``)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


def touch_command(marker: Path) -> list[str]:
    return ["touch", str(marker)]


def _net_config(checkpoint: dict[str, Any]) -> dict[str, Any]:
    return checkpoint[CONFIG_KEY]["model"]["net"]


# Each edit takes a copy of a real checkpoint and the marker path, and returns the hostile checkpoint.
def pickle_gadget(checkpoint: dict[str, Any], marker: Path) -> dict[str, Any]:
    checkpoint["extra"] = Gadget(marker)
    return checkpoint


def popen_in_net_kwargs(checkpoint: dict[str, Any], marker: Path) -> dict[str, Any]:
    _net_config(checkpoint)["linear"] = {"_target_": "subprocess.Popen", "args": touch_command(marker)}
    return checkpoint


def os_system_as_net(checkpoint: dict[str, Any], marker: Path) -> dict[str, Any]:
    checkpoint[CONFIG_KEY]["model"]["net"] = {"_target_": "os.system", "command": f"touch {marker}"}
    return checkpoint


def linzoo_function_as_net(checkpoint: dict[str, Any], marker: Path) -> dict[str, Any]:
    inner = {"_target_": "subprocess.Popen", "args": touch_command(marker)}
    checkpoint[CONFIG_KEY]["model"]["net"] = {
        "_target_": "linzoo.checkpoint.build_net",
        "_recursive_": False,
        "net_config": inner,
    }
    return checkpoint


def popen_as_task(checkpoint: dict[str, Any], marker: Path) -> dict[str, Any]:
    checkpoint[CONFIG_KEY]["model"]["_target_"] = "subprocess.Popen"
    checkpoint[CONFIG_KEY]["model"]["args"] = touch_command(marker)
    return checkpoint


def nan_weight(checkpoint: dict[str, Any], marker: Path) -> dict[str, Any]:
    key = next(key for key in checkpoint["state_dict"] if key.startswith("net.") and key.endswith("weight"))
    checkpoint["state_dict"][key] = torch.full_like(checkpoint["state_dict"][key], float("nan"))
    return checkpoint


def wrong_width(checkpoint: dict[str, Any], marker: Path) -> dict[str, Any]:
    _net_config(checkpoint)["hidden_dims"] = [48]  # the saved tensors are 32 wide
    return checkpoint


def config_is_a_list(checkpoint: dict[str, Any], marker: Path) -> dict[str, Any]:
    checkpoint[CONFIG_KEY] = ["model", "net"]
    return checkpoint


CKPT_KINDS: dict[str, Callable[[dict[str, Any], Path], dict[str, Any]]] = {
    "pickle_gadget": pickle_gadget,
    "popen_in_net_kwargs": popen_in_net_kwargs,
    "os_system_as_net": os_system_as_net,
    "linzoo_function_as_net": linzoo_function_as_net,
    "popen_as_task": popen_as_task,
    "nan_weight": nan_weight,
    "wrong_width": wrong_width,
    "config_is_a_list": config_is_a_list,
}


def hostile_ckpt(original: dict[str, Any], kind: str, folder: Path, marker: Path) -> Path:
    path = folder / f"{kind}.ckpt"
    torch.save(CKPT_KINDS[kind](copy.deepcopy(original), marker), path)
    return path


def hostile_safetensors(original: dict[str, Any], kind: str, folder: Path, marker: Path) -> Path:
    from safetensors.torch import save_file

    state = {key[len("net.") :]: value for key, value in original["state_dict"].items() if key.startswith("net.")}
    config = copy.deepcopy(original[CONFIG_KEY])
    metadata: str
    if kind == "not_json":
        metadata = "{'model': "
    elif kind == "a_list":
        metadata = json.dumps([config])
    elif kind == "no_target":
        config["model"]["net"].pop("_target_")
        metadata = json.dumps(config)
    elif kind == "unknown_module":
        config["model"]["net"]["_target_"] = "linzoo.models.NoSuchNet"
        metadata = json.dumps(config)
    elif kind in CKPT_KINDS and kind != "pickle_gadget":
        edited = CKPT_KINDS[kind]({"state_dict": dict(original["state_dict"]), CONFIG_KEY: config}, marker)
        state = {key[len("net.") :]: value for key, value in edited["state_dict"].items() if key.startswith("net.")}
        metadata = json.dumps(edited[CONFIG_KEY])
    else:
        raise AssertionError(kind)
    path = folder / f"{kind}.safetensors"
    save_file(
        {key: value.contiguous() for key, value in state.items()},
        str(path),
        metadata={SAFETENSORS_CONFIG_KEY: metadata},
    )
    return path
