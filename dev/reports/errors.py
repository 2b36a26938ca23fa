"""Run bad inputs and write what each prints into docs/errors.md (the table is never typed by hand).

    python scripts/error_table.py                 # writes docs/errors.md (~20 min on a busy 2-core CPU)
    python scripts/error_table.py --jobs 4 --out /tmp/errors.md

Every command-line row runs the real script in a subprocess, offline, on generated MNIST
files in a temporary folder (tests/conftest.py's writers); the Python rows call the API
in this process. Paths of the temporary folder are shown as $DATA (generated MNIST),
$EMPTY (an empty folder), $RUN (a finished tiny training run on $DATA) and $TMP.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import traceback
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from linzoo.data.synthetic import write_fake_mnist, write_idx
from linzoo.run.run_dirs import claim_run_dir, release_run_claims

ROOT = Path(__file__).resolve().parents[2]  # the repository: the rows run its scripts/

SHORT = [
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=2",
    "trainer.limit_val_batches=1",
    "data.val_size=200",
    "data.download=false",
    "callbacks.progress_bar.refresh_rate=0",
]
TINY_MLP = ["model=mlp", "model.net.hidden_dims=[16]"]


@dataclass
class Row:
    what: str  # the class of bad input
    shown: str  # the input as the page shows it
    exit_code: str
    message: str


@dataclass
class Case:
    what: str
    script: str  # train | eval | sample
    args: list[str]
    env: dict[str, str | None] | None = None  # None value: unset
    cwd: Path | None = None
    expect_warning: str | None = None  # a row that exits 0 shows this warning line
    file_size_limit: int | None = None  # bytes (RLIMIT_FSIZE): a longer write fails with EFBIG, as on a full disk


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "errors.md")
    parser.add_argument("--jobs", type=int, default=2, help="command-line rows run at once")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="linzoo-errors-") as tmp:
        tmp_path = Path(tmp).resolve()
        names = prepare(tmp_path)
        cases = command_line_cases(names)
        claim_run_dir(names["LIVE_RUN"], job="train")  # a run directory a live process (this one) holds
        try:
            with ThreadPoolExecutor(max_workers=args.jobs) as pool:
                rows = list(
                    pool.map(lambda item: run_case(item[1], names, tmp_path / f"row{item[0]}"), enumerate(cases))
                )
        finally:
            release_run_claims()
        rows += python_rows(names)
        if (tmp_path / "marker").exists():
            raise SystemExit("A hostile file ran code (it created the marker file): fix that before the table.")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(rows))
    print(f"{len(rows)} bad inputs -> {args.out}")


# ------------------------------------------------------------------ fixtures
def prepare(tmp: Path) -> dict[str, Path]:
    """Generated data (good and damaged), an empty folder, a text file and one finished run."""
    import numpy as np

    data = tmp / "data"
    write_fake_mnist(data, num_train=1000, num_test=200)
    empty = tmp / "empty"
    empty.mkdir()
    not_ckpt = tmp / "notes.txt"
    not_ckpt.write_text("not a checkpoint\n")
    damaged = {}
    for name, damage in {
        "truncated": lambda raw: raw / "train-images-idx3-ubyte",
        "bad_label": lambda raw: raw / "t10k-labels-idx1-ubyte",
        "bad_magic": lambda raw: raw / "train-labels-idx1-ubyte",
        "bad_md5": lambda raw: raw / "train-labels-idx1-ubyte",
    }.items():
        root = tmp / name
        write_fake_mnist(root, num_train=1000, num_test=200)
        damaged[name] = root
        path = damage(root / "MNIST" / "raw")
        raw = path.read_bytes()
        if name == "truncated":
            path.write_bytes(raw[: len(raw) // 2])
        elif name == "bad_label":
            labels = np.frombuffer(raw[8:], dtype=np.uint8).copy()
            labels[17] = 11
            write_idx(path, labels)
        elif name == "bad_magic":
            path.write_bytes(b"\x00\x00\x08\x03" + raw[4:])
        elif name == "bad_md5":  # the official size (60,000 labels) with other content
            write_idx(path, np.arange(60000, dtype=np.uint8) % 10)
    run = tmp / "run"
    env = {**os.environ, "LINZOO_DATA": str(data)}
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "train.py"), *TINY_MLP, *SHORT, f"hydra.run.dir={run}"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    write_fake_mnist(data, dataset="FashionMNIST", num_train=1000, num_test=200, seed=100)
    other = tmp / "other"  # the same file names holding other digits
    write_fake_mnist(other, num_train=1000, num_test=200, seed=7)
    sample_run = tmp / "sample_run"
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "train.py"), *TINY_MLP, *SHORT, "data=mnist_sample"]
        + [f"hydra.run.dir={sample_run}"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return {
        "DATA": data,
        "EMPTY": empty,
        "RUN": run,
        "NOTES": not_ckpt,
        "TMP": tmp,
        "OTHER": other,
        "SAMPLE_RUN": sample_run,
        "LIVE_RUN": tmp / "live_run",
        **{k: v for k, v in damaged.items()},
        **hostile_files(run / "checkpoints" / "last.ckpt", tmp / "hostile", marker=tmp / "marker"),
        **input_files(tmp / "inputs"),
        **image_folders(tmp / "folders"),
    }


def image_folders(folder: Path) -> dict[str, Path]:
    """Bad folders for data=image_folder: one class only; a class folder without images."""
    from PIL import Image

    one, empty_class = folder / "one_class", folder / "empty_class"
    for root, classes in ((one, ("cat",)), (empty_class, ("cat", "dog"))):
        for name in classes:
            (root / name).mkdir(parents=True)
    for root in (one, empty_class):
        Image.new("L", (28, 28), 200).save(root / "cat" / "001.png")
    (empty_class / "dog" / "notes.txt").write_text("no image here\n")
    return {"ONE_CLASS": one, "EMPTY_CLASS": empty_class}


def hostile_files(checkpoint: Path, folder: Path, *, marker: Path) -> dict[str, Path]:
    """Copies of a real checkpoint made hostile (dev/hostile_files.py), and one with a corrupt optimizer state."""
    import torch

    from dev.hostile_files import CKPT_KINDS, hostile_ckpt, hostile_safetensors

    folder.mkdir()
    original = torch.load(checkpoint, map_location="cpu", weights_only=True)
    files = {f"ckpt_{kind}": hostile_ckpt(original, kind, folder, marker) for kind in CKPT_KINDS}
    for kind in ("not_json", "a_list", "no_target", "unknown_module", "os_system_as_net", "nan_weight"):
        files[f"st_{kind}"] = hostile_safetensors(original, kind, folder, marker)
    corrupt = dict(original)
    corrupt["optimizer_states"] = [dict(original["optimizer_states"][0])]
    corrupt["optimizer_states"][0]["state"] = {0: {**original["optimizer_states"][0]["state"][0]}}
    corrupt["optimizer_states"][0]["state"][0]["exp_avg"] = torch.zeros(3)
    files["corrupt_optimizer"] = folder / "corrupt_optimizer.ckpt"
    torch.save(corrupt, files["corrupt_optimizer"])
    cut = folder / "truncated.ckpt"
    cut.write_bytes(checkpoint.read_bytes()[: checkpoint.stat().st_size // 2])
    files["truncated_ckpt"] = cut
    return files


def input_files(folder: Path) -> dict[str, Path]:
    """Inputs predict must refuse or skip: an animated GIF's frames are inputs, NaN pixels, an empty
    array, a PNG whose header claims 400 million pixels, and a folder holding a named pipe."""
    import numpy as np
    import torch
    from PIL import Image

    folder.mkdir()
    digit = Image.fromarray((np.arange(28 * 28).reshape(28, 28) % 256).astype(np.uint8))
    files = {"digit_png": folder / "digit.png"}
    digit.save(files["digit_png"])
    files["nan_pt"] = folder / "nan.pt"
    torch.save(torch.full((1, 28, 28), float("nan")), files["nan_pt"])
    files["empty_npy"] = folder / "empty.npy"
    np.save(files["empty_npy"], np.zeros((0, 28, 28), dtype=np.float32))
    files["bomb_png"] = folder / "bomb.png"
    files["bomb_png"].write_bytes(png_header_only(width=20000, height=20000))
    with_pipe = folder / "with_pipe"
    with_pipe.mkdir()
    digit.save(with_pipe / "digit.png")
    if hasattr(os, "mkfifo"):
        os.mkfifo(with_pipe / "pipe.png")
    files["with_pipe"] = with_pipe
    files["text_png"] = folder / "notes.png"
    files["text_png"].write_text("not an image\n")
    return files


def png_header_only(*, width: int, height: int) -> bytes:
    """A PNG that declares ``width x height`` grey pixels and holds one empty data chunk (a bomb's header)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def command_line_cases(p: dict[str, Path]) -> list[Case]:
    data = [f"data.root={p['DATA']}", "data.download=false", "data.val_size=200"]
    last = p["RUN"] / "checkpoints" / "last.ckpt"
    fast = ["trainer.fast_dev_run=true"]
    return [
        # --- types at composition time
        Case("wrong type (int)", "train", ["data.batch_size=abc"]),
        Case("wrong type (bool)", "train", ["linear.bias=maybe"]),
        Case("wrong type (float)", "train", ["model.net.dropout=high"]),
        Case("wrong type (list item)", "train", ["model.net.hidden_dims=[64,wide]"]),
        Case("wrong type (model option)", "train", ["model=transformer", "model.net.depth=two"]),
        Case("wrong type (role override)", "train", ["linear.roles.head.bias=maybe"]),
        Case("wrong type (top-level)", "train", ["seed=abc", *data, *fast]),
        Case("wrong type (eval data override)", "eval", [f"ckpt_path={last}", "data.batch_size=a"]),
        # --- misspelled keys, roles, options
        Case("misspelled key", "train", ["model.net.hiden_dims=[64]"]),
        Case("misspelled group", "train", ["modle=mlp"]),
        Case("misspelled role", "train", ["linear.roles.atn_out.init=zeros"]),
        Case("misspelled adapter role", "train", ["model=transformer", "adapter=lora", "adapter.roles=[q,vv]"]),
        Case("adapter rank 0", "train", ["model=transformer", "adapter=lora", "adapter.rank=0"]),
        Case("misspelled trainer key", "train", ["trainer.max_epoch=3"]),
        Case("misspelled key added with +", "train", ["+optimizer.lrr=0.1", *data, *fast]),
        Case("misspelled eval data key", "eval", [f"ckpt_path={last}", "data.roott=/x"]),
        Case("unknown option of a group", "train", ["model=mlpp"]),
        Case("unknown option of a group", "train", ["optimizer=adam"]),
        Case("unknown init name", "train", ["linear.init=glorot", *data, *fast]),
        Case("unknown init name for one role", "train", ["linear.roles.attn_out.init=zero", *data, *fast]),
        Case("unparsable override", "train", ["model.net.hidden_dims=[32"]),
        # --- values that compose but cannot work (issue 8 point 11)
        Case("learning rate 0", "train", ["optimizer.lr=0", *data]),
        Case("negative learning rate", "train", ["optimizer=sgd", "optimizer.lr=-0.1", *data]),
        Case("zero epochs", "train", ["trainer.max_epochs=0", *data]),
        Case("zero training batches", "train", ["trainer.limit_train_batches=0", *data]),
        Case("unknown test weights", "train", ["test_ckpt=final", *data]),
        Case("layer width 0", "train", ["model.net.hidden_dims=[0]", *data]),
        Case("model width 0", "train", ["model=mixer", "model.net.dim=0", *data]),
        Case("dropout out of range", "train", ["model.net.dropout=1.5", *data]),
        Case("heads do not divide width", "train", ["model=transformer", "model.net.dim=30", *data, *fast]),
        Case("more CPU processes than cores", "train", ["trainer.devices=8", *data]),
        Case("GPU asked, none present", "train", ["trainer=gpu", *data]),
        Case("float16 on CPU", "train", ["trainer.precision=16-mixed", "trainer.accelerator=cpu", *data]),
        Case("unknown precision", "train", ["trainer.precision=bf17", *data]),
        Case("batch size 0", "train", ["data.batch_size=0", *data, *fast]),
        Case("augmentation range reversed", "train", ["data.augment=affine", "data.affine_scale=[1.1,0.9]", *data]),
        Case(
            "validation split too large",
            "train",
            [f"data.root={p['DATA']}", "data.download=false", "data.val_size=1000", *fast],
        ),
        Case(
            "override for a role the model never builds (warning, run goes on)",
            "train",
            [*TINY_MLP, "linear.roles.attn_out.init=zeros", *data, *fast],
            expect_warning="linear.roles",
        ),
        # --- data (issue 8 points 9 and 10)
        Case("named root without MNIST", "train", [f"data.root={p['EMPTY']}", "data.download=false", *fast]),
        Case(
            "LINZOO_DATA without MNIST", "train", ["data.download=false", *fast], env={"LINZOO_DATA": str(p["EMPTY"])}
        ),
        Case(
            "Fashion-MNIST not available",
            "train",
            ["data=fashion_mnist", f"data.root={p['EMPTY']}", "data.download=false", *fast],
        ),
        Case("truncated idx file", "train", [f"data.root={p['truncated']}", "data.download=false", *fast]),
        Case("label out of range", "train", [f"data.root={p['bad_label']}", "data.download=false", *fast]),
        Case("wrong magic number", "train", [f"data.root={p['bad_magic']}", "data.download=false", *fast]),
        Case("official name and size, wrong MD5", "train", [f"data.root={p['bad_md5']}", "data.download=false", *fast]),
        Case(
            "full-MNIST checkpoint where only the sample is available",
            "eval",
            [f"ckpt_path={last}"],
            env={"LINZOO_DATA": None},
            cwd=p["EMPTY"],
        ),
        # --- files, directories, the scripts' own options
        Case("checkpoint that does not exist", "eval", [f"ckpt_path={p['TMP']}/missing.ckpt"]),
        Case("a text file as checkpoint", "eval", [f"ckpt_path={p['NOTES']}"]),
        Case("checkpoint path missing", "eval", []),
        Case("a text file to resume from", "train", [f"ckpt_path={p['NOTES']}", *data]),
        Case("unusable run directory", "train", ["hydra.run.dir=/proc/linzoo_run"]),
        Case("sample: num 0", "sample", [f"ckpt_path={last}", "num=0"]),
        Case("sample: temperature 0", "sample", [f"ckpt_path={last}", "temperature=0"]),
        Case("sample: digit out of range", "sample", [f"ckpt_path={last}", "digit=12"]),
        Case("sample: wrong type", "sample", [f"ckpt_path={last}", "top_k=many"]),
        Case("sample: a classifier checkpoint", "sample", [f"ckpt_path={last}"]),
        Case("sample: output not a PNG", "sample", [f"ckpt_path={last}", "out=grid.jpg"]),
        *issue20_cases(p),
    ]


def issue20_cases(p: dict[str, Path]) -> list[Case]:
    """Hostile files, predict's inputs, export's outputs, run directories and data identity (issue 20)."""
    data = [f"data.root={p['DATA']}", "data.download=false", "data.val_size=200"]
    last = p["RUN"] / "checkpoints" / "last.ckpt"
    digit = p["digit_png"]
    resume = [*TINY_MLP, *data, "trainer.max_epochs=2"]
    hostile = "a file never runs code"
    return [
        # --- a file never runs code (point 1-2): refused, the marker file is never created
        Case(f"{hostile}: pickle gadget", "eval", [f"ckpt_path={p['ckpt_pickle_gadget']}"]),
        Case(f"{hostile}: pickle gadget", "predict", [f"ckpt_path={p['ckpt_pickle_gadget']}", f"inputs={digit}"]),
        Case(f"{hostile}: pickle gadget", "train", [*resume, f"ckpt_path={p['ckpt_pickle_gadget']}"]),
        Case(f"{hostile}: subprocess.Popen in the net config", "eval", [f"ckpt_path={p['ckpt_popen_in_net_kwargs']}"]),
        Case(
            f"{hostile}: subprocess.Popen in the net config",
            "predict",
            [f"ckpt_path={p['ckpt_popen_in_net_kwargs']}", f"inputs={digit}"],
        ),
        Case(f"{hostile}: os.system as the net", "export", [f"ckpt_path={p['ckpt_os_system_as_net']}", "format=onnx"]),
        Case(
            f"{hostile}: linzoo's own build_net as a target",
            "sample",
            [f"ckpt_path={p['ckpt_linzoo_function_as_net']}"],
        ),
        Case(f"{hostile}: subprocess.Popen as the task", "eval", [f"ckpt_path={p['ckpt_popen_as_task']}"]),
        Case(
            f"{hostile}: .safetensors metadata naming os.system",
            "predict",
            [f"ckpt_path={p['st_os_system_as_net']}", f"inputs={digit}"],
        ),
        Case(
            f"{hostile}: .safetensors metadata naming os.system",
            "export",
            [f"ckpt_path={p['st_os_system_as_net']}", "format=torchscript"],
        ),
        # --- malformed files (point 3)
        Case("malformed file: metadata not JSON", "predict", [f"ckpt_path={p['st_not_json']}", f"inputs={digit}"]),
        Case("malformed file: metadata a list", "predict", [f"ckpt_path={p['st_a_list']}", f"inputs={digit}"]),
        Case(
            "malformed file: metadata without _target_",
            "predict",
            [f"ckpt_path={p['st_no_target']}", f"inputs={digit}"],
        ),
        Case("malformed file: unknown model", "predict", [f"ckpt_path={p['st_unknown_module']}", f"inputs={digit}"]),
        Case("malformed file: widths do not match the tensors", "eval", [f"ckpt_path={p['ckpt_wrong_width']}"]),
        Case("malformed file: build config a list", "eval", [f"ckpt_path={p['ckpt_config_is_a_list']}"]),
        Case("malformed file: NaN weights", "predict", [f"ckpt_path={p['ckpt_nan_weight']}", f"inputs={digit}"]),
        Case("malformed file: NaN weights (.safetensors)", "export", [f"ckpt_path={p['st_nan_weight']}"]),
        Case("malformed file: NaN weights, resumed", "train", [*resume, f"ckpt_path={p['ckpt_nan_weight']}"]),
        Case("malformed file: truncated checkpoint", "eval", [f"ckpt_path={p['truncated_ckpt']}"]),
        Case("corrupt optimizer state, resumed", "train", [*resume, f"ckpt_path={p['corrupt_optimizer']}"]),
        # --- predict's inputs and options (points 9, 15)
        Case("predict: NaN pixels", "predict", [f"ckpt_path={last}", f"inputs={p['nan_pt']}"]),
        Case("predict: an empty array", "predict", [f"ckpt_path={last}", f"inputs={p['empty_npy']}"]),
        Case("predict: decompression bomb", "predict", [f"ckpt_path={last}", f"inputs={p['bomb_png']}"]),
        Case("predict: a file that is not an image", "predict", [f"ckpt_path={last}", f"inputs={p['text_png']}"]),
        Case(
            "predict: a named pipe in a folder (skipped, the rest predicted)",
            "predict",
            [f"ckpt_path={last}", f"inputs={p['with_pipe']}"],
            expect_warning="pipe.png",
        ),
        Case("predict: input that does not exist", "predict", [f"ckpt_path={last}", f"inputs={p['TMP']}/nope.png"]),
        Case("predict: batch size 0", "predict", [f"ckpt_path={last}", f"inputs={digit}", "batch_size=0"]),
        Case("predict: negative batch size", "predict", [f"ckpt_path={last}", f"inputs={digit}", "batch_size=-5"]),
        Case("predict: GPU asked, none present", "predict", [f"ckpt_path={last}", f"inputs={digit}", "device=cuda"]),
        Case("predict: a run directory without checkpoints", "predict", [f"ckpt_path={p['EMPTY']}", f"inputs={digit}"]),
        # --- export's outputs (points 11, 14)
        Case(
            "export: file name says another format", "export", [f"ckpt_path={last}", "format=onnx", "out=m.safetensors"]
        ),
        Case("export: unknown format", "export", [f"ckpt_path={last}", "format=tflite"]),
        Case(
            "export: destination not writable", "export", [f"ckpt_path={last}", "format=onnx", "out=/proc/linzoo.onnx"]
        ),
        Case("export: unknown quantization", "export", [f"ckpt_path={last}", "quantize=int4"]),
        # --- a full disk (point 13): a file-size limit makes the kernel refuse the write (EFBIG)
        Case(
            "full disk while training (a file-size limit)",
            "train",
            [*TINY_MLP, *data, "trainer.max_epochs=1"],
            file_size_limit=60_000,
        ),
        Case(
            "full disk while exporting (a file-size limit)",
            "export",
            [f"ckpt_path={last}", "format=torchscript"],
            file_size_limit=20_000,
        ),
        Case(
            "full disk while exporting (a file-size limit)",
            "export",
            [f"ckpt_path={last}", "format=onnx"],
            file_size_limit=20_000,
        ),
        # --- run directories (points 5, 6, 16)
        Case(
            "resume a run that is still training, in place",
            "train",
            [*TINY_MLP, *data, f"ckpt_path={last}", f"hydra.run.dir={p['LIVE_RUN']}"],
        ),
        Case("eval into a run's directory", "eval", [f"ckpt_path={last}", f"hydra.run.dir={p['RUN']}"]),
        Case("train into a finished run's directory", "train", [*TINY_MLP, *data, f"hydra.run.dir={p['RUN']}"]),
        Case(
            "resume a finished run in place",
            "train",
            [*TINY_MLP, *data, f"ckpt_path={last}", f"hydra.run.dir={p['RUN']}"],
        ),
        # --- same data, or an explicit choice (point 8)
        Case(
            "eval on another dataset",
            "eval",
            [f"ckpt_path={last}", f"data.root={p['DATA']}", "data.dataset=fashion_mnist", "data.source=full"],
        ),
        Case(
            "eval on the sample with another split seed",
            "eval",
            [f"ckpt_path={p['SAMPLE_RUN']}/checkpoints/last.ckpt", "data.seed=1"],
        ),
        Case(
            "resume on other files",
            "train",
            [*TINY_MLP, f"data.root={p['OTHER']}", "data.download=false", "data.val_size=200", f"ckpt_path={last}"],
        ),
        Case("allow_other_data not a bool", "eval", [f"ckpt_path={last}", "allow_other_data=maybe"]),
        # --- reusing a trained model (issue 21): init_from, what trains, your own image folders
        Case(
            "init_from: a file that does not exist", "train", [*TINY_MLP, *data, f"init_from={p['TMP']}/missing.ckpt"]
        ),
        Case(
            "init_from and ckpt_path together",
            "train",
            [*TINY_MLP, *data, f"init_from={p['RUN']}", f"ckpt_path={last}"],
        ),
        Case(
            "init_from: other widths",
            "train",
            ["model=mlp", "model.net.hidden_dims=[24]", *data, f"init_from={p['RUN']}"],
        ),
        Case("init_from: another model", "train", ["model=transformer", *data, f"init_from={p['RUN']}"]),
        Case("misspelled role to train", "train", [*TINY_MLP, *data, "finetune.train_roles=[haed]"]),
        Case("nothing left to train", "train", ["model=autoencoder", *data, "finetune.train_roles=[head]"]),
        Case("image folder: no data.root", "train", ["model=cnn", "data=image_folder"]),
        Case("image folder: missing folder", "train", ["model=cnn", "data=image_folder", f"data.root={p['TMP']}/pets"]),
        Case("image folder: one class", "train", ["model=cnn", "data=image_folder", f"data.root={p['ONE_CLASS']}"]),
        Case(
            "image folder: a class without images",
            "train",
            ["model=cnn", "data=image_folder", f"data.root={p['EMPTY_CLASS']}"],
        ),
        # --- muP and per-role learning rates (issue 22)
        Case("muP on a model without a width", "train", ["model=cnn", "linear=mup", *data]),
        Case("muP base width 0", "train", [*TINY_MLP, "linear=mup", "linear.mup.base_width=0", *data]),
        Case("misspelled role of a per-role lr", "train", [*TINY_MLP, "optimizer.roles.haed.lr_mult=10", *data]),
        Case("per-role lr 0", "train", [*TINY_MLP, "optimizer.roles.head.lr_mult=0", *data]),
        Case("coordinate check of a model without a width", "coord_check", ["model=cnn"]),
        Case(
            "width transfer: loss window longer than the run",
            "width_transfer",
            [*data, "steps=10", "loss_window=30"],
        ),
        # --- int8 (issue 24)
        Case(
            "misspelled role of a quantization policy",
            "export",
            [f"ckpt_path={last}", "quantize=int8", "quantize.roles.haed=none"],
        ),
        Case("unknown inference backend", "eval", [f"ckpt_path={last}", "backend=tflite"]),
    ]


def run_case(case: Case, names: dict[str, Path], run_dir: Path) -> Row:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    for key, value in (case.env or {}).items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    script = ROOT / "scripts" / f"{case.script}.py"
    has_run_dir = any(arg.startswith("hydra.run.dir=") for arg in case.args)
    command = [sys.executable, str(script), *case.args, *([] if has_run_dir else [f"hydra.run.dir={run_dir}"])]
    done = subprocess.run(
        command,
        cwd=case.cwd or ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        preexec_fn=(lambda: limit_file_size(case.file_size_limit)) if case.file_size_limit else None,
    )
    lines = [line for line in (done.stderr + "\n" + done.stdout).splitlines() if line.strip()]
    if case.expect_warning:
        shown_lines = [line for line in lines if case.expect_warning in line and "warning" in line.lower()][:1]
    else:
        shown_lines = [line for line in lines if line.startswith("Error:")] or lines[-6:]
    prefix = (
        ""
        if not case.env
        else " ".join(f"{k}={v}" if v is not None else f"(no {k})" for k, v in case.env.items()) + " "
    )
    where = f"(in {case.cwd.name}/) " if case.cwd else ""
    shown = f"{where}{prefix}python scripts/{case.script}.py {' '.join(case.args)}"
    return Row(case.what, hide_paths(shown, names), str(done.returncode), hide_paths(" ".join(shown_lines), names))


def limit_file_size(limit: int) -> None:
    """In the child process: files may not grow past ``limit`` bytes (Python ignores SIGXFSZ: EFBIG)."""
    import resource

    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


def python_rows(names: dict[str, Path]) -> list[Row]:
    import torch

    import linzoo
    from linzoo import LinearSpec, make_linear
    from linzoo.data import MNISTDataModule
    from linzoo.tasks import Classifier

    empty = names["EMPTY"]
    calls: list[tuple[str, str, Callable[[], object]]] = [
        ("unknown model", 'linzoo.create_model("mlpp")', lambda: linzoo.create_model("mlpp")),
        (
            "misspelled option",
            'linzoo.create_model("mlp", hiden_dims=[64])',
            lambda: linzoo.create_model("mlp", hiden_dims=[64]),
        ),
        (
            "layer width 0",
            'linzoo.create_model("mlp", hidden_dims=[0])',
            lambda: linzoo.create_model("mlp", hidden_dims=[0]),
        ),
        ("depth 0", 'linzoo.create_model("transformer", depth=0)', lambda: linzoo.create_model("transformer", depth=0)),
        ("wrong type", 'LinearSpec(bias="no")', lambda: LinearSpec(bias="no")),
        ("unknown init", 'LinearSpec(init="glorot")', lambda: LinearSpec(init="glorot")),
        (
            "misspelled role",
            'LinearSpec(roles={"atn_out": {"init": "zeros"}})',
            lambda: LinearSpec(roles={"atn_out": {"init": "zeros"}}),
        ),
        ("width 0", 'make_linear(784, 0, role="hidden")', lambda: make_linear(784, 0, role="hidden")),
        (
            "wrong input size",
            'make_linear(784, 10, role="head")(torch.zeros(2, 100))',
            lambda: make_linear(784, 10, role="head")(torch.zeros(2, 100)),
        ),
        ("batch size 0", "MNISTDataModule(batch_size=0)", lambda: MNISTDataModule(batch_size=0)),
        (
            "named root without MNIST",
            'MNISTDataModule(root="$EMPTY", download=False).setup()',
            lambda: MNISTDataModule(root=empty, download=False).setup(),
        ),
        (
            "a file never runs code: pickle gadget",
            'linzoo.load("$TMP/hostile/pickle_gadget.ckpt")',
            lambda: linzoo.load(names["ckpt_pickle_gadget"]),
        ),
        (
            "a file never runs code: pickle gadget",
            'Classifier.load_from_checkpoint("$TMP/hostile/pickle_gadget.ckpt")',
            lambda: Classifier.load_from_checkpoint(names["ckpt_pickle_gadget"]),
        ),
        (
            "a file never runs code: subprocess.Popen in the net config",
            'linzoo.create_model("mlp", checkpoint_path="$TMP/hostile/popen_in_net_kwargs.ckpt")',
            lambda: linzoo.create_model("mlp", hidden_dims=[16], checkpoint_path=names["ckpt_popen_in_net_kwargs"]),
        ),
        (
            "malformed file: .safetensors metadata not JSON",
            'linzoo.load("$TMP/hostile/not_json.safetensors")',
            lambda: linzoo.load(names["st_not_json"]),
        ),
        (
            "malformed file: a run directory without checkpoints",
            'linzoo.load("$EMPTY")',
            lambda: linzoo.load(empty),
        ),
    ]
    rows = []
    for what, shown, call in calls:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                call()
                message, outcome = "(accepted)", "returns"
            except Exception as error:  # noqa: BLE001  (the table shows whatever is raised)
                message, outcome = f"{type(error).__name__}: {error}", "raises"
                if not str(error):
                    message += " " + traceback.format_exc(limit=1)
        rows.append(Row(what, shown, outcome, hide_paths(message, names)))
    return rows


def hide_paths(text: str, names: dict[str, Path]) -> str:
    for name in sorted(names, key=lambda key: -len(str(names[key]))):
        path = names[name]
        if name.isupper():
            label = name
        elif path.is_relative_to(names["TMP"]):
            label = f"TMP/{path.relative_to(names['TMP'])}"
        else:
            label = f"TMP/{name}"
        text = text.replace(str(path), f"${label}")
    text = re.sub(r"\$TMP/row\d+", "$TMP/run", text)
    return text.replace(str(ROOT) + "/", "")


def render(rows: list[Row]) -> str:
    head = [
        "# What linzoo prints for bad input",
        "",
        "Generated by `python scripts/error_table.py` (do not edit by hand): every row was run, and the",
        "message is what the command printed. Command-line rows run offline on generated MNIST files;",
        "`$DATA` is such a folder, `$EMPTY` an empty one, `$RUN` a finished tiny run on `$DATA`, `$TMP` the",
        "temporary folder, `$ONE_CLASS` and `$EMPTY_CLASS` image folders with one class and with a class",
        "without images; each command also got `hydra.run.dir=$TMP/run` (a fresh directory) unless it",
        "names one. A user's mistake prints one line starting with `Error:` and exits with status 2;",
        "`HYDRA_FULL_ERROR=1` prints the full traceback instead. Python rows show the exception raised.",
        "",
        f"{len(rows)} bad inputs.",
        "",
        "| # | bad input | input | exit | what it prints |",
        "| --- | --- | --- | --- | --- |",
    ]
    body = [
        f"| {i} | {row.what} | `{row.shown}` | {row.exit_code} | {escape(row.message)} |"
        for i, row in enumerate(rows, start=1)
    ]
    return "\n".join(head + body) + "\n"


def escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
