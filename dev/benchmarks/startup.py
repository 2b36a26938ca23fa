"""Section ``startup``: predict on one image, from command to answer, against what one image costs.

Cold processes in turn (ABBA...), so machine noise hits them alike, each with its CPU seconds
(user + system, which a busy machine inflates far less than wall seconds): ``python -c pass``
(the interpreter), ``python -c "import torch"`` (the floor: a forward needs torch), and
``python scripts/predict.py ckpt_path=CKPT inputs=ONE.png`` (the whole command: Hydra, the
checkpoint, the image, the table and the CSV). Then, in this process with everything imported:
one warm ``predict_checkpoint`` call (checkpoint read, net built, image read, CSV written), and
the forward alone per image at batch 1 and batch 256. Start-up is the cold command less the
warm call.

The checkpoint is ``--predict-ckpt`` (a run, .ckpt or .safetensors), else the default
``model=mlp`` net with random weights, written as a linzoo checkpoint (the weights do not
change the time).
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from dev.benchmarks.timing import interleaved, median, print_table

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_NET = {"_target_": "linzoo.models.MLP", "hidden_dims": [256, 128]}  # configs/model/mlp.yaml


def write_checkpoint(path: Path) -> Path:
    """The default MLP classifier, random weights, as a checkpoint that predict reads."""
    from linzoo.checkpoint import CONFIG_KEY, NET_PREFIX, build_net

    torch.manual_seed(0)
    net = build_net(DEFAULT_NET)
    build_config = {"model": {"_target_": "linzoo.tasks.Classifier", "net": DEFAULT_NET}, "data": {"dataset": "mnist"}}
    state = {NET_PREFIX + key: value for key, value in net.state_dict().items()}
    torch.save({"state_dict": state, CONFIG_KEY: build_config}, path)
    return path


def write_digit(path: Path) -> Path:
    """A 28x28 stroke, light on dark: one input image."""
    image = np.zeros((28, 28), dtype=np.uint8)
    image[5:23, 12:16] = 255
    Image.fromarray(image).save(path)
    return path


class ColdCommand:
    """A cold ``python ARGUMENTS`` a call (predict: its own run directory each time), keeping the
    CPU seconds of each call too: on a shared machine they hold up better than wall seconds."""

    def __init__(self, arguments: list[str], *, threads: int, folder: Path) -> None:
        self.arguments, self.folder, self.cpu_s = arguments, folder, []
        self.env = {**os.environ, "PYTHONWARNINGS": "ignore"}
        if threads > 0:
            self.env["OMP_NUM_THREADS"] = str(threads)

    def __call__(self) -> None:
        extra = (
            [f"hydra.run.dir={self.folder / f'run{len(self.cpu_s)}'}"] if "scripts/predict.py" in self.arguments else []
        )
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        done = subprocess.run(
            [sys.executable, *self.arguments, *extra],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(self.arguments)} failed:\n{done.stderr[-3000:]}")
        self.cpu_s.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)


def section(args: Any) -> dict[str, Any]:
    from linzoo.tools.image_inputs import read_inputs
    from linzoo.tools.predict import classify, predict_checkpoint

    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        ckpt = Path(args.predict_ckpt) if args.predict_ckpt else write_checkpoint(folder / "mlp.ckpt")
        digit = write_digit(folder / "digit.png")
        cold = {
            "python -c pass": ColdCommand(["-c", "pass"], threads=args.threads, folder=folder),
            "python -c 'import torch'": ColdCommand(["-c", "import torch"], threads=args.threads, folder=folder),
            "scripts/predict.py, one image": ColdCommand(
                ["scripts/predict.py", f"ckpt_path={ckpt}", f"inputs={digit}"], threads=args.threads, folder=folder
            ),
        }
        cold_times = interleaved(cold, repeats=args.repeats)
        warm_folder = folder / "warm"

        def warm() -> None:
            with open(os.devnull, "w") as sink:
                stdout, sys.stdout = sys.stdout, sink
                try:
                    predict_checkpoint(ckpt_path=ckpt, inputs=digit, run_dir=warm_folder)
                finally:
                    sys.stdout = stdout

        import linzoo

        net = linzoo.load(ckpt)
        names, image = read_inputs(digit, image_size=int(net.image_size), in_channels=int(net.in_channels))
        batch = image.expand(256, -1, -1, -1).contiguous()
        labels = [str(index) for index in range(int(net.num_classes))]
        in_process = {
            "predict_checkpoint, warm": warm,
            "forward, batch 1": lambda: classify(net, names, image, labels),
            "forward, batch 256": lambda: classify(net, names * 256, batch, labels),
        }
        warm_times = interleaved(in_process, repeats=max(args.repeats, 5))
    seconds = {name: median(times) for name, times in {**cold_times, **warm_times}.items()}
    seconds["forward, batch 256"] /= 256  # per image
    command = seconds["scripts/predict.py, one image"]
    cpu = {name: median(runner.cpu_s[-args.repeats :]) for name, runner in cold.items()}  # the warm-up round left out
    results = {
        "checkpoint": str(args.predict_ckpt or f"random-weight MLP {DEFAULT_NET['hidden_dims']}"),
        "median_s": seconds,
        "samples_s": {**cold_times, **warm_times},
        "command_s": command,
        "cpu_s": cpu,
        "startup_s": command - seconds["predict_checkpoint, warm"],
        "goal_s": 3.0,
    }
    print_table(
        f"8. predict start-up: cold commands and warm calls ({results['checkpoint']}; median of "
        f"{args.repeats} cold, {max(args.repeats, 5)} warm; forward, batch 256: per image)",
        ["what", "median s", "share of the command", "CPU s (cold)"],
        [[name, value, value / command, cpu.get(name, "")] for name, value in seconds.items()],
    )
    print(f"Start-up (command less the warm call): {results['startup_s']:.2f} s; goal: command < 3 s")
    return results
