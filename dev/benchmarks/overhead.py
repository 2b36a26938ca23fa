"""Section ``overhead``: linzoo's real training path against the reference loop, step by step.

The Lightning side is the composed ``configs/train.yaml`` (Classifier task, MNISTDataModule,
Trainer with the default callbacks and logger), instantiated as ``linzoo.run.train`` does; the
hand side is :class:`~dev.benchmarks.reference.ReferenceLoop` on a copy of the same net,
with the same optimizer, schedule and batches. The two alternate inside one ``fit``: after
each Lightning step, a timer callback runs one reference step (ABAB), so load from other
processes hits both alike. Per-epoch times after a warm-up epoch; ratios are medians of
per-epoch ratios.

Variants (``--overhead-variants``): the DataLoader path, ``data.on_device=true``, no
callbacks/logger/progress bar, and a bare LightningModule (Lightning's own floor).
"""

from __future__ import annotations

import copy
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F

from dev.benchmarks.recipes import (
    build_optimizer,
    build_scheduler,
    compose,
    data_overrides,
    tiny_net,
)
from dev.benchmarks.reference import ReferenceLoop
from dev.benchmarks.timing import median, paired_ratio, print_table, sync
from linzoo.tasks.param_groups import build_optimizer as build_task_optimizer

NO_EXTRAS = ["callbacks=none", "~logger", "+trainer.enable_progress_bar=false"]
# name -> (description, data.on_device, extra overrides, bare LightningModule?)
VARIANTS: dict[str, tuple[str, bool, list[str], bool]] = {
    "linzoo": ("linzoo, default config (DataLoader)", False, [], False),
    "linzoo_on_device": ("linzoo, data.on_device=true", True, [], False),
    "linzoo_no_callbacks": ("linzoo, callbacks=none, no logger, no progress bar", False, NO_EXTRAS, False),
    "bare_lightning": (
        "bare LightningModule (loss only), no callbacks/logger/progress bar/validation",
        False,
        [*NO_EXTRAS, "trainer.enable_model_summary=false"],
        True,
    ),
}


class HandSide:
    """The reference loop fed from its own batch iterator, one step at a time (so steps can alternate)."""

    def __init__(self, loop: ReferenceLoop, train_batches: Any, val_batches: Any, *, max_batches: int) -> None:
        self.loop = loop
        self.train_batches = train_batches
        self.val_batches = val_batches
        self.max_batches = max_batches
        self.metrics: dict[str, float] = {}
        self._batches: Iterator[Any] = iter(())
        self._steps = 0

    def start_epoch(self) -> None:
        self.loop.start_epoch()
        self._batches, self._steps = iter(self.train_batches), 0

    def step(self) -> None:
        """One step on the next batch (nothing once the epoch's batches are used up)."""
        if self._steps < self.max_batches:
            self.loop.step(*next(self._batches))
            self._steps += 1

    def end_epoch(self) -> None:
        while self._steps < self.max_batches:  # Lightning ran fewer batches: finish the epoch
            self.step()
        self.metrics.update(self.loop.epoch_metrics())

    def validate(self) -> None:
        if self.val_batches is not None:
            self.metrics.update({f"val/{k}": v for k, v in self.loop.evaluate(self.val_batches).items()})


class InterleavedTimer(L.Callback):
    """Runs one hand step after each Lightning step and times both.

    An epoch's Lightning time is its wall time less the hand steps inside it: training
    from ``on_train_epoch_start`` to validation start (or the epoch end), the whole epoch
    (validation, checkpoints, logs) to ``on_train_epoch_end``. The hand side validates
    after Lightning's epoch. This callback's own hook calls count as Lightning's.
    """

    def __init__(self, hand: HandSide) -> None:
        self.hand = hand
        self.hand_train: list[float] = []
        self.hand_epoch: list[float] = []
        self.train: list[float] = []
        self.epoch: list[float] = []
        self._start = 0.0
        self._hand = 0.0  # hand seconds inside the current Lightning epoch
        self._hand_at_train_end = 0.0
        self._train_end: float | None = None

    def _run_hand(self, fn: Callable[[], None]) -> None:
        device = self.hand.loop.device
        sync(device)  # on a GPU, Lightning's queued work belongs to Lightning's time
        start = time.perf_counter()
        fn()
        sync(device)
        self._hand += time.perf_counter() - start

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._hand, self._train_end = 0.0, None
        self._run_hand(self.hand.start_epoch)
        self._start = time.perf_counter() - self._hand

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        self._run_hand(self.hand.step)

    def _end_training(self) -> None:
        self._run_hand(self.hand.end_epoch)
        self._train_end = time.perf_counter()
        self._hand_at_train_end = self._hand

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking and self._train_end is None:
            self._end_training()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        end = time.perf_counter()
        if self._train_end is None:
            self._end_training()
            end = self._train_end
        self.train.append(self._train_end - self._start - self._hand_at_train_end)
        self.epoch.append(end - self._start - self._hand)
        start = time.perf_counter()
        self.hand.validate()
        self.hand_train.append(self._hand_at_train_end)
        self.hand_epoch.append(self._hand + time.perf_counter() - start)


class BareModule(L.LightningModule):
    """The least a LightningModule can be: the task's net, loss, optimizer and schedule; no logging."""

    def __init__(self, task: Any) -> None:
        super().__init__()
        self.net = task.net
        self.optimizer_factory = task.optimizer_factory
        self.scheduler_factory = task.scheduler_factory

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        images, labels = batch
        return F.cross_entropy(self.net(images), labels)

    def configure_optimizers(self) -> Any:
        optimizer = build_task_optimizer(self.net, self.optimizer_factory)
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer, total_steps=int(self.trainer.estimated_stepping_batches))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def run_variant(args: Any, variant: str) -> dict[str, Any]:
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from linzoo.data import DeviceBatches
    from linzoo.run.trainer import instantiate_trainer

    description, on_device, extra, bare = VARIANTS[variant]
    epochs = 1 + args.repeats  # the first pair is the warm-up
    with tempfile.TemporaryDirectory() as run_dir:
        overrides = [
            "model=mlp",
            f"trainer={'gpu' if args.device == 'cuda' else 'cpu'}",
            f"trainer.max_epochs={epochs}",
            f"data.on_device={str(on_device).lower()}",
            *data_overrides(data_root=args.data_root, tiny=args.tiny),
            *(tiny_net("mlp", True) + ["trainer.limit_train_batches=20"] if args.tiny else []),
            *extra,
        ]
        cfg = compose(overrides, run_dir)
        L.seed_everything(cfg.seed, workers=True, verbose=False)
        datamodule = instantiate(cfg.data)
        task = instantiate(OmegaConf.to_container(cfg.model, resolve=True))
        module = BareModule(task) if bare else task
        datamodule.setup("fit")
        device = torch.device(args.device)
        # The hand side: a copy of the same net, same optimizer and schedule, batches from the
        # same data module (its DataLoader, or DeviceBatches on the device).
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
        optimizer = build_optimizer(cfg, hand_net)
        loop = ReferenceLoop(
            hand_net,
            optimizer,
            scheduler=build_scheduler(cfg, optimizer, total_steps=max_batches * epochs),
            label_smoothing=task.label_smoothing,
            track=True,  # loss and accuracy as tensors, as the Classifier keeps them
        )
        hand = HandSide(loop, train_batches, None if bare else val_batches, max_batches=max_batches)
        timer = InterleavedTimer(hand)
        if bare:  # Lightning's floor: no linzoo callback at all
            trainer: L.Trainer = instantiate(cfg.trainer, callbacks=[timer], logger=False)
        else:  # exactly the Trainer of linzoo.run.train: config callbacks + run safety + atomic checkpoints
            trainer, _ = instantiate_trainer(cfg, extra_callbacks=[timer])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if bare:
                trainer.fit(module, train_dataloaders=train_batches if on_device else datamodule.train_dataloader())
            else:
                trainer.fit(module, datamodule=datamodule)
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
        "extra_ms_per_step": 1e3
        * median((a - b) / max_batches for a, b in zip(timer.train[timed], timer.hand_train[timed], strict=True)),
        "final_metrics": {"lightning": final, "hand": hand.metrics},
    }


def section(args: Any) -> dict[str, Any]:
    results: dict[str, Any] = {name: run_variant(args, name) for name in args.overhead_variants}
    if "linzoo" in results and "bare_lightning" in results:
        # What linzoo adds on top of a bare LightningModule: the ratio of the two ratios (each paired).
        results["linzoo_over_bare"] = results["linzoo"]["ratio_train"] / results["bare_lightning"]["ratio_train"]
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
        if isinstance(r, dict)
    ]
    print_table(
        f"1. Training epoch vs the reference loop (MLP, {args.device}; median of {args.repeats} paired epochs)",
        ["Lightning side", "steps", "hand s", "Lightning s", "ratio", "extra ms/step", "ratio incl. validation"],
        rows,
    )
    if "linzoo_over_bare" in results:
        print_table(
            "1b. What linzoo adds on top of a bare LightningModule (training, each against the same reference loop)",
            ["linzoo ratio", "bare LightningModule ratio", "linzoo / bare"],
            [[results["linzoo"]["ratio_train"], results["bare_lightning"]["ratio_train"], results["linzoo_over_bare"]]],
        )
    return results
