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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "errors.md")
    parser.add_argument("--jobs", type=int, default=2, help="command-line rows run at once")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="linzoo-errors-") as tmp:
        tmp_path = Path(tmp).resolve()
        names = prepare(tmp_path)
        cases = command_line_cases(names)
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            rows = list(pool.map(lambda item: run_case(item[1], names, tmp_path / f"row{item[0]}"), enumerate(cases)))
        rows += python_rows(names)
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
    return {
        "DATA": data,
        "EMPTY": empty,
        "RUN": run,
        "NOTES": not_ckpt,
        "TMP": tmp,
        **{k: v for k, v in damaged.items()},
    }


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
    done = subprocess.run(command, cwd=case.cwd or ROOT, env=env, capture_output=True, text=True, timeout=600)
    lines = [line for line in (done.stderr + "\n" + done.stdout).splitlines() if line.strip()]
    if case.expect_warning:
        shown_lines = [line for line in lines if case.expect_warning in line and "WARNING" in line][:1]
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


def python_rows(names: dict[str, Path]) -> list[Row]:
    import torch

    import linzoo
    from linzoo import LinearSpec, make_linear
    from linzoo.data import MNISTDataModule

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
        label = name if name.isupper() else f"TMP/{name}"
        text = text.replace(str(names[name]), f"${label}")
    text = re.sub(r"\$TMP/row\d+", "$TMP/run", text)
    return text.replace(str(ROOT) + "/", "")


def render(rows: list[Row]) -> str:
    head = [
        "# What linzoo prints for bad input",
        "",
        "Generated by `python scripts/error_table.py` (do not edit by hand): every row was run, and the",
        "message is what the command printed. Command-line rows run offline on generated MNIST files;",
        "`$DATA` is such a folder, `$EMPTY` an empty one, `$RUN` a finished tiny run on `$DATA`, `$TMP` the",
        "temporary folder; each command also got `hydra.run.dir=$TMP/run` (a fresh directory) unless it",
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
