"""Speed of linzoo, measured side by side in one process run (so machine noise cancels).

    python scripts/benchmark.py                                   # CPU sections 1-4, full MNIST
    python scripts/benchmark.py --sections gpu --device cuda      # section 5 on a GPU
    python scripts/benchmark.py --tiny --data-root DIR --out /tmp/bench.json   # seconds: the smoke test

docs/benchmarks.md has the results and the machine they come from.

Sections (``--sections``, comma separated):

``overhead``
    linzoo's real training path (the composed ``configs/train.yaml``: Classifier task,
    MNISTDataModule, Lightning Trainer with the default callbacks and logger) against a
    hand-written PyTorch loop on the same net, data, batch size, optimizer and schedule.
    The hand loop steps inside the same ``fit``, one step after each of Lightning's
    (ABAB), and per-epoch times after a warm-up epoch are compared as medians of
    per-epoch ratios. Variants: the DataLoader path, ``data.on_device=true``, no
    callbacks, a bare LightningModule (Lightning's own floor) and the per-step logging
    linzoo had before issue 5 (``--overhead-variants``).
``linear``
    A factory-built Linear against ``nn.Linear`` (same weights), forward+backward.
``data``
    ``DeviceBatches`` (``data.on_device=true``) against the DataLoader over one epoch:
    iteration only, and iteration plus an MLP training step.
``compile``
    ``torch.compile`` on/off x precision 32-true/bf16-mixed for the MLP and the
    transformer: training steps per second (compile warm-up reported separately).
``gpu``
    Time to 99% test accuracy for the CNN and to 98% for the MLP with the data on the
    device, the transformer's images/s eager/compile/bf16, and a large bf16 factory
    Linear's TFLOP/s against ``torch.matmul`` measured in the same run. Meant for
    ``--device cuda``; runs on CPU too (``--tiny`` lowers sizes and targets).

Every section prints a table and the whole result goes to ``--out`` as JSON.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = ROOT / "configs"
SECTIONS = ("overhead", "linear", "data", "compile", "gpu")
DEFAULT_SECTIONS = ("overhead", "linear", "data", "compile")


# ----------------------------------------------------------------------- timing helpers
def sync(device: torch.device | str) -> None:
    """Wait for queued device work (CUDA kernels run asynchronously)."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


def interleaved(
    contenders: dict[str, Callable[[], Any]], *, repeats: int, warmup: int = 1, device: str = "cpu"
) -> dict[str, list[float]]:
    """Seconds per call of each contender, called in turn ``repeats`` times.

    The order is reversed every other round (ABBA...), so a slow drift of the machine
    hits every contender alike. ``warmup`` untimed rounds come first.
    """
    names = list(contenders)
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(warmup + repeats):
        order = names if round_index % 2 == 0 else names[::-1]
        for name in order:
            sync(device)
            start = time.perf_counter()
            contenders[name]()
            sync(device)
            if round_index >= warmup:
                times[name].append(time.perf_counter() - start)
    return times


def paired_ratio(numerator: list[float], denominator: list[float]) -> float:
    """Median of per-round ratios: each pair ran back to back, so noise mostly cancels."""
    return median(a / b for a, b in zip(numerator, denominator, strict=True))


def print_table(title: str, header: list[str], rows: list[list[Any]]) -> None:
    cells = [header, *[[fmt(cell) for cell in row] for row in rows]]
    widths = [max(len(str(row[i])) for row in cells) for i in range(len(header))]
    print(f"\n## {title}\n")
    print("| " + " | ".join(str(h).ljust(w) for h, w in zip(header, widths)) + " |")
    print("| " + " | ".join("-" * w for w in widths) + " |")
    for row in cells[1:]:
        print("| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths)) + " |")
    sys.stdout.flush()


def fmt(value: Any) -> str:
    if isinstance(value, float):
        if value == 0 or 0.01 <= abs(value) < 1e5:
            return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"
        return f"{value:.3g}"
    return str(value)


# ------------------------------------------------------------------ linzoo from config
def compose(overrides: list[str], output_dir: Path) -> Any:
    """The composed ``configs/train.yaml``, exactly what ``scripts/train.py`` sees."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from linzoo.config import register_configs

    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return hydra_compose("train", overrides=[*overrides, f"paths.output_dir={output_dir}"])


def data_overrides(args: argparse.Namespace) -> list[str]:
    overrides = ["data=mnist", "data.download=false"]
    if args.data_root:
        overrides.append(f"data.root={args.data_root}")
    if args.tiny:
        overrides.append("data.val_size=200")
    return overrides


def build_datamodule(cfg: Any) -> Any:
    from hydra.utils import instantiate

    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")
    return datamodule


def build_net(cfg: Any) -> nn.Module:
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    return instantiate(OmegaConf.to_container(cfg.model.net, resolve=True))


def tiny_model_overrides(model: str) -> list[str]:
    return {
        "mlp": ["model.net.hidden_dims=[32]"],
        "cnn": ["model.net.channels=[8,16]"],
        "transformer": ["model.net.dim=16", "model.net.depth=1", "model.net.num_heads=2", "model.net.patch_size=7"],
    }[model]


# ============================================================ 1. framework overhead
class HandLoop:
    """The training loop one writes by hand: same net, optimizer, schedule and batches.

    Stepped from outside (``start_epoch``, ``step`` per batch, ``end_epoch``) so that
    its steps can alternate with Lightning's. It keeps the epoch's training loss and
    accuracy as tensors (no per-step sync), the bookkeeping linzoo's Classifier does
    too, and validates as Lightning does.
    """

    def __init__(
        self, cfg: Any, net: nn.Module, train_batches: Any, val_batches: Any, *, total_steps: int, max_batches: int
    ) -> None:
        from hydra.utils import instantiate

        from linzoo.tasks.optim import weight_decay_groups

        self.net = net
        self.device = next(net.parameters()).device
        self.optimizer = instantiate(cfg.optimizer)(weight_decay_groups(net))
        self.scheduler = instantiate(cfg.scheduler)(self.optimizer, total_steps=total_steps) if cfg.scheduler else None
        self.train_batches = train_batches
        self.val_batches = val_batches
        self.max_batches = max_batches
        self.metrics: dict[str, float] = {}

    def start_epoch(self) -> None:
        self.net.train()
        self._batches = iter(self.train_batches)
        self._steps = self._seen = 0
        self._loss_sum = torch.zeros((), device=self.device)
        self._correct = torch.zeros((), dtype=torch.int64, device=self.device)

    def step(self) -> None:
        """One training step on the next batch (nothing once the epoch's batches are used up)."""
        if self._steps == self.max_batches:
            return
        images, labels = next(self._batches)
        images, labels = images.to(self.device, non_blocking=True), labels.to(self.device, non_blocking=True)
        logits = self.net(images)
        loss = F.cross_entropy(logits, labels)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        self._loss_sum += loss.detach() * len(labels)
        self._correct += (logits.detach().argmax(-1) == labels).sum()
        self._seen += len(labels)
        self._steps += 1

    def end_epoch(self) -> None:
        while self._steps < self.max_batches:  # Lightning ran fewer batches: finish the epoch
            self.step()
        seen = self._seen
        self.metrics.update({"train/loss": float(self._loss_sum) / seen, "train/acc": float(self._correct) / seen})

    @torch.no_grad()
    def validate(self) -> None:
        if self.val_batches is None:
            return
        self.net.eval()
        loss_sum = torch.zeros((), device=self.device)
        correct, seen = torch.zeros((), dtype=torch.int64, device=self.device), 0
        for images, labels in self.val_batches:
            images, labels = images.to(self.device), labels.to(self.device)
            logits = self.net(images)
            loss_sum += F.cross_entropy(logits, labels, reduction="sum")
            correct += (logits.argmax(-1) == labels).sum()
            seen += len(labels)
        self.metrics.update({"val/loss": float(loss_sum) / seen, "val/acc": float(correct) / seen})


def make_interleaving_timer(hand: HandLoop) -> Any:
    """A Lightning callback that runs one hand step after each Lightning step and times both.

    Steps alternate (Lightning, hand, Lightning, ...), so load from other processes hits
    both alike. An epoch's Lightning time is its wall time less the hand steps inside it:
    training from ``on_train_epoch_start`` to validation start (or the epoch end), the
    whole epoch (validation, checkpoints, logs) to ``on_train_epoch_end``. The hand side
    validates after Lightning's epoch. This callback's own hook calls count as Lightning's.
    """
    import lightning as L

    class InterleavedTimer(L.Callback):
        def __init__(self) -> None:
            self.hand_train: list[float] = []
            self.hand_epoch: list[float] = []
            self.train: list[float] = []
            self.epoch: list[float] = []
            self._start = 0.0
            self._hand = 0.0  # hand seconds inside the current Lightning epoch
            self._hand_at_train_end = 0.0
            self._train_end: float | None = None

        def _run_hand(self, fn: Callable[[], None]) -> None:
            sync(hand.device)  # on a GPU, Lightning's queued work belongs to Lightning's time
            start = time.perf_counter()
            fn()
            sync(hand.device)
            self._hand += time.perf_counter() - start

        def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
            self._hand, self._train_end = 0.0, None
            self._run_hand(hand.start_epoch)
            self._start = time.perf_counter() - self._hand

        def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
            self._run_hand(hand.step)

        def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
            if not trainer.sanity_checking and self._train_end is None:
                self._run_hand(hand.end_epoch)
                self._train_end = time.perf_counter()
                self._hand_at_train_end = self._hand

        def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
            end = time.perf_counter()
            if self._train_end is None:
                self._run_hand(hand.end_epoch)
                end = self._train_end = time.perf_counter()
                self._hand_at_train_end = self._hand
            hand_train = self._hand_at_train_end
            self.train.append(self._train_end - self._start - hand_train)
            self.epoch.append(end - self._start - self._hand)
            start = time.perf_counter()
            hand.validate()
            self.hand_train.append(hand_train)
            self.hand_epoch.append(self._hand + time.perf_counter() - start)

    return InterleavedTimer()


def legacy_classifier(task: Any) -> Any:
    """The Classifier as it was before issue 5: ``self.log`` and a torchmetrics update every step."""
    from torchmetrics.classification import MulticlassAccuracy

    from linzoo.tasks import Classifier

    class PerStepLoggingClassifier(Classifier):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.train_acc = MulticlassAccuracy(self.num_classes, average="micro")

        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            images, labels = batch
            logits = self(images)
            loss = F.cross_entropy(logits, labels, label_smoothing=self.label_smoothing)
            self.train_acc.update(logits.detach().argmax(dim=-1), labels)
            values = {"loss": loss.detach(), "acc": self.train_acc}
            for index, (name, value) in enumerate(values.items()):
                self.log(
                    f"train/{name}", value, on_step=False, on_epoch=True, prog_bar=index == 0, batch_size=len(labels)
                )
            return loss

        def on_train_epoch_end(self) -> None:  # the values above are logged by Lightning itself
            pass

    return PerStepLoggingClassifier(
        net=task.net,
        optimizer=task.optimizer_factory,
        scheduler=task.scheduler_factory,
        num_classes=task.num_classes,
        label_smoothing=task.label_smoothing,
    )


def bare_lightning_module(task: Any) -> Any:
    """The least a LightningModule can be: the same net, loss, optimizer and schedule, no logging."""
    import lightning as L

    from linzoo.tasks.optim import weight_decay_groups

    class Bare(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = task.net

        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            images, labels = batch
            return F.cross_entropy(self.net(images), labels)

        def configure_optimizers(self) -> Any:
            optimizer = task.optimizer_factory(weight_decay_groups(self.net))
            if task.scheduler_factory is None:
                return optimizer
            scheduler = task.scheduler_factory(optimizer, total_steps=int(self.trainer.estimated_stepping_batches))
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    return Bare()


# name -> (description, data.on_device, extra overrides, kind of LightningModule)
OVERHEAD_VARIANTS: dict[str, tuple[str, bool, list[str], str]] = {
    "linzoo": ("linzoo, default config (DataLoader)", False, [], "linzoo"),
    "linzoo_on_device": ("linzoo, data.on_device=true", True, [], "linzoo"),
    "linzoo_no_callbacks": (
        "linzoo, callbacks=none, no logger, no progress bar",
        False,
        ["callbacks=none", "~logger", "+trainer.enable_progress_bar=false"],
        "linzoo",
    ),
    "bare_lightning": (
        "bare LightningModule (loss only), no callbacks/logger/progress bar/validation",
        False,
        ["callbacks=none", "~logger", "+trainer.enable_progress_bar=false", "trainer.enable_model_summary=false"],
        "bare",
    ),
    "before": ("linzoo before issue 5: self.log + torchmetrics every step", False, [], "legacy"),
}


def run_overhead(args: argparse.Namespace, variant: str) -> dict[str, Any]:
    import lightning as L
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from linzoo.data import DeviceBatches
    from linzoo.instantiation import instantiate_all

    description, on_device, extra, kind = OVERHEAD_VARIANTS[variant]
    epochs = 1 + args.repeats  # the first pair is the warm-up
    with tempfile.TemporaryDirectory() as run_dir:
        overrides = [
            "model=mlp",
            f"trainer={'gpu' if args.device == 'cuda' else 'cpu'}",
            f"trainer.max_epochs={epochs}",
            f"data.on_device={str(on_device).lower()}",
            *data_overrides(args),
            *(tiny_model_overrides("mlp") + ["trainer.limit_train_batches=20"] if args.tiny else []),
            *extra,
        ]
        cfg = compose(overrides, Path(run_dir))
        L.seed_everything(cfg.seed, workers=True, verbose=False)
        datamodule = instantiate(cfg.data)
        task = instantiate(OmegaConf.to_container(cfg.model, resolve=True))
        if kind == "legacy":
            task = legacy_classifier(task)
        elif kind == "bare":
            task = bare_lightning_module(task)
        datamodule.setup("fit")
        device = torch.device(args.device)
        # The hand loop: a copy of the same net, same optimizer and schedule, and batches
        # from the same data module (its DataLoader, or DeviceBatches on the device).
        hand_net = copy.deepcopy(task.net).to(device)
        if on_device:
            train_batches: Any = DeviceBatches(
                datamodule.train_set, batch_size=datamodule.batch_size, device=device, shuffle=True
            )
            val_batches: Any = DeviceBatches(datamodule.val_set, batch_size=datamodule.eval_batch_size, device=device)
        else:
            train_batches, val_batches = datamodule.train_dataloader(), datamodule.val_dataloader()
        limit = cfg.trainer.limit_train_batches
        max_batches = min(len(train_batches), limit) if isinstance(limit, int) else len(train_batches)
        hand = HandLoop(
            cfg,
            hand_net,
            train_batches,
            None if kind == "bare" else val_batches,
            total_steps=max_batches * epochs,
            max_batches=max_batches,
        )
        timer = make_interleaving_timer(hand)
        callbacks = [*instantiate_all(cfg.get("callbacks")), timer]
        loggers = instantiate_all(cfg.get("logger"))
        trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if kind == "bare":
                trainer.fit(task, train_dataloaders=train_batches if on_device else datamodule.train_dataloader())
            else:
                trainer.fit(task, datamodule=datamodule)
        final = {k: float(v) for k, v in trainer.callback_metrics.items() if k in hand.metrics}
    timed = slice(1, None)  # drop the warm-up pair
    return {
        "description": description,
        "overrides": overrides,
        "on_device": on_device,
        "steps_per_epoch": max_batches,
        "batch_size": datamodule.batch_size,
        "data_source": datamodule.source,
        "linzoo_train_s": timer.train[timed],
        "hand_train_s": timer.hand_train[timed],
        "linzoo_epoch_s": timer.epoch[timed],
        "hand_epoch_s": timer.hand_epoch[timed],
        "ratio_train": paired_ratio(timer.train[timed], timer.hand_train[timed]),
        "ratio_epoch": paired_ratio(timer.epoch[timed], timer.hand_epoch[timed]),
        "extra_ms_per_step": 1e3 * median(
            (a - b) / max_batches for a, b in zip(timer.train[timed], timer.hand_train[timed])
        ),
        "final_metrics": {"lightning": final, "hand": hand.metrics},
    }


def section_overhead(args: argparse.Namespace) -> dict[str, Any]:
    results = {name: run_overhead(args, name) for name in args.overhead_variants}
    rows = [
        [
            r["description"],
            r["steps_per_epoch"],
            median(r["hand_train_s"]),
            median(r["linzoo_train_s"]),
            r["ratio_train"],
            r["extra_ms_per_step"],
            r["ratio_epoch"],
        ]
        for r in results.values()
    ]
    print_table(
        f"1. Training epoch vs a hand-written loop (MLP, {args.device}; median of {args.repeats} paired epochs)",
        ["Lightning side", "steps", "hand s", "Lightning s", "ratio", "extra ms/step", "ratio incl. validation"],
        rows,
    )
    return results


# ================================================================ 2. Linear factory
LINEAR_SHAPES = [((128, 784), 256), ((128, 256), 10), ((4096, 512), 512), ((64, 49, 128), 384)]
TINY_LINEAR_SHAPES = [((16, 32), 8), ((4, 5, 16), 24)]


def calibrate(fn: Callable[[], Any], *, target_s: float, device: str) -> int:
    """How many calls of ``fn`` take about ``target_s`` seconds."""
    fn()
    calls = 1
    while True:
        sync(device)
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        sync(device)
        elapsed = time.perf_counter() - start
        if elapsed >= target_s / 4 or calls >= 1 << 16:
            return max(1, int(calls * target_s / max(elapsed, 1e-9)))
        calls *= 4


def section_linear(args: argparse.Namespace) -> dict[str, Any]:
    from linzoo.layers.linear import LinearSpec, make_linear

    device = args.device
    results = {}
    for input_shape, out_features in TINY_LINEAR_SHAPES if args.tiny else LINEAR_SHAPES:
        in_features = input_shape[-1]
        torch.manual_seed(0)
        reference = nn.Linear(in_features, out_features, device=device)
        factory = make_linear(in_features, out_features, role="hidden", spec=LinearSpec())
        factory.to(device).load_state_dict(reference.state_dict())
        x = torch.randn(*input_shape, device=device, requires_grad=True)
        grad = torch.randn(*input_shape[:-1], out_features, device=device)

        def forward_backward(layer: nn.Module, calls: int) -> Callable[[], None]:
            def run() -> None:
                for _ in range(calls):
                    layer.weight.grad = layer.bias.grad = x.grad = None
                    layer(x).backward(grad)

            return run

        calls = calibrate(forward_backward(reference, 1), target_s=0.002 if args.tiny else 0.02, device=device)
        times = interleaved(
            {"nn.Linear": forward_backward(reference, calls), "factory": forward_backward(factory, calls)},
            repeats=args.repeats * 8,
            device=device,
        )
        name = f"{list(input_shape)} x [{in_features},{out_features}]"
        results[name] = {
            "calls_per_sample": calls,
            "nn_linear_us": 1e6 * median(times["nn.Linear"]) / calls,
            "factory_us": 1e6 * median(times["factory"]) / calls,
            "ratio": paired_ratio(times["factory"], times["nn.Linear"]),
        }
    print_table(
        f"2. Factory Linear vs nn.Linear, forward+backward ({device}; median of {args.repeats * 8} paired samples)",
        ["input x weight", "nn.Linear us", "factory us", "ratio"],
        [[name, r["nn_linear_us"], r["factory_us"], r["ratio"]] for name, r in results.items()],
    )
    return results


# ================================================================== 3. data path
def section_data(args: argparse.Namespace) -> dict[str, Any]:
    from linzoo.data import DeviceBatches
    from linzoo.models import create_model

    device = torch.device(args.device)
    with tempfile.TemporaryDirectory() as run_dir:
        cfg = compose(["model=mlp", *data_overrides(args)], Path(run_dir))
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

    nets = {}
    for name in sources:
        torch.manual_seed(0)
        net = create_model("mlp", hidden_dims=(32,) if args.tiny else (256, 128)).to(device)
        nets[name] = (net, torch.optim.AdamW(net.parameters(), lr=1e-3))

    def train(name: str, batches: Any) -> Callable[[], None]:
        net, optimizer = nets[name]

        def run() -> None:
            for images, labels in batches:
                images = images.to(device, non_blocking=True)
                labels = labels.to(device, non_blocking=True)
                loss = F.cross_entropy(net(images), labels)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()

        return run

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
            ["iteration only", results["iteration_s"]["DataLoader"], results["iteration_s"]["DeviceBatches"],
             results["iteration_ratio"]],
            ["iteration + MLP step", results["training_s"]["DataLoader"], results["training_s"]["DeviceBatches"],
             results["training_ratio"]],
        ],
    )
    return results


# ======================================================== 4. compile and precision
def training_step_fn(
    net: nn.Module, optimizer: torch.optim.Optimizer, images: torch.Tensor, labels: torch.Tensor, *, bf16: bool
) -> Callable[[], None]:
    """One training step as Lightning runs it: autocast around the forward (bf16-mixed), backward outside."""
    device_type = images.device.type

    def step() -> None:
        with torch.autocast(device_type, dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(net(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def section_compile(args: argparse.Namespace) -> dict[str, Any]:
    device = args.device
    batch_size = 16 if args.tiny else 128
    steps = 3 if args.tiny else 20
    results: dict[str, Any] = {"batch_size": batch_size, "steps_per_sample": steps, "backend": args.compile_backend}
    rows = []
    for model in ("mlp", "transformer"):
        with tempfile.TemporaryDirectory() as run_dir:
            overrides = [f"model={model}", *data_overrides(args), *(tiny_model_overrides(model) if args.tiny else [])]
            cfg = compose(overrides, Path(run_dir))
        torch.manual_seed(0)
        base = build_net(cfg).to(device)
        images = torch.rand(batch_size, 1, 28, 28, device=device)
        labels = torch.randint(0, 10, (batch_size,), device=device)
        contenders: dict[str, Callable[[], None]] = {}
        warmup_s: dict[str, float] = {}
        torch._dynamo.reset()
        variants = [(False, "32-true", True), (False, "32-true", False), (False, "bf16-mixed", True)]
        if args.compile_backend != "none":
            variants += [(True, "32-true", True), (True, "bf16-mixed", True)]
        for compiled, precision, fused in variants:
            # AdamW as configs/optimizer/adamw.yaml makes it (fused); one row without, for comparison.
            name = f"{'compile' if compiled else 'eager'} {precision}{'' if fused else ', AdamW fused=false'}"
            net = copy.deepcopy(base)
            if compiled:
                net.compile(backend=args.compile_backend)
            optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3, fused=fused)
            step = training_step_fn(net, optimizer, images, labels, bf16=precision == "bf16-mixed")
            sync(device)
            start = time.perf_counter()
            for _ in range(2):  # compiles forward and backward; eager: allocator warm-up
                step()
            sync(device)
            warmup_s[name] = time.perf_counter() - start

            def many(step: Callable[[], None] = step) -> None:
                for _ in range(steps):
                    step()

            contenders[name] = many
        times = interleaved(contenders, repeats=args.repeats, device=device)
        base_time = times["eager 32-true"]
        results[model] = {
            name: {
                "steps_per_s": steps / median(t),
                "speedup_vs_eager_32": paired_ratio(base_time, t),
                "warmup_s": warmup_s[name],
            }
            for name, t in times.items()
        }
        rows += [[model, name, r["steps_per_s"], r["speedup_vs_eager_32"], r["warmup_s"]]
                 for name, r in results[model].items()]
    print_table(
        f"4. Training steps/s, compile x precision (batch {batch_size}, {device}, backend {args.compile_backend}; "
        f"median of {args.repeats})",
        ["model", "variant", "steps/s", "speed-up vs eager 32-true", "first 2 steps s (compile)"],
        rows,
    )
    return results


# ======================================================================= 5. GPU
def reset_all_parameters(net: nn.Module) -> None:
    """Fresh weights in place (compiled code stays valid): every submodule's reset_parameters."""
    for module in net.modules():
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
        if hasattr(module, "reset_running_stats"):
            module.reset_running_stats()


def images_on_device(
    dataset: Any, device: torch.device, memory_format: torch.memory_format = torch.contiguous_format
) -> torch.Tensor:
    """A split's uint8 images as float32 in [0, 1] on ``device``, converted once."""
    return dataset.images.to(device).float().div_(255.0).contiguous(memory_format=memory_format)


@torch.no_grad()
def accuracy(
    net: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, bf16: bool, batch_size: int = 2000
) -> float:
    net.eval()
    correct = torch.zeros((), dtype=torch.int64, device=images.device)
    for start in range(0, len(labels), batch_size):
        with torch.autocast(images.device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = net(images[start : start + batch_size])
        correct += (logits.argmax(-1) == labels[start : start + batch_size]).sum()
    net.train()
    return float(correct) / len(labels)


def time_to_accuracy(
    net: nn.Module,
    train: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor],
    *,
    target: float,
    epochs: int,
    batch_size: int,
    lr: float,
    bf16: bool,
    label_smoothing: float,
    device: str,
    seed: int = 0,
) -> dict[str, Any]:
    """Train on device-resident data, test after each epoch; the clock counts training only.

    AdamW + OneCycle over ``epochs``; stops at the first epoch whose test accuracy
    reaches ``target``. Returns the training seconds to that point and the curve.
    """
    images, labels = train
    generator = torch.Generator(device=images.device).manual_seed(seed)
    steps_per_epoch = len(labels) // batch_size
    fused = images.device.type == "cuda"  # one kernel for the whole update on a GPU
    optimizer = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=5e-4, betas=(0.9, 0.99), fused=fused)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=lr, total_steps=epochs * steps_per_epoch, pct_start=0.25
    )
    train_seconds, curve, reached = 0.0, [], None
    net.train()
    for epoch in range(epochs):
        sync(device)
        start = time.perf_counter()
        order = torch.randperm(len(labels), device=images.device, generator=generator)
        for step in range(steps_per_epoch):
            index = order[step * batch_size : (step + 1) * batch_size]
            with torch.autocast(images.device.type, dtype=torch.bfloat16, enabled=bf16):
                loss = F.cross_entropy(net(images[index]), labels[index], label_smoothing=label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
        sync(device)
        train_seconds += time.perf_counter() - start
        test_accuracy = accuracy(net, *test, bf16=bf16)
        curve.append({"epoch": epoch + 1, "train_s": round(train_seconds, 4), "test_acc": test_accuracy})
        if test_accuracy >= target:
            reached = train_seconds
            break
    return {"target": target, "seconds_to_target": reached, "epochs_run": len(curve), "curve": curve}


# GPU recipes: small nets, large batches, OneCycle, bf16, channels_last (CNN), compile.
# --tiny shrinks them to seconds on a CPU with lower targets (the smoke test).
TIME_TO_ACCURACY_RECIPES: dict[str, dict[str, Any]] = {
    "cnn": {"model": {"channels": (32, 64, 128)}, "target": 0.99, "epochs": 4, "batch_size": 512, "lr": 1e-2,
            "label_smoothing": 0.1, "channels_last": True},
    "mlp": {"model": {"hidden_dims": (1024, 512), "dropout": 0.2}, "target": 0.98, "epochs": 8, "batch_size": 512,
            "lr": 3e-3, "label_smoothing": 0.0, "channels_last": False},
}
TINY_RECIPE_CHANGES: dict[str, dict[str, Any]] = {
    "cnn": {"model": {"channels": (8, 16)}, "target": 0.3, "epochs": 2, "batch_size": 64},
    "mlp": {"model": {"hidden_dims": (32,), "dropout": 0.2}, "target": 0.2, "epochs": 2, "batch_size": 64},
}


def gpu_time_to_accuracy(args: argparse.Namespace, device: torch.device, *, compile_nets: bool) -> dict[str, Any]:
    from linzoo.models import create_model

    with tempfile.TemporaryDirectory() as run_dir:
        datamodule = build_datamodule(compose(["model=cnn", *data_overrides(args)], Path(run_dir)))
    # The official 60,000 training images (linzoo's train + validation split); the 10,000 test images.
    train_sets = [datamodule.train_set, datamodule.val_set]
    train_labels = torch.cat([s.labels for s in train_sets])[: 512 if args.tiny else None].to(device)
    test_labels = datamodule.test_set.labels.to(device)
    results = {}
    for name, recipe in TIME_TO_ACCURACY_RECIPES.items():
        recipe = {**recipe, **(TINY_RECIPE_CHANGES[name] if args.tiny else {})}
        torch.manual_seed(0)
        net = create_model(name, **recipe["model"]).to(device)
        memory_format = torch.channels_last if recipe["channels_last"] else torch.contiguous_format
        net = net.to(memory_format=memory_format)
        images = torch.cat([images_on_device(s, device, memory_format) for s in train_sets])[: len(train_labels)]
        test = (images_on_device(datamodule.test_set, device, memory_format), test_labels)
        if compile_nets:
            net.compile(backend=args.compile_backend)
        options = {k: recipe[k] for k in ("epochs", "batch_size", "lr", "label_smoothing")}
        # Warm-up: 8 steps and a test pass (compiles, picks cuDNN algorithms), then fresh weights in place.
        sync(device)
        start = time.perf_counter()
        few = 8 * recipe["batch_size"]
        time_to_accuracy(net, (images[:few], train_labels[:few]), test, target=2.0,
                         **{**options, "epochs": 1}, bf16=True, device=args.device)
        warmup = time.perf_counter() - start
        reset_all_parameters(net)
        run = time_to_accuracy(net, (images, train_labels), test, target=recipe["target"], **options, bf16=True,
                               device=args.device)
        results[name] = {**run, **options, "warmup_s": warmup, "bf16": True, "channels_last": recipe["channels_last"],
                         "compile": args.compile_backend if compile_nets else False, "train_images": len(train_labels),
                         "model": {k: list(v) if isinstance(v, tuple) else v for k, v in recipe["model"].items()}}
        del images, test
    return results


def gpu_transformer_throughput(args: argparse.Namespace, device: torch.device, *, compile_nets: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as run_dir:
        tiny = tiny_model_overrides("transformer") if args.tiny else []
        cfg = compose(["model=transformer", *data_overrides(args), *tiny], Path(run_dir))
    batch_size, steps = (16, 2) if args.tiny else (512, 20)
    torch.manual_seed(0)
    base = build_net(cfg).to(device)
    images = torch.rand(batch_size, 1, 28, 28, device=device)
    labels = torch.randint(0, 10, (batch_size,), device=device)
    variants = [("eager", False, False), ("eager bf16", False, True)]
    if compile_nets:
        variants += [("compile", True, False), ("compile bf16", True, True)]
    contenders, warmups = {}, {}
    for name, compiled, bf16 in variants:
        net = copy.deepcopy(base)
        if compiled:
            net.compile(backend=args.compile_backend)
        step = training_step_fn(net, torch.optim.AdamW(net.parameters(), lr=1e-3), images, labels, bf16=bf16)
        sync(device)
        start = time.perf_counter()
        for _ in range(3):
            step()
        sync(device)
        warmups[name] = time.perf_counter() - start
        contenders[name] = lambda step=step: [step() for _ in range(steps)]
    times = interleaved(contenders, repeats=args.repeats, device=args.device)
    return {
        "batch_size": batch_size,
        **{
            name: {
                "images_per_s": batch_size * steps / median(t),
                "speedup_vs_eager": paired_ratio(times["eager"], t),
                "warmup_s": warmups[name],
            }
            for name, t in times.items()
        },
    }


def gpu_linear_tflops(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """A factory Linear n x n in bf16, forward+backward (3 GEMMs: 6 n^3 FLOP) against torch.matmul (2 n^3)."""
    from linzoo.layers.linear import LinearSpec, make_linear

    n = 256 if args.tiny else 8192
    dtype = torch.bfloat16
    layer = make_linear(n, n, role="hidden", spec=LinearSpec(dtype="bfloat16")).to(device)
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    x = torch.randn(n, n, device=device, dtype=dtype, requires_grad=True)
    grad = torch.randn(n, n, device=device, dtype=dtype)

    def matmul() -> None:
        torch.matmul(a, b)

    def forward_backward() -> None:
        layer.weight.grad = layer.bias.grad = x.grad = None
        layer(x).backward(grad)

    matmul_calls = calibrate(matmul, target_s=0.01 if args.tiny else 0.2, device=args.device)
    linear_calls = max(1, matmul_calls // 3)
    times = interleaved(
        {
            "matmul": lambda: [matmul() for _ in range(matmul_calls)],
            "linear": lambda: [forward_backward() for _ in range(linear_calls)],
        },
        repeats=args.repeats * 2,
        device=args.device,
    )
    matmul_tflops = 2 * n**3 * matmul_calls / min(times["matmul"]) / 1e12
    linear_tflops = 6 * n**3 * linear_calls / min(times["linear"]) / 1e12
    return {
        "n": n,
        "matmul_tflops": matmul_tflops,
        "factory_linear_fwd_bwd_tflops": linear_tflops,
        "fraction_of_matmul": linear_tflops / matmul_tflops,
    }


def section_gpu(args: argparse.Namespace) -> dict[str, Any]:
    device = torch.device(args.device)
    on_gpu = device.type == "cuda"
    if on_gpu:
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    compile_nets = args.compile_backend != "none"
    results: dict[str, Any] = {
        "device_name": torch.cuda.get_device_name() if on_gpu else _cpu_name(),
        "tf32": on_gpu,  # float32 matmuls/convolutions on tensor cores (the transformer's "eager" row)
    }
    accuracy_runs = gpu_time_to_accuracy(args, device, compile_nets=compile_nets)
    results.update({f"{name}_time_to_accuracy": run for name, run in accuracy_runs.items()})
    results["transformer_images_per_s"] = gpu_transformer_throughput(args, device, compile_nets=compile_nets)
    results["linear_bf16"] = lin = gpu_linear_tflops(args, device)

    rows = []
    for name, r in accuracy_runs.items():
        reached = r["seconds_to_target"]
        rows.append([
            f"{name.upper()}: training s to {r['target']:.0%} test accuracy",
            reached if reached is not None else f"not reached ({r['curve'][-1]['test_acc']:.4f})",
            f"{r['epochs_run']} epochs, batch {r['batch_size']}, bf16, compile={r['compile']}, "
            f"warm-up {r['warmup_s']:.1f} s",
        ])
    throughput = results["transformer_images_per_s"]
    for name, r in throughput.items():
        if isinstance(r, dict):
            rows.append([f"transformer images/s, {name}", r["images_per_s"],
                         f"x{r['speedup_vs_eager']:.2f} vs eager, batch {throughput['batch_size']}"])
    n = lin["n"]
    rows += [
        [f"torch.matmul {n}x{n} bf16 TFLOP/s", lin["matmul_tflops"], "peak measured in this run"],
        [f"factory Linear {n}x{n} bf16 fwd+bwd TFLOP/s", lin["factory_linear_fwd_bwd_tflops"],
         f"{lin['fraction_of_matmul']:.1%} of matmul"],
    ]
    print_table(f"5. Speed on {results['device_name']}", ["what", "value", "details"], rows)
    return results


# ============================================================================== main
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "--sections", default=",".join(DEFAULT_SECTIONS), help=f"comma-separated subset of {','.join(SECTIONS)}"
    )
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--tiny", action="store_true", help="tiny sizes, few repeats: checks that it runs (smoke test)")
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats per contender (default 5, --tiny 2)")
    parser.add_argument("--data-root", default=None, help="folder holding MNIST/raw (default: $LINZOO_DATA or ./data)")
    parser.add_argument("--out", default="benchmark.json", help="where the JSON results go")
    parser.add_argument(
        "--threads", type=int, default=1,
        help="torch CPU threads (default 1: on a shared machine several threads per process\n"
        "wait on each other at every op and the timings become noise; 0: torch's default)",
    )
    parser.add_argument(
        "--overhead-variants", default=",".join(OVERHEAD_VARIANTS),
        help=f"section 1's Lightning sides (comma separated): {', '.join(OVERHEAD_VARIANTS)}",
    )
    parser.add_argument(
        "--compile-backend", default=None,
        help="torch.compile backend for sections 4-5 (default inductor; --tiny: eager, which traces but\n"
        "generates no code, so the smoke test stays fast; none: skip the compiled variants)",
    )
    args = parser.parse_args(argv)
    args.overhead_variants = [v.strip() for v in args.overhead_variants.split(",") if v.strip()]
    unknown_variants = sorted(set(args.overhead_variants) - set(OVERHEAD_VARIANTS))
    if unknown_variants:
        parser.error(f"unknown overhead variant(s) {unknown_variants}; valid: {', '.join(OVERHEAD_VARIANTS)}")
    if args.compile_backend is None:
        args.compile_backend = "eager" if args.tiny else "inductor"
    args.sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    args.sections.sort(key=lambda name: SECTIONS.index(name) if name in SECTIONS else len(SECTIONS))
    unknown = sorted(set(args.sections) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown section(s) {unknown}; valid: {', '.join(SECTIONS)}")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda but torch sees no CUDA GPU; use --device cpu")
    if args.repeats is None:
        args.repeats = 2 if args.tiny else 5
    return args


def environment(args: argparse.Namespace) -> dict[str, Any]:
    import lightning

    info = {
        "torch": torch.__version__,
        "lightning": lightning.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "processor": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": args.device,
        "command": " ".join(["python", "scripts/benchmark.py", *sys.argv[1:]]),
    }
    if args.device == "cuda":
        info["gpu"] = torch.cuda.get_device_name()
    try:
        info["load_average"] = os.getloadavg()
    except OSError:
        pass
    return info


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    results: dict[str, Any] = {"environment": environment(args), "tiny": args.tiny, "repeats": args.repeats}
    sections = {
        "overhead": section_overhead,
        "linear": section_linear,
        "data": section_data,
        "compile": section_compile,
        "gpu": section_gpu,
    }
    for name in args.sections:
        start = time.perf_counter()
        results[name] = sections[name](args)
        results[name + "_seconds"] = round(time.perf_counter() - start, 2)
    if hasattr(os, "getloadavg"):
        results["environment"]["load_average_end"] = os.getloadavg()
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nResults: {args.out}")
    return results


if __name__ == "__main__":
    main()
