"""A file never runs code (issue 20): every path that reads a checkpoint or a .safetensors file,
against files made hostile by editing a copy of a real checkpoint.

Each hostile file would create a marker file if any code it names ran; each test checks that the
marker is absent and that the refusal is one line (a ``UserValueError`` naming the file; on the
command line, exit status 2 and a last stderr line that starts with ``Error:``).
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

import linzoo
from dev.hostile_files import CKPT_KINDS, hostile_ckpt, hostile_safetensors, touch_command
from helpers import ROOT
from linzoo.callbacks.checkpoint_io import AtomicCheckpointIO
from linzoo.checkpoint import CONFIG_KEY
from linzoo.checkpoint.init_from import read_init_from
from linzoo.common.errors import UserValueError
from linzoo.tasks import Classifier
from trained import train_run

MLP_CONFIG = {"_target_": "linzoo.models.MLP", "hidden_dims": [32]}  # train_run's tiny MLP, for init_from=


@pytest.fixture(scope="module")
def mlp_run(fake_mnist_root, tmp_path_factory) -> Path:
    return train_run(tmp_path_factory.mktemp("hostile") / "mlp", fake_mnist_root, "mlp")


@pytest.fixture(scope="module")
def original(mlp_run) -> dict[str, Any]:
    return torch.load(mlp_run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)


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
        assert read_init_from(file, net_config=MLP_CONFIG).state
        assert not marker.exists()
    else:
        assert_refused(lambda: linzoo.load(file), file, marker)
        assert_refused(lambda: linzoo.load(run_dir), planted, marker)
        assert_refused(lambda: read_init_from(file, net_config=MLP_CONFIG), file, marker)  # a new run's init_from=
        assert_refused(lambda: read_init_from(run_dir, net_config=MLP_CONFIG), planted, marker)
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


def test_resume_refuses_non_finite_weights_before_training(original, tmp_path) -> None:
    """NaN weights in the checkpoint to resume: a broken file named as such, not a divergence ("lower the lr")."""
    from linzoo.run.resume import check_resumable

    file = hostile_ckpt(original, "nan_weight", tmp_path, tmp_path / "marker")
    with pytest.raises(UserValueError, match=r"is refused: its weight net\..* holds NaN or infinity"):
        check_resumable(str(file), original[CONFIG_KEY])


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
    assert_refused(lambda: read_init_from(file, net_config=MLP_CONFIG), file, marker)
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
