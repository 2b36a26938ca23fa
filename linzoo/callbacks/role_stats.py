"""callbacks=role_stats: statistics of the factory's Linears by role, as a CSV and a heatmap.

Roles, not module names, pick the layers: every ``FactoryLinear`` (``module.role``) and tied
``TransposedLinear`` of the net. A fused or separate Q/K/V projection is reported as its
sub-roles ``q``, ``k``, ``v`` (its row blocks, and the matching blocks of its output).

Recorded at the first training step of a fit (step 0: the weights as initialised) and every
``every_n_steps`` optimizer steps after; the row of step s describes the weights W_s that
step s starts from, over all layers of the role pooled:

    weight_std      std of all the role's weight entries pooled
    expected_std    the std the init gives them (linzoo.layers.init_std): sqrt(sum n_i e_i^2 / sum n_i)
                    over blocks of n_i entries and expected std e_i; empty for a weight that
                    another kind of module owns (an LM head tied to its token embedding). A run
                    that starts from trained weights (init_from, ckpt_path) starts away from it.
    activation_rms  sqrt(mean y^2) over every output entry of the role's layers in step s's
                    forward (its first micro-batch)
    grad_norm       sqrt(sum of squared weight gradients) of step s (before clipping, after
                    AMP unscaling, accumulated over trainer.accumulate_grad_batches); empty
                    when the role's weights get no gradient (frozen)
    update_ratio    ||W_{s+1} - W_s|| / ||W_s|| (Frobenius, the role's weights together) over
                    the optimizer step; empty when ||W_s|| = 0

Weights only (biases are left out). A tied weight counts under each role that uses it: its
gradient is the sum over both uses. Outputs: ``<run dir>/role_stats.csv`` (long format, one
row per step and role, columns :data:`COLUMNS`; rewritten atomically at each record, so a
crashed run keeps what it measured) and ``role_stats.png`` at the end of training, a
heatmap per statistic (roles x recorded steps).

Cost: none on other steps beyond Lightning calling the hooks. On a recorded step, forward
hooks on the role layers (removed after that step's first micro-batch), a copy of the
weights for the update, and, with ``compile=true``, that one step runs eagerly (a compiled
graph would not call hooks added after it was compiled).
"""

from __future__ import annotations

import csv
import io
import logging
import math
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.strategies import FSDPStrategy
from matplotlib.colors import LogNorm, Normalize
from matplotlib.figure import Figure
from torch import nn

from linzoo.callbacks.common import announce, log_picture, picture_path
from linzoo.callbacks.image_files import new_figure, save_figure
from linzoo.checkpoint.atomic import write_text_atomically
from linzoo.common.errors import UserValueError
from linzoo.layers.init_std import expected_block_stds
from linzoo.layers.linear import FactoryLinear
from linzoo.layers.tied import TransposedLinear

__all__ = ["COLUMNS", "RoleStats", "draw_role_stats", "role_blocks"]

log = logging.getLogger(__name__)

COLUMNS: tuple[str, ...] = (
    "step",
    "role",
    "weight_std",
    "expected_std",
    "activation_rms",
    "grad_norm",
    "update_ratio",
)
STATISTICS: tuple[str, ...] = COLUMNS[2:]

Row = dict[str, Any]  # a CSV row: step (int), role (str), statistics (float or None)


@dataclass(frozen=True)
class WeightBlock:
    """Rows ``rows`` of ``weight``, reported under ``role``; ``expected``: the std of its init (None: unknown)."""

    role: str
    weight: nn.Parameter
    rows: slice
    expected: float | None

    @property
    def key(self) -> tuple[int, int | None, int | None]:
        return id(self.weight), self.rows.start, self.rows.stop


@dataclass(frozen=True)
class OutputBlock:
    """Columns ``columns`` of the output of ``module``, reported under ``role``."""

    role: str
    module: nn.Module
    columns: slice


def role_blocks(net: nn.Module) -> tuple[list[WeightBlock], list[OutputBlock]]:
    """The weight and output blocks of every role layer of ``net``, in module order.

    A ``FactoryLinear`` with ``sub_roles`` gives one block per sub-role (rows i*n/k .. (i+1)*n/k
    of its weight and the same columns of its output), else one block under its role. A
    ``TransposedLinear`` gives its (shared) weight under its own role, expected as its source's.
    """
    owners: dict[int, list[nn.Module]] = {}
    for module in net.modules():
        for param in module.parameters(recurse=False):
            owners.setdefault(id(param), []).append(module)
    weights: list[WeightBlock] = []
    outputs: list[OutputBlock] = []
    for module in net.modules():
        if isinstance(module, FactoryLinear):
            if isinstance(module.weight, nn.parameter.UninitializedParameter):
                continue  # a lazy layer that has not seen an input: nothing to measure
            blocks = _factory_blocks(module, owners[id(module.weight)])
            weights += blocks
            outputs += [OutputBlock(block.role, module, block.rows) for block in blocks]
        elif isinstance(module, TransposedLinear):
            source = [m for m in owners[id(module.weight)] if isinstance(m, FactoryLinear)]
            expected = _pooled_expected(source[0]) if len(source) == 1 else None
            weights.append(WeightBlock(module.role, module.weight, slice(None), expected))
            outputs.append(OutputBlock(module.role, module, slice(None)))
    return weights, outputs


def _factory_blocks(layer: FactoryLinear, owners: list[nn.Module]) -> list[WeightBlock]:
    # A weight that a module outside the factory also owns (an LM head tied to an embedding)
    # was initialised by that module: its expected std is not the factory's.
    foreign = any(not isinstance(m, (FactoryLinear, TransposedLinear)) for m in owners)
    if not layer.sub_roles:
        return [WeightBlock(layer.role, layer.weight, slice(None), None if foreign else _pooled_expected(layer))]
    size = layer.out_features // len(layer.sub_roles)
    stds = expected_block_stds(layer)
    return [
        WeightBlock(sub_role, layer.weight, slice(i * size, (i + 1) * size), None if foreign else stds[i])
        for i, sub_role in enumerate(layer.sub_roles)
    ]


def _pooled_expected(layer: FactoryLinear) -> float:
    """The std of the whole weight from its equal-sized blocks' expected stds: their root mean square."""
    stds = expected_block_stds(layer)
    return math.sqrt(sum(std * std for std in stds) / len(stds))


class RoleStats(Callback):
    """Per-role statistics every ``every_n_steps`` optimizer steps (and at the first step of a fit).

    Writes ``<run dir>/<filename>`` (CSV, columns :data:`COLUMNS`) at each record and
    ``<picture>`` (PNG heatmaps, ``width`` pixels wide; None: none) at the end of training.
    ``rows`` holds what was recorded (the CSV's rows, values as floats or None).
    """

    def __init__(
        self,
        *,
        every_n_steps: int = 50,
        filename: str = "role_stats.csv",
        picture: str | None = "role_stats.png",
        width: int = 1000,
    ) -> None:
        if isinstance(every_n_steps, bool) or not isinstance(every_n_steps, int) or every_n_steps < 1:
            raise UserValueError(
                f"callbacks.role_stats.every_n_steps={every_n_steps!r}: expected an integer >= 1 "
                "(record every that many optimizer steps). Fix: e.g. callbacks.role_stats.every_n_steps=50."
            )
        self.every_n_steps = every_n_steps
        self.filename = filename
        self.picture = picture
        self.width = width
        self.rows: list[Row] = []
        self.path: Path | None = None
        self._weights: list[WeightBlock] = []
        self._outputs: list[OutputBlock] = []
        self._roles: list[str] = []
        self._first = True
        self._pending: int | None = None  # the step being recorded
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        self._eager: AbstractContextManager[Any] | None = None
        self._sums: dict[str, list[Any]] = {}  # role -> [sum of y^2 (a tensor), count] of this step's outputs
        self._measured: dict[str, dict[str, float | None]] = {}
        self._before: dict[int, torch.Tensor] | None = None  # weights W_s, by id

    # --- Lightning hooks ---------------------------------------------------------------------

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if isinstance(trainer.strategy, FSDPStrategy):
            raise UserValueError(
                "callbacks=role_stats measures whole weights, but under trainer=fsdp each process holds a shard "
                "of them. Fix: use trainer=ddp (or one device) with role_stats, or leave role_stats out."
            )

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        self._weights, self._outputs = role_blocks(pl_module)
        self._roles = list(dict.fromkeys(block.role for block in self._weights))
        if not self._roles:
            log.warning("callbacks=role_stats: the net has no factory Linear, so %s stays empty.", self.filename)
        self.rows, self._first, self._pending = [], True, None
        self.path = picture_path(trainer, self.filename)

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if not trainer.is_global_zero or self._pending is not None or not self._roles:
            return
        step = trainer.global_step
        if not self._first and step % self.every_n_steps != 0:
            return
        if self.rows and self.rows[-1]["step"] == step:
            return  # recorded already
        self._first, self._pending = False, step
        self._sums, self._measured, self._before = {}, {}, None
        self._start_hooks()

    def on_before_optimizer_step(
        self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: torch.optim.Optimizer
    ) -> None:
        if self._pending is None or self._before is not None:
            return
        self._measured = self._weight_and_grad_stats()
        self._before = {key: weight.detach().clone() for key, weight in self._unique_weights()}

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self._stop_hooks()
        if self._pending is not None and self._before is not None:  # the optimizer stepped
            self._record()

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._stop_hooks()
        if not trainer.is_global_zero:
            return
        if self._pending is not None:  # training ended before that step's optimizer step
            self._measured = self._measured or self._weight_and_grad_stats()
            self._record()
        if self.picture and self.rows:
            figure = draw_role_stats(self.rows, width=self.width)
            path = save_figure(figure, picture_path(trainer, self.picture))
            log_picture(trainer, "pictures/role_stats", figure)
            announce(path)

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self._stop_hooks()

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._stop_hooks()

    # --- measuring -----------------------------------------------------------------------------

    def _start_hooks(self) -> None:
        by_module: dict[int, tuple[nn.Module, list[OutputBlock]]] = {}
        for block in self._outputs:
            by_module.setdefault(id(block.module), (block.module, []))[1].append(block)
        self._handles = [module.register_forward_hook(self._hook(blocks)) for module, blocks in by_module.values()]
        # A compiled net runs the graph it compiled, without hooks added since: run this step eagerly.
        set_stance = getattr(torch.compiler, "set_stance", None)
        self._eager = set_stance("force_eager") if set_stance is not None else None

    def _hook(self, blocks: list[OutputBlock]) -> Callable[[nn.Module, Any, torch.Tensor], None]:
        def hook(module: nn.Module, args: Any, output: torch.Tensor) -> None:
            with torch.no_grad():
                for block in blocks:
                    part = output.detach()[..., block.columns].float()
                    total = self._sums.setdefault(block.role, [part.new_zeros(()), 0])
                    total[0] = total[0] + part.square().sum()
                    total[1] += part.numel()

        return hook

    def _stop_hooks(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
        if self._eager is not None:
            self._eager.__exit__(None, None, None)
            self._eager = None

    def _unique_weights(self) -> Iterator[tuple[int, torch.Tensor]]:
        seen: dict[int, torch.Tensor] = {}
        for block in self._weights:
            seen.setdefault(id(block.weight), block.weight)
        yield from seen.items()

    def _blocks_by_role(self) -> dict[str, list[WeightBlock]]:
        """Each role's distinct weight blocks (one weight used twice in a role counts once)."""
        roles: dict[str, dict[tuple[int, int | None, int | None], WeightBlock]] = {role: {} for role in self._roles}
        for block in self._weights:
            roles[block.role].setdefault(block.key, block)
        return {role: list(blocks.values()) for role, blocks in roles.items()}

    def _weight_and_grad_stats(self) -> dict[str, dict[str, float | None]]:
        """weight_std, expected_std and grad_norm of each role, from the weights and gradients now.

        Each block's sums are taken in float32 on its device (float64 is missing on some, e.g.
        MPS) and pooled over the role's blocks in Python floats.
        """
        stats: dict[str, dict[str, float | None]] = {}
        for role, blocks in self._blocks_by_role().items():
            count = total = squares = grad_squares = expected_squares = 0.0
            has_grad = False
            for block in blocks:
                weight = block.weight.detach()[block.rows].float()
                block_sum, block_squares = torch.stack([weight.sum(), weight.square().sum()]).tolist()
                count, total, squares = count + weight.numel(), total + block_sum, squares + block_squares
                if block.weight.grad is not None:
                    has_grad = True
                    grad_squares += float(block.weight.grad[block.rows].float().square().sum())
                if block.expected is not None:
                    expected_squares += weight.numel() * block.expected**2
            mean = total / count
            stats[role] = {
                "weight_std": math.sqrt(max(squares / count - mean * mean, 0.0)),
                "expected_std": None
                if any(block.expected is None for block in blocks)
                else math.sqrt(expected_squares / count),
                "grad_norm": math.sqrt(grad_squares) if has_grad else None,
            }
        return stats

    def _update_ratios(self) -> dict[str, float | None]:
        """||W_after - W_before|| / ||W_before|| of each role (None without a snapshot or when W_before = 0)."""
        if self._before is None:
            return {}
        ratios: dict[str, float | None] = {}
        for role, blocks in self._blocks_by_role().items():
            change = before = 0.0
            for block in blocks:
                old = self._before[id(block.weight)][block.rows].float()
                new = block.weight.detach()[block.rows].float()
                block_change, block_before = torch.stack([(new - old).square().sum(), old.square().sum()]).tolist()
                change, before = change + block_change, before + block_before
            ratios[role] = math.sqrt(change / before) if before > 0 else None
        return ratios

    def _record(self) -> None:
        updates = self._update_ratios()
        for role in self._roles:
            total = self._sums.get(role)
            rms = math.sqrt(float(total[0]) / total[1]) if total and total[1] else None
            measured = self._measured.get(role, {})
            self.rows.append(
                {
                    "step": self._pending,
                    "role": role,
                    "weight_std": measured.get("weight_std"),
                    "expected_std": measured.get("expected_std"),
                    "activation_rms": rms,
                    "grad_norm": measured.get("grad_norm"),
                    "update_ratio": updates.get(role),
                }
            )
        self._pending, self._sums, self._measured, self._before = None, {}, {}, None
        if self.path is not None:
            write_text_atomically(self.path, rows_to_csv(self.rows))


def rows_to_csv(rows: list[Row]) -> str:
    """The CSV text of ``rows``: a header of :data:`COLUMNS`, then one line a row (None: an empty cell)."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow(["" if row[c] is None else (f"{row[c]:.9g}" if c in STATISTICS else row[c]) for c in COLUMNS])
    return text.getvalue()


# --- the picture --------------------------------------------------------------------------------

PANELS: tuple[tuple[str, str], ...] = (
    ("weight_std", "weight std"),
    ("std_ratio", "weight std / expected std"),
    ("activation_rms", "activation RMS"),
    ("grad_norm", "gradient norm"),
    ("update_ratio", "update / weight"),
)


def draw_role_stats(rows: list[Row], *, width: int = 1000) -> Figure:
    """One heatmap a statistic (:data:`PANELS`), roles (rows, in the CSV's order) x recorded
    steps (columns), log colour scale; the std ratio on a scale centred on 1. Missing or
    non-positive values are grey."""
    roles = list(dict.fromkeys(row["role"] for row in rows))
    steps = sorted({row["step"] for row in rows})
    panel_height = 50 + 22 * len(roles)
    figure = new_figure(width, panel_height * len(PANELS))
    for ax, (name, title) in zip(figure.subplots(len(PANELS), 1, squeeze=False)[:, 0], PANELS):
        table = np.full((len(roles), len(steps)), np.nan)
        for row in rows:
            value = _panel_value(row, name)
            if value is not None and value > 0:
                table[roles.index(row["role"]), steps.index(row["step"])] = value
        image = ax.imshow(
            np.ma.masked_invalid(table),
            aspect="auto",
            interpolation="nearest",
            norm=_norm(table, name),
            cmap=_cmap(name),
        )
        ax.set_facecolor("0.85")
        ax.set_yticks(range(len(roles)), roles)
        shown = range(0, len(steps), max(1, math.ceil(len(steps) / 12)))
        ax.set_xticks(list(shown), [str(steps[i]) for i in shown])
        ax.set_title(title, fontsize="medium")
        figure.colorbar(image, ax=ax, pad=0.01)
    figure.axes[len(PANELS) - 1].set_xlabel("step")
    return figure


def _panel_value(row: Row, name: str) -> float | None:
    if name != "std_ratio":
        return row[name]
    if row["weight_std"] is None or not row["expected_std"]:
        return None
    return row["weight_std"] / row["expected_std"]


def _norm(table: np.ndarray, name: str) -> Normalize:
    finite = table[np.isfinite(table)]
    if finite.size == 0:
        return Normalize(0, 1)
    if name == "std_ratio":  # symmetric about 1 on a log scale: x and 1/x get opposite colours
        spread = max(float(np.abs(np.log10(finite)).max()), 0.05)
        return LogNorm(10**-spread, 10**spread)
    low, high = float(finite.min()), float(finite.max())
    return LogNorm(low, high if high > low else low * 1.0001)


def _cmap(name: str) -> str:
    return "coolwarm" if name == "std_ratio" else "viridis"
