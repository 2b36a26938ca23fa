"""Section ``time_to_99``: wall seconds to 99% MNIST test accuracy, three contenders, several seeds.

- **peer**: the recipe users know from the PyTorch examples' MNIST script, re-implemented
  here: two 3x3 convs (32, 64) and two Linears (9216-128-10) with dropout, Adadelta lr 1.0,
  the lr times 0.7 after every epoch, batch 64, inputs normalised with MNIST's mean and std,
  torchvision's ``MNIST`` through a ``DataLoader`` (60,000 training images), the test set
  after every epoch, at most ``PEER_MAX_EPOCHS`` epochs.
- **linzoo**: ``experiment=cnn_fast`` composed as ``scripts/train.py`` sees it and run by
  ``linzoo.run.train.train`` (data module, factory-built net, the Lightning Classifier,
  Trainer, validation, checkpoint, test, metrics.json), in this process.
- **hand**: linzoo's hand-written reference loop on the same composed recipe: the same data
  module and batches, net, optimizer, schedule, precision and epochs, validation after every
  epoch, the test at the end.

The clock of each run starts before its data is read and stops when the test accuracy of
the epoch that reaches the target is known: reading the data, building the net, training,
validating, testing, (linzoo) writing the run directory. Imports and the interpreter's start
are not in it (they are shared). linzoo and hand train a fixed number of epochs and are tested
once: their time counts only if that test reaches the target. Contenders alternate per seed
(A B C, C B A, ...); a ratio is the median of the per-seed ratios.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from contextlib import nullcontext
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from dev.benchmarks.recipes import build_datamodule, build_net, build_optimizer, build_scheduler, compose
from dev.benchmarks.reference import ReferenceLoop
from dev.benchmarks.timing import interleaved, median, paired_ratio, print_table

EXPERIMENT = "cnn_fast"
TARGET = 0.99
PEER_MAX_EPOCHS = 8
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081
# --tiny: seconds on fake data (the smoke test): a target any run reaches, small nets.
TINY_TARGET = 0.0
TINY_LINZOO = ["model.net.channels=[4,8]", "model.net.head_hidden_dims=[]", "trainer.max_epochs=1"]


class PeerNet(nn.Module):
    """The PyTorch examples' MNIST net: conv 32, conv 64, max pool, dropout, Linear 9216-128, dropout, Linear 128-10."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3)
        self.conv2 = nn.Conv2d(32, 64, 3)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, 10)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv2(F.relu(self.conv1(images))))
        x = self.dropout1(F.max_pool2d(x, 2)).flatten(1)
        x = self.dropout2(F.relu(self.fc1(x)))
        return F.log_softmax(self.fc2(x), dim=1)


def data_root(args: Any) -> str:
    return args.data_root or os.environ.get("LINZOO_DATA") or "data"


def test_accuracy(net: nn.Module, batches: Any, *, bf16: bool = False) -> float:
    """Top-1 accuracy of ``net`` (eval mode, no grad) over ``batches``; the net returns to training mode."""
    net.eval()
    correct = seen = 0
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else nullcontext():
        for images, labels in batches:
            correct += int((net(images).argmax(-1) == labels).sum())
            seen += len(labels)
    net.train()
    return correct / max(seen, 1)


def run_peer(args: Any, *, seed: int, target: float, max_epochs: int) -> dict[str, Any]:
    """The peer recipe, tested after every epoch until ``target`` (or ``max_epochs``)."""
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    start = time.perf_counter()
    torch.manual_seed(seed)
    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((MNIST_MEAN,), (MNIST_STD,))])
    train_set = datasets.MNIST(data_root(args), train=True, download=False, transform=transform)
    test_set = datasets.MNIST(data_root(args), train=False, download=False, transform=transform)
    train = DataLoader(train_set, batch_size=64, shuffle=True)
    test = DataLoader(test_set, batch_size=1000)
    net = PeerNet()
    optimizer = torch.optim.Adadelta(net.parameters(), lr=1.0)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.7)
    curve: list[dict[str, float]] = []
    reached = None
    for epoch in range(1, max_epochs + 1):
        net.train()
        for images, labels in train:
            optimizer.zero_grad()
            F.nll_loss(net(images), labels).backward()
            optimizer.step()
        scheduler.step()
        accuracy = test_accuracy(net, test)
        curve.append({"epoch": epoch, "s": round(time.perf_counter() - start, 3), "test_acc": accuracy})
        if accuracy >= target:
            reached = curve[-1]["s"]
            break
    return {"seconds": reached, "test_acc": curve[-1]["test_acc"], "epochs": len(curve), "curve": curve}


def recipe_overrides(args: Any, *, seed: int) -> list[str]:
    """``experiment=cnn_fast`` with this seed, full MNIST from ``--data-root`` (--tiny: smaller and faster)."""
    overrides = [f"experiment={EXPERIMENT}", f"seed={seed}", "data.download=false", "print_config=false"]
    if args.data_root:
        overrides.append(f"data.root={args.data_root}")
    if args.tiny:
        overrides += ["data.val_size=200", *TINY_LINZOO]
    return overrides


def run_linzoo(args: Any, *, seed: int, target: float) -> dict[str, Any]:
    """``python scripts/train.py experiment=cnn_fast seed=<seed>``, in this process."""
    from linzoo.run.train import train

    with tempfile.TemporaryDirectory() as run_dir:
        cfg = compose(recipe_overrides(args, seed=seed), run_dir)
        start = time.perf_counter()
        metrics = train(cfg)
        seconds = time.perf_counter() - start
    accuracy = float(metrics["test/acc"])
    return {
        "seconds": seconds if accuracy >= target else None,
        "wall_s": seconds,
        "test_acc": accuracy,
        "epochs": int(cfg.trainer.max_epochs),
    }


def run_hand(args: Any, *, seed: int, target: float) -> dict[str, Any]:
    """The reference loop on the composed recipe: same data module, net, optimizer, schedule, precision, epochs."""
    with tempfile.TemporaryDirectory() as run_dir:
        cfg = compose(recipe_overrides(args, seed=seed), run_dir)
    start = time.perf_counter()
    torch.manual_seed(seed)
    datamodule = build_datamodule(cfg)
    train, val, test = datamodule.train_dataloader(), datamodule.val_dataloader(), datamodule.test_dataloader()
    net = build_net(cfg)
    if cfg.compile:
        net.compile()
    optimizer = build_optimizer(cfg, net)
    epochs = int(cfg.trainer.max_epochs)
    scheduler = build_scheduler(cfg, optimizer, total_steps=epochs * len(train))
    bf16 = str(cfg.trainer.precision).startswith("bf16")
    loop = ReferenceLoop(
        net, optimizer, scheduler=scheduler, label_smoothing=cfg.model.label_smoothing, bf16=bf16, track=True
    )
    for _ in range(epochs):
        loop.train_epoch(train)
        loop.evaluate(val)
    accuracy = loop.evaluate(test)["acc"]
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds if accuracy >= target else None,
        "wall_s": seconds,
        "test_acc": accuracy,
        "epochs": epochs,
    }


def step_variants(args: Any) -> dict[str, Any]:
    """Training steps of cnn_fast's net and batch: float32 or bf16 autocast x NCHW or channels_last, paired."""
    with tempfile.TemporaryDirectory() as run_dir:
        cfg = compose(recipe_overrides(args, seed=0), run_dir)
    batch_size, steps = cfg.data.batch_size, 2 if args.tiny else 20
    images, labels = torch.rand(batch_size, 1, 28, 28), torch.randint(0, 10, (batch_size,))
    contenders = {}
    for name, bf16, channels_last in [
        ("float32", False, False),
        ("bf16", True, False),
        ("float32 channels_last", False, True),
        ("bf16 channels_last", True, True),
    ]:
        torch.manual_seed(0)
        cfg.model.net.channels_last = channels_last
        net = build_net(cfg)
        loop = ReferenceLoop(net, build_optimizer(cfg, net), bf16=bf16)
        contenders[name] = lambda loop=loop: [loop.step(images, labels) for _ in range(steps)]
    times = interleaved(contenders, repeats=args.repeats)
    variants = {
        name: {"ms_per_step": 1000 * median(t) / steps, "time_vs_float32": paired_ratio(t, times["float32"])}
        for name, t in times.items()
    }
    return {"batch_size": batch_size, "variants": variants}


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean test accuracy, and mean seconds to the target over the seeds (None unless every seed reached it)."""
    seconds = [run["seconds"] for run in runs]
    return {
        "mean_test_acc": statistics.fmean(run["test_acc"] for run in runs),
        "mean_seconds": statistics.fmean(seconds) if None not in seconds else None,
        "reached": sum(s is not None for s in seconds),
    }


def ratio(numerator: list[dict[str, Any]], denominator: list[dict[str, Any]], key: str = "seconds") -> float | None:
    """Median over seeds of numerator / denominator seconds (None where a seed missed the target)."""
    pairs = [(a[key], b[key]) for a, b in zip(numerator, denominator, strict=True)]
    if any(a is None or b is None for a, b in pairs):
        return None
    return median(a / b for a, b in pairs)


def section(args: Any) -> dict[str, Any]:
    seeds = [int(seed) for seed in str(args.seeds).split(",")]
    target = TINY_TARGET if args.tiny else TARGET
    peer_epochs = min(args.peer_max_epochs, 1) if args.tiny else args.peer_max_epochs
    contenders = {
        "peer": lambda seed: run_peer(args, seed=seed, target=target, max_epochs=peer_epochs),
        "linzoo": lambda seed: run_linzoo(args, seed=seed, target=target),
        "hand": lambda seed: run_hand(args, seed=seed, target=target),
    }
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in contenders}
    for index, seed in enumerate(seeds):
        names = list(contenders) if index % 2 == 0 else list(contenders)[::-1]
        for name in names:
            runs[name].append({"seed": seed, **contenders[name](seed)})
            print(f"time_to_99: {name}, seed {seed}: {fmt_seconds(runs[name][-1])}", flush=True)
    steps = step_variants(args)
    results: dict[str, Any] = {
        "steps": steps,
        "target": target,
        "seeds": seeds,
        "experiment": EXPERIMENT,
        "peer_max_epochs": peer_epochs,
        "threads": torch.get_num_threads(),
        **{name: {"runs": r, **summary(r)} for name, r in runs.items()},
        "peer_over_linzoo": ratio(runs["peer"], runs["linzoo"]),
        "linzoo_over_hand": ratio(runs["linzoo"], runs["hand"]),
        "linzoo_over_hand_wall": ratio(runs["linzoo"], runs["hand"], key="wall_s"),
    }
    print_time_to_99(results)
    print_table(
        f"9b. A training step of {EXPERIMENT}'s net (batch {steps['batch_size']}, cpu, "
        f"{results['threads']} threads; median of {args.repeats} paired samples)",
        ["precision, memory format", "ms/step", "time / float32"],
        [[name, row["ms_per_step"], row["time_vs_float32"]] for name, row in steps["variants"].items()],
    )
    return results


def fmt_seconds(run: dict[str, Any]) -> str:
    if run["seconds"] is None:
        wall = run["curve"][-1]["s"] if "curve" in run else run["wall_s"]
        return f"not reached ({run['test_acc']:.2%} after {run['epochs']} ep., {wall:.1f} s)"
    return f"{run['seconds']:.1f} s ({run['test_acc']:.2%}, {run['epochs']} ep.)"


def print_time_to_99(results: dict[str, Any]) -> None:
    what = {
        "peer": "PyTorch examples' MNIST recipe (re-implemented): Adadelta, batch 64, test every epoch",
        "linzoo": f"linzoo, experiment={results['experiment']} (scripts/train.py's path, in-process)",
        "hand": f"reference loop, experiment={results['experiment']}'s settings",
    }
    rows = []
    for name in ("peer", "linzoo", "hand"):
        entry = results[name]
        mean = entry["mean_seconds"]
        rows.append(
            [
                what[name],
                *[fmt_seconds(run) for run in entry["runs"]],
                f"{mean:.1f}" if mean is not None else f"{entry['reached']}/{len(entry['runs'])} reached",
                f"{entry['mean_test_acc']:.2%}",
            ]
        )

    def fmt_ratio(value: float | None) -> str:
        return f"x{value:.2f}" if value is not None else "n/a (a seed missed the target)"

    rows.append(["peer / linzoo (median of per-seed ratios; goal >= 8)", fmt_ratio(results["peer_over_linzoo"])])
    rows.append(["linzoo / hand (goal <= 1.15)", fmt_ratio(results["linzoo_over_hand"])])
    for row in rows[-2:]:
        row += [""] * (len(results["seeds"]) + 1)
    print_table(
        f"9. Time to {results['target']:.0%} MNIST test accuracy (cpu, {results['threads']} threads; "
        f"wall s from reading the data to the test that reaches it)",
        ["contender", *[f"seed {seed}" for seed in results["seeds"]], "mean s", "mean test acc"],
        rows,
    )
