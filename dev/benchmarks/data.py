"""Section ``data``: ``DeviceBatches`` (``data.on_device=true``) against the DataLoader over one epoch.

Iteration only, and iteration plus the reference loop's MLP training step.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from typing import Any

import torch

from dev.benchmarks.recipes import build_datamodule, compose, data_overrides
from dev.benchmarks.reference import ReferenceLoop
from dev.benchmarks.timing import interleaved, median, paired_ratio, print_table


def section(args: Any) -> dict[str, Any]:
    from linzoo.data import DeviceBatches
    from linzoo.models import create_model

    device = torch.device(args.device)
    with tempfile.TemporaryDirectory() as run_dir:
        cfg = compose(["model=mlp", *data_overrides(data_root=args.data_root, tiny=args.tiny)], run_dir)
    datamodule = build_datamodule(cfg)
    loader = datamodule.train_dataloader()
    device_batches = DeviceBatches(datamodule.train_set, batch_size=datamodule.batch_size, device=device, shuffle=True)
    sources = {"DataLoader": loader, "DeviceBatches": device_batches}

    def iterate(batches: Any) -> Callable[[], None]:
        def run() -> None:
            for images, labels in batches:
                images = images.to(device, non_blocking=True)
                labels = labels.to(device, non_blocking=True)

        return run

    loops = {}
    for name in sources:
        torch.manual_seed(0)
        net = create_model("mlp", hidden_dims=(32,) if args.tiny else (256, 128)).to(device)
        loops[name] = ReferenceLoop(net, torch.optim.AdamW(net.parameters(), lr=1e-3))

    def train(name: str, batches: Any) -> Callable[[], None]:
        return lambda: loops[name].train_epoch(batches)

    iteration = interleaved({n: iterate(b) for n, b in sources.items()}, repeats=args.repeats, device=args.device)
    training = interleaved({n: train(n, b) for n, b in sources.items()}, repeats=args.repeats, device=args.device)
    results = {
        "examples": len(datamodule.train_set),
        "batch_size": datamodule.batch_size,
        "batches": len(loader),
        "iteration_s": {n: median(t) for n, t in iteration.items()},
        "iteration_ratio": paired_ratio(iteration["DeviceBatches"], iteration["DataLoader"]),
        "training_s": {n: median(t) for n, t in training.items()},
        "training_ratio": paired_ratio(training["DeviceBatches"], training["DataLoader"]),
    }
    print_table(
        f"3. One epoch of batches ({results['examples']} images, batch {results['batch_size']}, {device}; "
        f"median of {args.repeats})",
        ["", "DataLoader s", "DeviceBatches s", "DeviceBatches / DataLoader"],
        [
            [
                "iteration only",
                results["iteration_s"]["DataLoader"],
                results["iteration_s"]["DeviceBatches"],
                results["iteration_ratio"],
            ],
            [
                "iteration + MLP step",
                results["training_s"]["DataLoader"],
                results["training_s"]["DeviceBatches"],
                results["training_ratio"],
            ],
        ],
    )
    return results
