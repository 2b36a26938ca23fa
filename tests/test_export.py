"""scripts/export.py: onnx, torchscript, exported_program, safetensors; each file reloaded and checked."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import linzoo
from helpers import MODELS, ROOT, requires_exact_int8
from linzoo.checkpoint import CONFIG_KEY, build_net
from linzoo.data import torchvision_files
from linzoo.tools.check_inputs import check_inputs_for, generated_inputs, traced_example
from linzoo.tools.export import FORMATS, TOLERANCE, export_checkpoint, export_net
from mounts import read_only_dir
from trained import train_run

NETS = {  # tiny nets of every model, as their saved net configs
    "mlp": {"_target_": "linzoo.models.MLP", "hidden_dims": [16]},
    "cnn": {"_target_": "linzoo.models.CNN", "channels": [4, 8]},
    "transformer": {
        "_target_": "linzoo.models.VisionTransformer",
        "dim": 16,
        "depth": 1,
        "num_heads": 2,
        "patch_size": 7,
    },
    "mixer": {"_target_": "linzoo.models.MLPMixer", "dim": 16, "depth": 1, "patch_size": 7},
    "autoencoder": {"_target_": "linzoo.models.Autoencoder", "hidden_dims": [16], "latent_dim": 4},
    "lm": {"_target_": "linzoo.models.DecoderLM", "vocab_size": 3, "seq_len": 49, "dim": 16, "depth": 1},
}


def inputs_for(model: str, batch: int = 5) -> torch.Tensor:
    return torch.randint(0, 3, (batch, 49)) if model == "lm" else torch.rand(batch, 1, 28, 28)


@pytest.fixture(scope="module")
def mlp_run(fake_mnist_root, tmp_path_factory) -> Path:
    return train_run(tmp_path_factory.mktemp("export") / "mlp", fake_mnist_root, "mlp")


@pytest.mark.parametrize("format", ["onnx", "torchscript", "exported_program", "safetensors"])
def test_a_trained_mlp_exports_and_matches_pytorch(mlp_run, tmp_path, format: str) -> None:
    result = export_checkpoint(ckpt_path=mlp_run, format=format, run_dir=tmp_path)
    assert result.path == tmp_path / f"model{FORMATS[format]}" and result.path.stat().st_size > 1000
    assert result.max_abs_diff is not None and result.max_abs_diff <= TOLERANCE
    if format == "onnx":  # one file serves every batch size
        import onnxruntime

        session = onnxruntime.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
        for batch in (1, 33):
            images = torch.rand(batch, 1, 28, 28)
            output = torch.from_numpy(session.run(None, {"input": images.numpy()})[0])
            torch.testing.assert_close(output, linzoo.load(mlp_run)(images).detach(), atol=1e-4, rtol=0)
    again = export_checkpoint(ckpt_path=mlp_run, format=format, run_dir=tmp_path)
    assert again.path != result.path and result.path.is_file()  # the first file is kept


def test_safetensors_rebuild_the_net_without_the_checkpoint(mlp_run, tmp_path) -> None:
    path = export_checkpoint(
        ckpt_path=mlp_run, format="safetensors", out=tmp_path / "mlp.safetensors", run_dir=tmp_path
    ).path
    images = torch.rand(4, 1, 28, 28)
    from_file = linzoo.load(path)
    torch.testing.assert_close(from_file(images), linzoo.load(mlp_run)(images), atol=0, rtol=0)
    assert isinstance(from_file, linzoo.MLP) and not from_file.training
    model = linzoo.create_model("mlp", hidden_dims=[32], checkpoint_path=path)
    torch.testing.assert_close(model(images), from_file(images))


@pytest.mark.parametrize("format", ["torchscript", "exported_program", "safetensors"])
@pytest.mark.parametrize("model", MODELS)
def test_every_model_exports(model: str, format: str, tmp_path) -> None:
    torch.manual_seed(0)
    net = build_net(NETS[model]).eval()
    build_config = {"model": {"_target_": "linzoo.tasks.Classifier", "net": NETS[model]}, "data": {}}
    path = tmp_path / f"{model}{FORMATS[format]}"
    difference = export_net(net, inputs_for(model), path, format, build_config=build_config)
    assert difference is not None and difference <= TOLERANCE
    if format == "safetensors":
        rebuilt, inputs = linzoo.load(path), inputs_for(model)
        torch.testing.assert_close(rebuilt(inputs), net(inputs), atol=0, rtol=0)
        if model == "lm":  # the tied LM head is still tied after loading
            assert rebuilt.lm_head.weight is rebuilt.token_embedding.weight


@pytest.mark.slow
@pytest.mark.parametrize("model", [model for model in MODELS if model != "mlp"])  # mlp: above
def test_every_model_exports_to_onnx(model: str, tmp_path) -> None:
    torch.manual_seed(0)
    net = build_net(NETS[model]).eval()
    difference = export_net(net, inputs_for(model), tmp_path / "model.onnx", "onnx", build_config={})
    assert difference <= TOLERANCE


@requires_exact_int8()
def test_int8_exports_as_an_exported_program(mlp_run, tmp_path) -> None:
    result = export_checkpoint(ckpt_path=mlp_run, quantize="int8", format="exported_program", run_dir=tmp_path)
    assert result.path.name == "model-int8.pt2" and result.agreement >= 0.9
    program = torch.export.load(str(result.path))
    assert any("int8" in str(node.meta.get("val", "")) for node in program.graph.nodes)


def test_bad_requests_are_clear_errors_and_touch_nothing(mlp_run, tmp_path) -> None:
    taken = tmp_path / "model.onnx"
    taken.write_bytes(b"mine")
    with pytest.raises(FileExistsError, match="already exists; nothing was written"):
        export_checkpoint(ckpt_path=mlp_run, format="onnx", out=taken, run_dir=tmp_path)
    assert taken.read_bytes() == b"mine"
    with pytest.raises(
        ValueError, match="format='tflite' is unknown; choose one of onnx, torchscript, exported_program, safetensors"
    ):
        export_checkpoint(ckpt_path=mlp_run, format="tflite", run_dir=tmp_path)
    with pytest.raises(ValueError, match="quantize=int8 exports to format=onnx .* or format=exported_program"):
        export_checkpoint(ckpt_path=mlp_run, format="torchscript", quantize="int8", run_dir=tmp_path)
    with pytest.raises(ValueError, match="quantize='int4' is not supported"):
        export_checkpoint(ckpt_path=mlp_run, format="onnx", quantize="int4", run_dir=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]


@pytest.mark.slow
def test_export_script_from_the_command_line(mlp_run, tmp_path) -> None:
    """Errors (out= taken, unknown format=) are tested in-process; tests/test_predict.py checks the non-zero exit."""
    out = tmp_path / "model.pt2"
    command = [
        sys.executable,
        "scripts/export.py",
        f"ckpt_path={mlp_run}",
        "format=exported_program",
        f"out={out}",
        f"hydra.run.dir={tmp_path / 'run'}",
    ]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "max abs difference" in done.stdout and out.is_file()


def test_a_trained_lm_exports_its_forward_on_real_pixel_tokens(fake_mnist_root, tmp_path) -> None:
    run = train_run(tmp_path / "lm", fake_mnist_root, "lm")
    result = export_checkpoint(ckpt_path=run, format="exported_program", run_dir=tmp_path / "export")
    assert result.max_abs_diff <= TOLERANCE
    Image.fromarray(np.eye(28, dtype=np.uint8) * 255).save(tmp_path / "line.png")  # an image, as the LM's tokens
    given = export_checkpoint(
        ckpt_path=run, format="exported_program", check_inputs=tmp_path / "line.png", run_dir=tmp_path / "export"
    )
    assert given.max_abs_diff <= TOLERANCE
    program = torch.export.load(str(result.path)).module()
    tokens = torch.randint(0, 2, (3, 49))
    torch.testing.assert_close(program(tokens), linzoo.load(run)(tokens))


# ------------------------------------------------------------------------ out= says what is written (issue 20.11)
def test_the_suffix_of_out_decides_the_format_and_a_mismatch_is_refused(mlp_run, tmp_path) -> None:
    with pytest.raises(ValueError, match=r"out=.*m\.safetensors names a safetensors file .* but format=onnx"):
        export_checkpoint(ckpt_path=mlp_run, format="onnx", out=tmp_path / "m.safetensors", run_dir=tmp_path)
    with pytest.raises(ValueError, match=r"its suffix '\.bin' names no export format"):
        export_checkpoint(ckpt_path=mlp_run, out=tmp_path / "m.bin", run_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []
    result = export_checkpoint(ckpt_path=mlp_run, out=tmp_path / "m.safetensors", run_dir=tmp_path)  # no format=
    assert result.path == tmp_path / "m.safetensors" and linzoo.load(result.path) is not None
    scripted = export_checkpoint(ckpt_path=mlp_run, out=tmp_path / "m.torchscript.pt", run_dir=tmp_path)
    assert scripted.path.is_file() and torch.jit.load(str(scripted.path)) is not None


def test_out_naming_a_directory_writes_model_inside_it(mlp_run, tmp_path) -> None:
    new = export_checkpoint(ckpt_path=mlp_run, format="safetensors", out=f"{tmp_path / 'new'}/", run_dir=tmp_path)
    assert new.path == tmp_path / "new" / "model.safetensors"
    (tmp_path / "there").mkdir()
    there = export_checkpoint(ckpt_path=mlp_run, format="safetensors", out=tmp_path / "there", run_dir=tmp_path)
    assert there.path == tmp_path / "there" / "model.safetensors"
    again = export_checkpoint(ckpt_path=mlp_run, format="safetensors", out=tmp_path / "there", run_dir=tmp_path)
    assert again.path == tmp_path / "there" / "model-1.safetensors"  # nothing overwritten


def test_an_unwritable_destination_is_refused_before_loading(tmp_path, monkeypatch) -> None:
    missing = tmp_path / "no_such_run"  # loading it would fail: the refusal comes first
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(ValueError, match="is a file, not a directory"):
        export_checkpoint(ckpt_path=missing, out=tmp_path / "a_file" / "m.onnx", run_dir=tmp_path)
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != locked and real_access(path, mode))
    with pytest.raises(ValueError, match="locked is not writable; nothing was loaded or written"):
        export_checkpoint(ckpt_path=missing, out=locked / "m.onnx", run_dir=tmp_path)
    with pytest.raises(ValueError, match="locked is not writable"):
        export_checkpoint(ckpt_path=missing, out=f"{locked}/", run_dir=tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("case", ["mismatch", "under_a_file", "read_only", "check_inputs"])
def test_export_refusals_are_one_line_and_exit_2(tmp_path, case: str) -> None:
    with contextlib.ExitStack() as stack:
        _export_refusal_is_one_line(tmp_path, case, stack)


def _export_refusal_is_one_line(tmp_path: Path, case: str, stack: contextlib.ExitStack) -> None:
    if case == "mismatch":
        overrides, message = ["format=onnx", f"out={tmp_path / 'm.safetensors'}"], "but format=onnx"
    elif case == "under_a_file":
        (tmp_path / "a_file").write_text("x")
        overrides, message = [f"out={tmp_path / 'a_file' / 'm.onnx'}"], "is a file, not a directory"
    elif case == "read_only":
        locked = stack.enter_context(read_only_dir(tmp_path / "locked"))  # chmod 555, or a read-only tmpfs for root
        overrides, message = [f"out={locked / 'm.onnx'}"], "is not writable"
    else:
        overrides, message = (
            [f"check_inputs={tmp_path / 'digits'}"],
            f"check_inputs={tmp_path / 'digits'}: nothing there",
        )
    command = [
        sys.executable,
        "scripts/export.py",
        f"ckpt_path={tmp_path / 'no_such_run'}",
        *overrides,
        f"hydra.run.dir={tmp_path / 'run'}",
    ]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr[-3000:]
    assert len(lines) == 1 and lines[0].startswith("Error:") and message in lines[0], done.stderr


# ------------------------------------------------------------------------ exports carry no data (issue 24.4)
def weights_bytes(run: Path) -> int:
    return sum(tensor.numel() * tensor.element_size() for tensor in linzoo.load(run).state_dict().values())


@pytest.mark.parametrize("format", ["onnx", "torchscript", "exported_program", "int8"])
def test_an_export_is_about_the_size_of_its_weights(mlp_run, tmp_path, format: str) -> None:
    """No batch inside: the check's 100-image test batch alone (314 kB) is three times these weights (102 kB)."""
    if format == "int8":
        pytest.importorskip("torchao")
        from linzoo.tools.quantize import int8_matmul_error

        if int8_matmul_error() != 0:
            pytest.skip("this CPU's int8 matmul saturates: quantize=int8 refuses it here")
    quantize = "int8" if format == "int8" else None
    result = export_checkpoint(
        ckpt_path=mlp_run, format="exported_program" if quantize else format, quantize=quantize, run_dir=tmp_path
    )
    weights = weights_bytes(mlp_run)
    assert result.path.stat().st_size < 1.1 * weights + 32_000, (result.path.stat().st_size, weights)


def test_the_traced_example_is_a_copy_of_two_inputs() -> None:
    batch = torch.rand(100, 1, 28, 28)
    example = traced_example(batch[:16])
    assert example.shape == (2, 1, 28, 28) and example.untyped_storage().nbytes() == example.nbytes
    assert torch.equal(example, batch[:2])
    assert torch.equal(traced_example(batch[:1]), batch[:1].expand(2, -1, -1, -1))  # one input: taken twice


def no_data_checkpoint(run: Path, empty: Path, tmp_path: Path) -> Path:
    """``run``'s checkpoint, its saved data root pointed at ``empty``."""
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    checkpoint[CONFIG_KEY]["data"]["root"] = str(empty)
    torch.save(checkpoint, tmp_path / "no_data.ckpt")
    return tmp_path / "no_data.ckpt"


@pytest.mark.parametrize("format", ["onnx", "torchscript", "exported_program"])
def test_export_needs_no_data_and_downloads_nothing(mlp_run, tmp_path, monkeypatch, capsys, format: str) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("LINZOO_DATA", str(empty))

    def no_download(*args: object, **kwargs: object) -> str:
        raise AssertionError("export tried to download the data")

    monkeypatch.setattr(torchvision_files, "download", no_download)
    result = export_checkpoint(ckpt_path=no_data_checkpoint(mlp_run, empty, tmp_path), format=format, run_dir=tmp_path)
    assert result.max_abs_diff <= TOLERANCE
    assert "on 16 generated inputs (seed 0)" in capsys.readouterr().out
    assert list(empty.iterdir()) == []


@pytest.mark.parametrize("model", MODELS)
def test_generated_inputs_fit_every_model(model: str, tmp_path) -> None:
    torch.manual_seed(0)
    net = build_net(NETS[model]).eval()
    checked = check_inputs_for(net, {"model": {"net": NETS[model]}, "data": {}})
    assert checked.source == "generated inputs (seed 0)" and torch.equal(checked.inputs, generated_inputs(net))
    difference = export_net(net, checked.inputs, tmp_path / "model.pt2", "exported_program", build_config={})
    assert difference <= TOLERANCE


def test_check_inputs_are_read_as_predict_reads_inputs(mlp_run, fake_mnist_root, tmp_path, capsys) -> None:
    from torchvision import datasets

    digits = datasets.MNIST(fake_mnist_root, train=False).data[:3].numpy()
    np.save(tmp_path / "digits.npy", digits)
    result = export_checkpoint(
        ckpt_path=mlp_run, format="onnx", check_inputs=tmp_path / "digits.npy", run_dir=tmp_path / "a"
    )
    assert result.max_abs_diff <= TOLERANCE
    assert f"on 3 input(s) of check_inputs={tmp_path / 'digits.npy'}" in capsys.readouterr().out
    Image.fromarray(255 - digits[0]).resize((90, 90)).save(tmp_path / "one.png")  # one input, any size, inverted
    one = export_checkpoint(
        ckpt_path=mlp_run, format="exported_program", check_inputs=tmp_path / "one.png", run_dir=tmp_path / "b"
    )
    assert one.max_abs_diff <= TOLERANCE
    assert "on 1 input(s) of check_inputs=" in capsys.readouterr().out


def test_bad_check_inputs_are_refused_before_loading_naming_the_setting(tmp_path) -> None:
    missing_run = tmp_path / "no_such_run"  # loading it would fail: the refusal comes first
    with pytest.raises(FileNotFoundError, match=r"^check_inputs=.*nope\.png: nothing there"):
        export_checkpoint(ckpt_path=missing_run, check_inputs=tmp_path / "nope.png", run_dir=tmp_path)
    np.save(tmp_path / "bright.npy", np.full((2, 28, 28), 3.0, dtype=np.float32))
    with pytest.raises(ValueError, match=r"^check_inputs=.*bright\.npy holds floats in \[3, 3\]"):
        export_checkpoint(ckpt_path=missing_run, check_inputs=tmp_path / "bright.npy", run_dir=tmp_path)
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match=r"^check_inputs=.*notes\.txt: unknown kind of file"):
        export_checkpoint(ckpt_path=missing_run, check_inputs=tmp_path / "notes.txt", run_dir=tmp_path)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["bright.npy", "notes.txt"]
