"""docs/mup.md from real runs: the role table (from linzoo's code), coordinate checks, width transfer.

    python scripts/mup_report.py --sweep outputs/width_transfer/<stamp> --out docs/mup.md

- The role table is read from ``linzoo.layers.mup`` (classes and multipliers evaluated at m = 4).
- Coordinate checks: :func:`linzoo.run.coord_check.coord_check` for the mlp, the transformer and the
  mixer (generated images, a few steps; seconds each), JSON and figures into ``docs/mup/``, and a
  table of each role's spread (largest / smallest value across widths) under SP and muP.
- Width transfer: the ``metrics.json`` of every job of one or more ``scripts/width_transfer.py -m``
  sweeps: the training loss per (parametrization, width, lr), mean over seeds; the figure (loss vs
  lr, one curve per width, SP and muP side by side) and the best lr per width. A diverged job
  counts as a loss of infinity for its (width, lr): a diverging lr is never the best.
- Per-role statistics: a short muP training of the ViT with ``callbacks=role_stats``
  (:data:`ROLE_STATS_RUN`, run here in a subprocess); its ``role_stats.png`` and ``role_stats.csv``
  are copied into ``docs/mup/`` and the last record is shown as a table.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from linzoo.layers.mup import MUP_CLASSES, lr_multipliers, parameter_kind

M = 4.0  # the width multiplier at which the multipliers are evaluated for the table
COORD_CHECKS = {  # model: (widths, extra train.yaml overrides)
    "mlp": ([64, 256, 1024], []),
    "transformer": ([32, 64, 128, 256], []),
    "mixer": ([32, 64, 128, 256], []),
}
COORD_STEPS = 4
MAX_MUP_SPREAD = 2.0  # issue 22: under muP every role's value varies at most 2x across widths
ROLE_STATS_RUN = [  # scripts/train.py overrides of the per-role statistics shown on the page
    "model=transformer",
    "linear=mup",
    "linear.mup.base_width=32",
    "model.net.dim=128",
    "data=mnist_sample",
    "trainer.max_epochs=2",
    "callbacks=role_stats",
    "callbacks.role_stats.every_n_steps=20",
    "seed=0",
]
ROOT = Path(__file__).resolve().parents[2]


# ----------------------------------------------------------------------------- role table
def _factor(value: float) -> str:
    """1 -> ``x1``, m -> ``x m``, 1/m -> ``/ m``, sqrt(m) -> ``x sqrt(m)`` (evaluated at m = :data:`M`)."""
    for shown, exact in (("x1", 1.0), ("x m", M), ("/ m", 1 / M), ("x sqrt(m)", math.sqrt(M))):
        if math.isclose(value, exact):
            return shown
    return f"x {value:g} (at m={M:g})"


def role_table() -> list[str]:
    rows = [
        "| role | muP class | weight: Adam lr | weight: SGD lr | bias: Adam lr | bias: SGD lr |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for role, klass in MUP_CLASSES.items():
        cells = [f"`{role}`", klass]
        for is_bias in (False, True):
            kind = parameter_kind(klass, is_bias=is_bias)
            for optimizer in ("adam", "sgd"):
                cells.append(_factor(lr_multipliers(kind, width_mult=M, optimizer=optimizer)[0]))
        rows.append("| " + " | ".join(cells) + " |")
    return rows


# ----------------------------------------------------------------------------- coordinate checks
def coord_check_args(model: str, out: Path) -> list[str]:
    """The ``scripts/coord_check.py`` arguments of ``model``'s check (what the page shows)."""
    widths, overrides = COORD_CHECKS[model]
    return [
        f"model={model}",
        f"widths=[{','.join(map(str, widths))}]",
        f"steps={COORD_STEPS}",
        f"out={out}",
        *overrides,
    ]


def run_coord_checks(into: Path) -> dict[str, dict[str, Any]]:
    """Each model's coordinate check, run as its command line would (JSON and figures into ``into``)."""
    from linzoo.run.coord_check import main as coord_check

    return {model: coord_check(coord_check_args(model, into / f"coord_check_{model}.json")) for model in COORD_CHECKS}


def spread(by_width: dict[Any, float]) -> float:
    """Largest / smallest value across widths."""
    values = [abs(value) for value in by_width.values()]
    return max(values) / min(values) if min(values) > 0 else math.inf


def coord_table(results: dict[str, dict[str, Any]]) -> list[str]:
    rows = [
        f"| model | role | SP spread | muP spread | muP within {MAX_MUP_SPREAD:g}x |",
        "| --- | --- | ---: | ---: | --- |",
    ]
    for model, result in results.items():
        for role in sorted(result["mup"]):
            sp, mup = spread(result["sp"][role]), spread(result["mup"][role])
            ok = "yes" if mup <= MAX_MUP_SPREAD else "**no**"
            rows.append(f"| {model} | `{role}` | {sp:.2f}x | {mup:.2f}x | {ok} |")
    return rows


# ----------------------------------------------------------------------------- width transfer
def read_sweeps(sweeps: Sequence[Path]) -> list[dict[str, Any]]:
    """Every job's metrics.json (written by scripts/width_transfer.py) under the sweep directories."""
    jobs = []
    for sweep in sweeps:
        for path in sorted(Path(sweep).glob("*/metrics.json")):
            record = json.loads(path.read_text())
            if "parametrization" in record:
                jobs.append(record)
    if not jobs:
        raise SystemExit(f"No width-transfer job (metrics.json with a parametrization) under {list(map(str, sweeps))}.")
    return jobs


def mean_losses(jobs: list[dict[str, Any]]) -> dict[str, dict[int, dict[float, float]]]:
    """{parametrization: {width: {lr: mean loss over seeds}}}, inf where any seed diverged."""
    losses: dict[tuple[str, int, float], list[float]] = defaultdict(list)
    for job in jobs:
        loss = job["loss"]
        losses[(job["parametrization"], job["width"], job["lr"])].append(math.inf if loss is None else loss)
    table: dict[str, dict[int, dict[float, float]]] = defaultdict(lambda: defaultdict(dict))
    for (parametrization, width, lr), values in losses.items():
        table[parametrization][width][lr] = statistics.mean(values)
    return table


def best_lrs(table: dict[str, dict[int, dict[float, float]]]) -> dict[str, dict[int, float]]:
    return {
        parametrization: {width: min(by_lr, key=by_lr.get) for width, by_lr in sorted(widths.items())}
        for parametrization, widths in table.items()
    }


def grid_shift(best: dict[int, float], grid: list[float]) -> int:
    """How many grid steps the best lr moves between the narrowest and the widest width."""
    widths = sorted(best)
    return abs(grid.index(best[widths[-1]]) - grid.index(best[widths[0]]))


def grid_spread(best: dict[int, float], grid: list[float]) -> int:
    """Grid steps between the smallest and the largest best lr over all widths."""
    indices = [grid.index(lr) for lr in best.values()]
    return max(indices) - min(indices)


def loss_window(jobs: list[dict[str, Any]]) -> int:
    """How many final steps each job's loss averages (recorded, or found from a finished job's losses)."""
    for job in jobs:
        if "loss_window" in job:
            return int(job["loss_window"])
        if job.get("loss") is not None:
            losses = job["losses"]
            return next(w for w in range(1, len(losses) + 1) if math.isclose(sum(losses[-w:]) / w, job["loss"]))
    raise ValueError("no finished job to tell the loss window from")


def plot_transfer(table: dict[str, dict[int, dict[float, float]]], path: Path) -> None:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 4), layout="constrained")
    axes = figure.subplots(1, 2, sharey=True)
    for ax, parametrization in zip(axes, ("sp", "mup")):
        for width, by_lr in sorted(table.get(parametrization, {}).items()):
            lrs = sorted(by_lr)
            ax.plot(
                lrs, [by_lr[lr] if math.isfinite(by_lr[lr]) else math.nan for lr in lrs], marker="o", label=f"{width}"
            )
        ax.set_xscale("log", base=2)
        ax.set_xlabel("learning rate")
        ax.set_title({"sp": "SP (linear=default)", "mup": "muP (linear=mup)"}[parametrization])
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("training loss")
    axes[1].legend(title="width", fontsize="small")
    finite = [v for widths in table.values() for by_lr in widths.values() for v in by_lr.values() if math.isfinite(v)]
    if finite:
        axes[0].set_ylim(min(finite) * 0.9, min(max(finite), 2.5))
    figure.savefig(path, dpi=100)


def transfer_section(jobs: list[dict[str, Any]], into: Path, command: str) -> list[str]:
    table = mean_losses(jobs)
    best = best_lrs(table)
    grid = sorted({job["lr"] for job in jobs})
    seeds = sorted({job["seed"] for job in jobs})
    first = jobs[0]
    plot_transfer(table, into / "width_transfer.png")
    widths = sorted({job["width"] for job in jobs})
    lines = [
        "```bash",
        command,
        "```",
        "",
        f"Model `{first['model']}`, {first['steps']} steps of AdamW (weight decay 0) at a constant lr, batch 128 (configs/width_transfer.yaml), on the training",
        f"split of full MNIST; seeds {', '.join(map(str, seeds))}; the loss is the mean of the last {loss_window(jobs)}",
        f"steps' training losses, averaged over the seeds; muP's base width is {first['base_width']}. {len(jobs)} jobs.",
        "",
        "![training loss against learning rate, a curve per width, SP and muP](mup/width_transfer.png)",
        "",
        "| width | " + " | ".join(f"best lr {p.upper() if p == 'sp' else 'muP'}" for p in ("sp", "mup")) + " |",
        "| ---: | ---: | ---: |",
    ]
    for width in widths:
        cells = [
            f"2^{math.log2(best[p][width]):.0f} ({best[p][width]:.3g})" if width in best.get(p, {}) else "-"
            for p in ("sp", "mup")
        ]
        lines.append(f"| {width} | " + " | ".join(cells) + " |")
    lines.append("")
    for parametrization in ("sp", "mup"):
        if parametrization not in best:
            continue
        name = "SP" if parametrization == "sp" else "muP"
        shift, width_spread = grid_shift(best[parametrization], grid), grid_spread(best[parametrization], grid)
        lines.append(
            f"- {name}: from width {widths[0]} to {widths[-1]} the best lr moves {shift} grid step(s) "
            f"(factor {2**shift:g}); over all widths it spans {width_spread} grid step(s)."
        )
    if "mup" in best:
        ok = grid_shift(best["mup"], grid) <= 1
        lines.append(
            f"- Goal (muP's best lr within one grid step from {widths[0]} to {widths[-1]}): "
            + ("**met**." if ok else "**not met**.")
        )
    return lines


# ----------------------------------------------------------------------------- per-role statistics
def run_role_stats(into: Path) -> list[dict[str, str]]:
    """Train :data:`ROLE_STATS_RUN`; copy its role_stats.png/.csv into ``into``; return the CSV's rows."""
    with tempfile.TemporaryDirectory(prefix="linzoo-role-stats-") as tmp:
        run = Path(tmp) / "run"
        subprocess.run(
            [sys.executable, str(ROOT / "scripts" / "train.py"), *ROLE_STATS_RUN, f"hydra.run.dir={run}"],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        for name in ("role_stats.png", "role_stats.csv"):
            shutil.copyfile(run / name, into / name)
    with (into / "role_stats.csv").open() as file:
        return list(csv.DictReader(file))


def role_stats_table(rows: list[dict[str, str]]) -> list[str]:
    """The last recorded step: one line per role."""
    last = max(int(row["step"]) for row in rows)
    lines = [
        f"| role (step {last}) | weight std | expected at init | activation RMS | gradient norm | update / weight |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in (row for row in rows if int(row["step"]) == last):
        cells = [row[key] for key in ("weight_std", "expected_std", "activation_rms", "grad_norm", "update_ratio")]
        shown = [f"{float(cell):.3g}" if cell else "-" for cell in cells]
        lines.append(f"| `{row['role']}` | " + " | ".join(shown) + " |")
    return lines


# ----------------------------------------------------------------------------- page
def render(
    *,
    coord: dict[str, dict[str, Any]],
    jobs: list[dict[str, Any]],
    into: Path,
    sweep_command: str,
    role_stats: list[dict[str, str]],
) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# muP: hyperparameters that transfer across width",
        "",
        "Generated by `python scripts/mup_report.py` (do not edit by hand); every table and figure",
        f"below comes from the commands next to it. Generated {stamp}.",
        "",
        "muP (Yang et al., *Tensor Programs V*, 2022) gives each layer an init and a learning-rate",
        "multiplier by its class (input, hidden or output) so that the best learning rate found at a",
        "narrow width stays the best as the model gets wider. In linzoo the Linear factory knows every",
        "layer's role, and the role decides the class: muP is a config, no base model and no name matching.",
        "",
        "```bash",
        "python scripts/train.py model=transformer linear=mup linear.mup.base_width=64 model.net.dim=256",
        "python scripts/train.py model=mlp linear=mup linear.mup.base_width=128 'model.net.hidden_dims=[1024,512]'",
        "python scripts/train.py optimizer.roles.head.lr_mult=10      # per-role lr, also without muP",
        "```",
        "",
        "m = width / `linear.mup.base_width`; the width is the model's (mlp: `hidden_dims[0]`, all hidden",
        "widths scale together; transformer and lm: `dim`, the head count fixed; mixer: `dim`, with",
        "`channel_mlp_dim` scaling along). At m = 1, `linear=mup` is `linear=default` bit for bit.",
        "",
        "## The rule, by role",
        "",
        f"Generated from `linzoo.layers.mup` (multipliers of the configured lr, shown for m = {M:g}):",
        "",
        *role_table(),
        "",
        "- **Init.** Input and hidden weights keep their fan-in scheme (variance 1/fan_in already is",
        "  muP for them); hidden and output biases of the `default` scheme are multiplied by sqrt(m). The",
        "  output layer computes `F.linear(x * output_mult / m, W, b)` with W multiplied by sqrt(m) at",
        "  init (mup's `MuReadout`); `linear.mup.zero_readout=true` starts it at zero, and",
        "  `linear.mup.zero_query=true` the attention's q block (separate or fused).",
        "- **Weight decay** (>= 2-D parameters only, as always) gets mup's multipliers: Adam x m on",
        "  hidden weights (so that lr x wd stays put), SGD / m on vector-like weights.",
        "- **Attention** scales logits by sqrt(d_base) / d = 1 / sqrt(d m) (d the head dim): 1/sqrt(d) at",
        "  the base width, 1/d as the width grows.",
        "- **The MLP's first Linear** has role `hidden` but reads the fixed-size image: the model builds it",
        "  as an input layer (`make_linear(..., in_is_width=False)`).",
        "- **`token_mix`** (the Mixer's patch-axis MLP, [token_mlp_dim, num_patches]): neither dimension",
        "  grows with the width, so by mup's own shape rule it is `fixed` (x1 everywhere), not hidden.",
        "- **Other parameters** (norms, embeddings, position embeddings, CLS tokens) are vector-like:",
        "  Adam x1, SGD x m.",
        "- **A tied `lm_head`** is the token embedding's weight: it follows the embedding's rule (its",
        "  N(0, 0.02^2) init, Adam x1, SGD x m), and the head still multiplies its input by output_mult / m.",
        "- **The optimizer decides the rules**: `torch.optim.SGD` gets mup's `MuSGD` multipliers, Adam and",
        "  AdamW `MuAdam`'s; other optimizers are refused under muP. `optimizer.roles.<role>.lr_mult`",
        "  multiplies on top. LoRA adapters take their layer's `lr_mult` and no muP multiplier.",
        "- Checked against the mup package (`tests/test_mup_peer.py`): the same MLP built both ways has",
        "  the same per-parameter learning rate and init scale.",
        "",
        "## Coordinate check",
        "",
        "```bash",
        *(
            "python scripts/coord_check.py "
            + " ".join(
                f"'{arg}'" if "[" in arg else arg
                for arg in coord_check_args(model, Path("docs/mup") / f"coord_check_{model}.json")
            )
            for model in COORD_CHECKS
        ),
        "```",
        "",
        f"Each trains {COORD_STEPS} steps (AdamW at the model's default lr, generated images, batch 64, dropout off,",
        "seeds 0 and 1 averaged)",
        "under SP and under muP (base width: the narrowest) and records each role's mean |output| at every",
        "step. Spread: the largest over the smallest value across the widths at the last step; under muP",
        f"it must stay within {MAX_MUP_SPREAD:g}x, under SP the output (`head`) grows with width.",
        "",
        *coord_table(coord),
        "",
    ]
    for model in coord:
        lines += [
            f"![{model}: SP](mup/coord_check_{model}_sp.png)",
            f"![{model}: muP](mup/coord_check_{model}_mup.png)",
            "",
        ]
    lines += ["## Width transfer", "", *transfer_section(jobs, into, sweep_command), ""]
    if role_stats:
        lines += [
            "## Per-role statistics",
            "",
            "`callbacks=role_stats` records, per role, the weight std against the std its init should",
            "give (under muP the output layer's is sqrt(m) times its scheme's), the activation RMS, the",
            "gradient norm and the update/weight ratio, at init and every N steps, into `role_stats.csv`",
            "and a heatmap, `role_stats.png`, in the run directory. This run (m = 128 / 32 = 4):",
            "",
            "```bash",
            "python scripts/train.py " + " ".join(ROLE_STATS_RUN),
            "```",
            "",
            "![per-role statistics of a muP run](mup/role_stats.png)",
            "",
            *role_stats_table(role_stats),
            "",
            "Every step's rows: [mup/role_stats.csv](mup/role_stats.csv).",
            "",
        ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweep", type=Path, nargs="+", required=True, help="width_transfer.py -m sweep directories")
    parser.add_argument("--out", type=Path, default=Path("docs/mup.md"))
    parser.add_argument(
        "--sweep-command",
        default="python scripts/width_transfer.py -m",
        help="the command that made the sweep, shown next to its figure",
    )
    parser.add_argument("--no-role-stats", action="store_true", help="leave out the per-role statistics run")
    args = parser.parse_args(argv)
    into = args.out.parent / "mup"
    into.mkdir(parents=True, exist_ok=True)
    jobs = read_sweeps(args.sweep)
    role_stats = [] if args.no_role_stats else run_role_stats(into)
    coord = run_coord_checks(into)
    page = render(
        coord=coord,
        jobs=jobs,
        into=into,
        sweep_command=args.sweep_command,
        role_stats=role_stats,
    )
    args.out.write_text(page + "\n")
    print(f"{args.out}: {len(jobs)} width-transfer jobs, coordinate checks of {', '.join(coord)}", file=sys.stderr)
    return 0
