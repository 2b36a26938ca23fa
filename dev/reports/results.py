"""A results table from finished runs: python scripts/results.py outputs/train/* (on stdout)

The project's page is written only when named: ``python scripts/results.py docs/runs/*/*
--out docs/results.md`` (``--readme README.md`` also updates the README's short table).

Each run directory gives its ``metrics.json`` (test metrics, epochs, parameter count,
wall time, data source), its ``config.yaml`` and Hydra's ``.hydra/overrides.yaml`` (the
command line). Runs whose command lines differ only in ``seed=`` and whose resolved configs
agree (but for the seed and where files go) form one row with the mean ± sample standard
deviation over their seeds; the same command run with a changed recipe is another row,
marked with its config's digest. Directories without ``metrics.json``
(unfinished runs) are listed as skipped. Nothing here is typed by hand: rerun the script
after new runs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from dev.reports.records import keep_record
from linzoo.run.resume import keyword_default

# The test metric that judges each task, how to show it, and which direction is better.
METRICS = {  # metrics.json key: (label, scale, unit, higher_is_better)
    "test/acc": ("test accuracy", 100.0, "%", True),
    "test/sse_per_image": ("test squared error per image", 1.0, "", False),
    "test/nll_nats": ("test NLL (nats per image)", 1.0, "", False),
}

# Published figures on the MNIST test set and this project's targets (issue 12).
LITERATURE = {
    "mlp_mnist": (
        "≥ 98.9%",
        "98.47% (LeCun et al. 1998, 500+300 units); 99.05% (Srivastava et al. 2014, dropout + max-norm)",
    ),
    "cnn_mnist": ("≥ 99.6%", "99.05% (LeNet-5, LeCun et al. 1998); 99.6-99.7% (small CNNs with augmentation)"),
    "cnn_fast": (
        "≥ 99.0% in one epoch, ≤ 28 s wall",
        "99.10% after 5 epochs, 228 s (the PyTorch examples' MNIST script)",
    ),
    "transformer_mnist": ("≥ 99.3%", "99.3-99.5% (small ViTs with augmentation)"),
    "mixer_mnist": ("≥ 99.1%", "-"),
    "autoencoder_mnist": (
        "≤ 5.0 (CPU), ≤ 3.0 (GPU)",
        "3.00 (Hinton & Salakhutdinov 2006, 784-1000-500-250-30, RBM pre-training)",
    ),
    "lm_mnist": ("-", "NLL nats/image: NADE 88.3, PixelRNN 79.2 (stochastically binarised MNIST)"),
}

# Overrides that change where a run goes, how it is shown or that it was resumed, not what it computes.
NOT_PART_OF_THE_RECIPE = ("hydra.", "paths.", "callbacks.progress_bar.", "ckpt_path=")
# The same for the resolved config (dotted keys): left out of the config digest.
CONFIG_NOT_PART_OF_THE_RECIPE = (
    "seed",
    "hydra",
    "paths",
    "ckpt_path",
    "print_config",
    "callbacks.progress_bar",
    "data.root",
    "data.download",
)


@dataclass
class Run:
    """One finished run directory."""

    path: Path
    metrics: dict[str, Any]
    overrides: list[str] | None  # None: no .hydra/overrides.yaml
    config: dict[str, Any]
    finished: datetime  # metrics.json's ended_at, else its modification time (UTC)

    @property
    def seed(self) -> Any:
        return self.metrics.get("seed", self.config.get("seed"))

    @property
    def recipe_overrides(self) -> tuple[str, ...]:
        """The command-line overrides without ``seed=`` and without output/display settings."""
        kept = [o for o in self.overrides or [] if not o.startswith(("seed=", *NOT_PART_OF_THE_RECIPE))]
        return tuple(kept)

    @property
    def recipe(self) -> str:
        """``experiment=<name>`` when given, else the ``model=`` (or the config's task), plus other overrides."""
        experiment = next((o.split("=", 1)[1] for o in self.recipe_overrides if o.startswith("experiment=")), None)
        return experiment or next(
            (o.split("=", 1)[1] for o in self.recipe_overrides if o.startswith("model=")),
            str(self.metrics.get("model", "?")),
        )

    @property
    def dataset(self) -> str:
        """The dataset the run trained on (its data identity; older runs: the data config)."""
        recorded = (self.metrics.get("data") or {}).get("dataset")
        return str(recorded or (self.config.get("data") or {}).get("dataset", "mnist"))

    @property
    def is_transfer(self) -> bool:
        """Trained on a dataset other than MNIST: a row of the Transfer table (dev/reports/transfer.py)."""
        return self.dataset != "mnist" and "test/acc" in self.metrics

    @property
    def main_metric(self) -> str | None:
        return next((name for name in METRICS if name in self.metrics), None)

    @property
    def config_digest(self) -> str:
        """8 hex digits of the resolved config without the seed, paths, data root and display settings
        (the run's own output directory, wherever a value names it, counts as the same) and without
        the settings at their keyword default: a setting added to linzoo later, at the default
        that does what earlier runs did, does not make a new recipe of an old record."""
        output_dir = str((self.config.get("paths") or {}).get("output_dir", "")) or None
        recipe = _without(self.config, CONFIG_NOT_PART_OF_THE_RECIPE, output_dir=output_dir, root=self.config)
        return hashlib.sha256(json.dumps(recipe, sort_keys=True, default=str).encode()).hexdigest()[:8]


def _without(
    node: Any, dropped: tuple[str, ...], *, output_dir: str | None, root: dict[str, Any], prefix: str = ""
) -> Any:
    if isinstance(node, dict):
        return {
            key: _without(value, dropped, output_dir=output_dir, root=root, prefix=f"{prefix}{key}.")
            for key, value in node.items()
            if f"{prefix}{key}" not in dropped
            and (isinstance(value, dict) or value != keyword_default(root, f"{prefix}{key}"))
        }
    if isinstance(node, list):
        return [_without(value, dropped, output_dir=output_dir, root=root, prefix=prefix) for value in node]
    if output_dir and isinstance(node, str) and node.startswith(output_dir):
        return "<run>" + node[len(output_dir) :]
    return node


def read_run(path: Path) -> Run | None:
    """The run in ``path``, or None when it has no ``metrics.json`` (not finished)."""
    metrics_file = path / "metrics.json"
    if not metrics_file.is_file():
        return None
    overrides_file = path / ".hydra" / "overrides.yaml"
    config_file = path / "config.yaml"
    overrides = yaml.safe_load(overrides_file.read_text()) or [] if overrides_file.is_file() else None
    config = yaml.safe_load(config_file.read_text()) or {} if config_file.is_file() else {}
    metrics = json.loads(metrics_file.read_text())
    if "ended_at" in metrics:
        finished = datetime.fromisoformat(metrics["ended_at"]).astimezone(timezone.utc)
    else:  # runs from before the field: the file's time (lost in a copy that does not keep it)
        finished = datetime.fromtimestamp(metrics_file.stat().st_mtime, tz=timezone.utc)
    return Run(path, metrics, overrides, config, finished)


def command(run: Run, *, seeds: list[Any]) -> str:
    """The command line that made the run(s); a shared row writes its seeds as ``seed=S`` (S in the seeds column)."""
    if run.overrides is None:
        return "(unknown: no .hydra/overrides.yaml)"
    parts = list(run.recipe_overrides)
    if len(seeds) > 1:
        parts.append("seed=S")
    elif any(o.startswith("seed=") for o in run.overrides):
        parts.append(f"seed={seeds[0]}")
    return " ".join(["python scripts/train.py", *parts])


def mean_and_spread(values: list[float]) -> str:
    """``"99.61"`` for one value, ``"99.61 ± 0.04"`` (sample std) for several."""
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def group_runs(runs: list[Run], *, latest_per_seed: bool = True) -> list[list[Run]]:
    """Runs grouped by recipe (command line without ``seed=``, config digest) and data source, in
    first-seen order, sorted by seed. ``latest_per_seed``: of runs with the same seed (a rerun)
    only the latest, so that no seed counts twice in a mean (:func:`rerun_lines` lists them all)."""
    groups: dict[tuple[Any, ...], list[Run]] = {}
    for run in runs:
        key = (
            run.recipe_overrides,
            run.overrides is None and str(run.path),
            run.metrics.get("data_source"),
            run.config_digest,
        )
        groups.setdefault(key, []).append(run)
    if latest_per_seed:
        groups = {key: [same[-1] for same in _runs_per_seed(group)] for key, group in groups.items()}
    return [sorted(group, key=lambda run: str(run.seed).zfill(12)) for group in groups.values()]


def _runs_per_seed(group: list[Run]) -> list[list[Run]]:
    """The runs of ``group`` by seed, each seed's runs oldest first."""
    seeds: dict[str, list[Run]] = {}
    for run in group:
        seeds.setdefault(str(run.seed), []).append(run)
    return [sorted(same, key=lambda run: run.finished) for same in seeds.values()]


def rerun_lines(runs: list[Run]) -> list[str]:
    """One bullet per recipe and seed that ran more than once: each run's result and date (reproducibility)."""
    lines = []
    for group in group_runs(runs, latest_per_seed=False):
        for same in (same for same in _runs_per_seed(group) if len(same) > 1):
            metric = same[0].main_metric
            _, scale, unit, _ = METRICS[metric] if metric else ("-", 1.0, "", True)
            results = ", ".join(
                f"{run.metrics[metric] * scale:.2f}{unit} ({run.finished.strftime('%Y-%m-%d %H:%M')}, "
                f"{run.metrics.get('torch_threads', '?')} thr)"
                for run in same
                if metric in run.metrics
            )
            lines.append(
                f"- `{command(same[0], seeds=[same[0].seed])}` ({same[0].metrics.get('data_source', '?')}): {results}"
            )
    return lines


def table_row(group: list[Run], *, mark_config: bool = False) -> str:
    """One row of docs/results.md; ``mark_config``: add the config digest to the recipe cell
    (another row has the same command but a different config)."""
    first = group[0]
    metric = first.main_metric
    label, scale, unit, _ = METRICS[metric] if metric else ("-", 1.0, "", True)
    values = [run.metrics[metric] * scale for run in group if metric in run.metrics] if metric else []
    result = f"{mean_and_spread(values)}{unit}" if values else "-"
    seeds = [run.seed for run in group]
    target, literature = LITERATURE.get(first.recipe, ("-", "-"))
    epochs = sorted({run.metrics.get("epochs") for run in group}, key=str)
    wall_minutes = statistics.mean(float(run.metrics.get("wall_time_s", float("nan"))) for run in group) / 60
    wall = f"{wall_minutes:.1f} min"
    details = []
    if len(group) > 1:  # each run's own time: runs of one row may have shared the CPU differently
        details.append("/".join(f"{float(run.metrics.get('wall_time_s', float('nan'))) / 60:.1f}" for run in group))
    threads = [str(run.metrics.get("torch_threads", "?")) for run in group]  # "?": runs from before it was recorded
    if set(threads) != {"?"}:
        details.append("/".join(threads) + " thr")
    if details:
        wall += f" ({'; '.join(details)})"
    dates = sorted(run.finished.strftime("%Y-%m-%d") for run in group)
    date = dates[0] if dates[0] == dates[-1] else f"{dates[0]} to {dates[-1]}"
    cells = [
        f"`{first.recipe}`" + (f" (config {first.config_digest})" if mark_config else ""),
        f"{result} ({label})",
        target,
        literature,
        ", ".join(str(seed) for seed in seeds),
        ", ".join(str(e) for e in epochs),
        f"{first.metrics.get('num_parameters', 0):,}",
        wall,
        str(first.metrics.get("data_source", "?")),
        date,
        f"`{command(first, seeds=seeds)}`",
    ]
    return "| " + " | ".join(cells) + " |"


HEADER = (
    "| recipe | result (mean ± std over seeds) | target | literature | seeds | epochs | parameters "
    "| wall time per run | data | date (UTC) | command |\n"
    "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
)


def render(runs: list[Run], skipped: list[Path]) -> str:
    """The whole page (what docs/results.md holds when written there)."""
    lines = [
        "# Results",
        "",
        "Generated by `python scripts/results.py docs/runs/*/* --out docs/results.md` from the runs'",
        "records (their `metrics.json`, `config.yaml`, `.hydra/overrides.yaml` and per-epoch",
        "`csv/metrics.csv`, kept in [docs/runs](runs) by `--keep-in docs/runs`); do not edit by hand.",
        "Rows whose commands differ only in `seed=` are one row (mean ± sample std). Wall time is the",
        "whole run (fit + test) on the machine that ran it, with the number of torch threads each run",
        "had (`thr`, from `metrics.json`; `?` for runs from before it was recorded).",
        "`scripts/run_recipes.sh` launches the full campaign; with `LANES=2` two runs share the CPU,",
        "one thread each, so each run's wall time is longer than it would be alone.",
        "",
    ]
    from dev.reports.transfer import section  # it imports this module

    transfer_runs = runs
    runs = [run for run in runs if not run.is_transfer]
    if runs:
        lines += [HEADER, *table_rows(runs)]
    else:
        lines += [
            "**No finished runs yet.** Targets and published figures the recipes aim at:",
            "",
            "| recipe | target (test) | literature |",
            "| --- | --- | --- |",
            *(f"| `{name}` | {target} | {figure} |" for name, (target, figure) in LITERATURE.items()),
        ]
    reruns = rerun_lines(runs)
    if reruns:
        lines += [
            "",
            "Reruns (same command, config and seed; the table counts the latest): test result, when (UTC)",
            "and torch threads of each run.",
            "",
            *reruns,
        ]
    lines += section(transfer_runs)
    if skipped:
        lines += ["", "Skipped (no `metrics.json`: unfinished or failed): " + ", ".join(f"`{p}`" for p in skipped)]
    return "\n".join(lines) + "\n"


def table_rows(runs: list[Run]) -> list[str]:
    """The rows of the full table; rows whose commands differ at most in their seeds (same data) but
    whose configs differ name their config digest."""
    groups = group_runs(runs)
    commands = [(group[0].recipe_overrides, group[0].metrics.get("data_source")) for group in groups]
    return [table_row(group, mark_config=commands.count(key) > 1) for group, key in zip(groups, commands)]


README_START, README_END = "<!-- results:start -->", "<!-- results:end -->"
TRANSFER_START, TRANSFER_END = "<!-- transfer:start -->", "<!-- transfer:end -->"


def short_table(runs: list[Run]) -> str:
    """The README's short version: recipe, result, target, wall time per run, data, command (MNIST runs only)."""
    runs = [run for run in runs if not run.is_transfer]
    if not runs:
        return "No finished recipe runs yet: see [docs/results.md](docs/results.md) for the targets."
    lines = [
        "| recipe | result | target | wall time per run | data | command |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for row in (line.strip("| ").split(" | ") for line in table_rows(runs)):
        lines.append(f"| {row[0]} | {row[1]} | {row[2]} | {row[7]} | {row[8]} | {row[10]} |")
    return "\n".join(lines)


def update_readme(readme: Path, runs: list[Run]) -> None:
    """Replace what stands between the results markers of ``readme`` with :func:`short_table`."""
    replace_block(readme, README_START, README_END, short_table(runs))


def update_transfer(page: Path, runs: list[Run]) -> None:
    """Replace what stands between the transfer markers of ``page`` (docs/finetune.md) with the Transfer table."""
    from dev.reports.transfer import body  # it imports this module

    lines = body(runs) or ["No finished run on another dataset yet: `scripts/run_transfer.sh` makes them."]
    replace_block(page, TRANSFER_START, TRANSFER_END, "\n".join(lines))


def replace_block(path: Path, start: str, end: str, content: str) -> None:
    """Write ``content`` between the lines ``start`` and ``end`` of ``path``, keeping the rest."""
    text = path.read_text()
    if start not in text or end not in text:
        raise ValueError(f"{path} has no {start} ... {end} block; add one where the table goes.")
    before, rest = text.split(start, 1)
    after = rest.split(end, 1)[1]
    path.write_text(f"{before}{start}\n{content}\n{end}{after}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="*", type=Path, help="run directories (e.g. outputs/train/*)")
    parser.add_argument(
        "--out",
        type=Path,
        help="write the page to this file (the project's page: --out docs/results.md); default: stdout",
    )
    parser.add_argument("--readme", type=Path, help="also put the short table into this README's results block")
    parser.add_argument(
        "--transfer", type=Path, help="also put the Transfer table into this page's transfer block (docs/finetune.md)"
    )
    parser.add_argument(
        "--keep-in",
        type=Path,
        metavar="DIR",
        help="first copy each finished run's record into DIR/<campaign>/<run> (e.g. docs/runs), "
        "then build the table from the copies",
    )
    args = parser.parse_args(argv)
    runs, skipped = [], []
    for path in sorted(args.runs):
        if not path.is_dir():
            continue
        if args.keep_in is not None and (path / "metrics.json").is_file():
            path = keep_record(path, args.keep_in)
        run = read_run(path)
        if run is None:
            skipped.append(path)
        else:
            runs.append(run)
    runs.sort(key=lambda run: (run.recipe, run.finished))
    page = render(runs, skipped)
    if args.out is None:
        sys.stdout.write(page)
    else:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(page)
    if args.readme is not None:
        update_readme(args.readme, runs)
    if args.transfer is not None:
        update_transfer(args.transfer, runs)
    where = args.out or "stdout"
    print(f"{where}: {len(runs)} runs in {len(group_runs(runs))} rows, {len(skipped)} skipped", file=sys.stderr)
    return 0
