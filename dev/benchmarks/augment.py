"""Section ``augment``: what ``data.augment`` costs per training epoch, against no augmentation.

One epoch of the reference loop's MLP step over the training split, batches on the device
(``data.on_device=true``), each augmented as the data module augments training batches
(:mod:`linzoo.data.augment`: per-image parameters, drawn from a generator keyed by the
batch index). The kinds run in turn, so machine noise hits them alike.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from typing import Any

import torch

from dev.benchmarks.recipes import build_datamodule, compose, data_overrides
from dev.benchmarks.reference import ReferenceLoop
from dev.benchmarks.timing import interleaved, median, paired_ratio, print_table


def section(args: Any) -> dict[str, Any]:
    from linzoo.data import DeviceBatches
    from linzoo.data.augment import AUGMENTATIONS, batch_generator, make_augmenter
    from linzoo.models import create_model

    device = torch.device(args.device)
    with tempfile.TemporaryDirectory() as run_dir:
        cfg = compose(["model=mlp", *data_overrides(data_root=args.data_root, tiny=args.tiny)], run_dir)
    datamodule = build_datamodule(cfg)
    batches = DeviceBatches(datamodule.train_set, batch_size=datamodule.batch_size, device=device, shuffle=True)

    def augmented(kind: str) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        augmenter = make_augmenter(kind)
        for index, (images, labels) in enumerate(batches):
            if augmenter is not None:
                images = augmenter(images, generator=batch_generator(seed=0, batch_index=index))
            yield images, labels

    def epoch(kind: str) -> Callable[[], None]:
        torch.manual_seed(0)
        net = create_model("mlp", hidden_dims=(32,) if args.tiny else (256, 128)).to(device)
        loop = ReferenceLoop(net, torch.optim.AdamW(net.parameters(), lr=1e-3))
        return lambda: loop.train_epoch(augmented(kind))

    times = interleaved({kind: epoch(kind) for kind in AUGMENTATIONS}, repeats=args.repeats, device=args.device)
    results = {
        "examples": len(datamodule.train_set),
        "batch_size": datamodule.batch_size,
        "epoch_s": {kind: median(t) for kind, t in times.items()},
        "ratio": {kind: paired_ratio(t, times["none"]) for kind, t in times.items()},
    }
    print_table(
        f"7. data.augment: one training epoch ({results['examples']} images, batch {results['batch_size']}, "
        f"{device}, MLP 784-256-128-10; median of {args.repeats})",
        ["data.augment", "epoch s", "epoch / none"],
        [[kind, results["epoch_s"][kind], results["ratio"][kind]] for kind in AUGMENTATIONS],
    )
    return results
