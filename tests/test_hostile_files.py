"""A file never runs code (issue 20): every path that reads a checkpoint or a .safetensors file,
against files made hostile by editing a copy of a real checkpoint.

Each hostile file would create a marker file if any code it names ran; each test checks that the
marker is absent and that the refusal is one line (a ``UserValueError`` naming the file; on the
command line, exit status 2 and a last stderr line that starts with ``Error:``).
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

import linzoo
from helpers import ROOT
from linzoo.callbacks.checkpoint_io import AtomicCheckpointIO
from linzoo.checkpoint import CONFIG_KEY, SAFETENSORS_CONFIG_KEY
from linzoo.common.errors import UserValueError
from linzoo.tasks import Classifier
from trained import train_run


class Gadget:
    """A pickled object whose loading would run ``touch <marker>`` (``os.system``)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture(scope="module")
def mlp_run(fake_mnist_root, tmp_path_factory) -> Path:
    return train_run(tmp_path_factory.mktemp("hostile") / "mlp", fake_mnist_root, "mlp")


@pytest.fixture(scope="module")
def original(mlp_run) -> dict[str, Any]:
    return torch.load(mlp_run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)


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


def assert_refused(call: Callable[[], Any], file: Path, marker: Path, *, one_line: bool = True) -> str:
    with pytest.raises(UserValueError) as refused:
        call()
    message = str(refused.value)
    assert not marker.exists(), "the hostile file ran code"
    assert str(file) in message.splitlines()[0], message
    if one_line:
        assert "\n" not in message, message
    return message


def test_linzoo_checkpoints_need_no_allowed_global(mlp_run) -> None:
    """What ALLOWED_GLOBALS allows: nothing beyond torch's own weights_only types, for today's checkpoints
    and for the ones written before issue 10."""
    files = [*(mlp_run / "checkpoints").glob("*.ckpt"), *(ROOT / "tests" / "data" / "before_issue10").glob("*.ckpt")]
    assert len(files) >= 4
    for file in files:
        assert torch.serialization.get_unsafe_globals_in_checkpoint(str(file)) == [], file


@pytest.mark.parametrize("kind", list(CKPT_KINDS))
def test_hostile_checkpoints_are_refused_on_every_loading_path(kind, original, tmp_path) -> None:
    """Each hostile checkpoint kind (a pickle gadget, code named in the saved net or task config, linzoo's own function as the net, a NaN weight, wrong widths, a config that is a list) is refused with a clear error naming the file by linzoo.load (of the file, or of a run directory with it planted as last.ckpt), create_model(checkpoint_path=), load_from_checkpoint and Lightning's resume read, and its code never runs (a task target is never read by the net paths)."""
    marker = tmp_path / "marker"
    file = hostile_ckpt(original, kind, tmp_path, marker)
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    planted = hostile_ckpt(original, kind, run_dir / "checkpoints", marker).rename(
        run_dir / "checkpoints" / "last.ckpt"
    )
    if kind == "popen_as_task":  # the net paths never read the task's _target_: they load the net, run nothing
        assert isinstance(linzoo.load(file), linzoo.MLP) and isinstance(linzoo.load(run_dir), linzoo.MLP)
        assert not marker.exists()
    else:
        assert_refused(lambda: linzoo.load(file), file, marker)
        assert_refused(lambda: linzoo.load(run_dir), planted, marker)
        assert_refused(
            lambda: linzoo.create_model("mlp", hidden_dims=[48 if kind == "wrong_width" else 32], checkpoint_path=file),
            file,
            marker,
            one_line=kind != "wrong_width",  # create_model's mismatch names both configurations, one a line
        )
    assert_refused(lambda: Classifier.load_from_checkpoint(file), file, marker)
    if kind == "pickle_gadget":  # Lightning's own read on resume goes through the same loader
        assert_refused(lambda: AtomicCheckpointIO().load_checkpoint(file), file, marker)
        assert_refused(lambda: Classifier.load_from_checkpoint(file, net=torch.nn.Flatten()), file, marker)
        assert "posix.system" in assert_refused(lambda: linzoo.checkpoint.read_checkpoint(file), file, marker)


@pytest.mark.parametrize(
    "kind",
    ["not_json", "a_list", "no_target", "unknown_module", "popen_in_net_kwargs", "os_system_as_net",
     "linzoo_function_as_net", "nan_weight", "wrong_width"],
)  # fmt: skip
def test_hostile_safetensors_are_refused(kind, original, tmp_path) -> None:
    """A .safetensors file whose metadata names code, is not JSON or does not fit its tensors is refused by linzoo.load and create_model, naming the file, and runs nothing."""
    marker = tmp_path / "marker"
    file = hostile_safetensors(original, kind, tmp_path, marker)
    assert_refused(lambda: linzoo.load(file), file, marker)
    if kind != "wrong_width":
        assert_refused(lambda: linzoo.create_model("mlp", hidden_dims=[32], checkpoint_path=file), file, marker)


def test_a_truncated_checkpoint_is_one_line(mlp_run, tmp_path) -> None:
    """Half a checkpoint (a copy cut short) is one clear error naming the file, not torch's traceback."""
    data = (mlp_run / "checkpoints" / "last.ckpt").read_bytes()
    file = tmp_path / "cut.ckpt"
    file.write_bytes(data[: len(data) // 2])
    assert_refused(lambda: linzoo.load(file), file, tmp_path / "marker")


def start_script(args: list[str]) -> subprocess.Popen:
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    environment.pop("HYDRA_FULL_ERROR", None)
    return subprocess.Popen(
        [sys.executable, *args], cwd=ROOT, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


@pytest.mark.slow
def test_the_command_line_refuses_hostile_files(original, fake_mnist_root, tmp_path) -> None:
    """eval, predict, export, sample and a resume given hostile files each exit 2 with one Error line naming the file and no traceback, and none of the files' code runs."""
    marker = tmp_path / "marker"
    gadget = hostile_ckpt(original, "pickle_gadget", tmp_path, marker)
    popen = hostile_ckpt(original, "popen_in_net_kwargs", tmp_path, marker)
    data_popen = copy.deepcopy(original)
    data_popen[CONFIG_KEY]["data"] = {"_target_": "subprocess.Popen", "args": touch_command(marker)}
    torch.save(data_popen, tmp_path / "data_popen.ckpt")
    own_function = hostile_ckpt(original, "linzoo_function_as_net", tmp_path, marker)
    metadata = hostile_safetensors(original, "os_system_as_net", tmp_path, marker)
    image = tmp_path / "digit.pt"
    torch.save(torch.rand(1, 28, 28), image)
    data = ["data=mnist", f"data.root={fake_mnist_root}", "data.download=false"]
    commands = {
        "eval gadget": ["scripts/eval.py", f"ckpt_path={gadget}", f"hydra.run.dir={tmp_path / 'e1'}"],
        "eval data target": [
            "scripts/eval.py", f"ckpt_path={tmp_path / 'data_popen.ckpt'}", f"hydra.run.dir={tmp_path / 'e2'}"
        ],
        "predict": ["scripts/predict.py", f"ckpt_path={popen}", f"inputs={image}", f"hydra.run.dir={tmp_path / 'p'}"],
        "export": ["scripts/export.py", f"ckpt_path={metadata}", "format=onnx", f"hydra.run.dir={tmp_path / 'x'}"],
        "sample": ["scripts/sample.py", f"ckpt_path={own_function}", f"hydra.run.dir={tmp_path / 's'}"],
        "resume": [
            "scripts/train.py", "model=mlp", "model.net.hidden_dims=[32]", *data,
            f"ckpt_path={gadget}", f"hydra.run.dir={tmp_path / 't'}",
        ],
    }  # fmt: skip
    started = {name: start_script(command) for name, command in commands.items()}  # side by side: ~1/3 the time
    for name, process in started.items():
        _, stderr = process.communicate(timeout=300)
        last = stderr.strip().splitlines()[-1] if stderr.strip() else ""
        assert process.returncode == 2, (name, stderr[-2000:])
        assert last.startswith("Error:") and str(tmp_path) in last, (name, stderr[-2000:])
        assert "Traceback" not in stderr, (name, stderr[-2000:])
    assert not marker.exists()


def test_old_checkpoints_still_load(tmp_path) -> None:
    """The safe loader still reads checkpoints written before issue 10 (the safety does not cost old files)."""
    for file in sorted((ROOT / "tests" / "data" / "before_issue10").glob("*.ckpt")):
        assert isinstance(linzoo.load(file), torch.nn.Module)
