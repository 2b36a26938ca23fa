"""The Transfer table of docs/results.md: a model trained on MNIST, then on another dataset four ways.

A run belongs here when it trained on a dataset other than MNIST. Its *variant* comes from its
resolved config, never from its directory name:

- from scratch: no ``init_from``;
- full fine-tune: ``init_from`` with ``finetune.train_roles=all``;
- linear probe: ``init_from`` with ``finetune.train_roles=[head]``;
- LoRA: ``adapter=lora`` (its rank and roles are shown), with or without ``init_from``;
- any other choice of roles is shown as ``fine-tune <roles>``.

The source column is the MNIST test accuracy of the run the weights came from, found among the
given runs by the checkpoint file ``init_from`` recorded (``-`` when that run is not among them).
The verdict lines compare each variant's mean with from-scratch's, on the same seeds.
"""

from __future__ import annotations

import statistics

from dev.reports.results import Run, command, group_runs, mean_and_spread

HEADER = (
    "| model | variant | test accuracy (mean ± std over seeds) | trainable / total parameters | seeds | epochs "
    "| wall time per run | MNIST source (test accuracy) | data | command |\n"
    "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
)


def variant(run: Run) -> str:
    """What trained, from the resolved config (see the module docstring)."""
    adapter = run.config.get("adapter") or {}
    if adapter.get("kind") == "lora":
        roles = adapter.get("roles")
        shown = ",".join(roles) if isinstance(roles, list) else str(roles)
        return f"LoRA r={adapter.get('rank')} on {shown} + head"
    if not run.config.get("init_from"):
        return "from scratch"
    roles = (run.config.get("finetune") or {}).get("train_roles", "all")
    if roles == "all":
        return "full fine-tune"
    if roles == ["head"]:
        return "linear probe"
    return f"fine-tune {roles}"


def _source_accuracy(run: Run, runs: list[Run]) -> str:
    source = (run.metrics.get("init_from") or {}).get("file")
    if not source:
        return "-"
    for other in runs:
        if source in (other.metrics.get("weights"), other.metrics.get("best_checkpoint")):
            return f"{other.metrics['test/acc'] * 100:.2f}% (seed {other.seed})"
    return "-"


def _accuracies(group: list[Run]) -> list[float]:
    return [run.metrics["test/acc"] * 100 for run in group]


def transfer_groups(runs: list[Run]) -> list[list[Run]]:
    groups = group_runs([run for run in runs if run.is_transfer])
    order = ("from scratch", "full fine-tune", "linear probe")
    return sorted(
        groups,
        key=lambda group: (
            group[0].dataset,
            str(group[0].metrics.get("model")),
            order.index(variant(group[0])) if variant(group[0]) in order else len(order),
            variant(group[0]),
        ),
    )


def row(group: list[Run], runs: list[Run]) -> str:
    first = group[0]
    walls = [float(run.metrics.get("wall_time_s", float("nan"))) / 60 for run in group]
    threads = "/".join(str(run.metrics.get("torch_threads", "?")) for run in group)
    trainable = first.metrics.get("trainable_parameters", first.metrics.get("num_parameters", 0))
    cells = [
        str(first.metrics.get("model", "?")),
        variant(first),
        f"{mean_and_spread(_accuracies(group))}%",
        f"{trainable:,} / {first.metrics.get('num_parameters', 0):,}",
        ", ".join(str(run.seed) for run in group),
        ", ".join(sorted({str(run.metrics.get("epochs")) for run in group})),
        f"{statistics.mean(walls):.1f} min ({'/'.join(f'{w:.1f}' for w in walls)}; {threads} thr)",
        _source_accuracy(first, runs),
        str(first.metrics.get("data_source", first.dataset)),
        f"`{command(first, seeds=[run.seed for run in group])}`",
    ]
    return "| " + " | ".join(cells) + " |"


def verdicts(groups: list[list[Run]]) -> list[str]:
    """Per model: each variant's mean minus from-scratch's on the seeds both have, and what that says."""
    lines = []
    by_model: dict[tuple[str, str], dict[str, list[Run]]] = {}
    for group in groups:
        key = (group[0].dataset, str(group[0].metrics.get("model")))
        by_model.setdefault(key, {})[variant(group[0])] = group
    for (data, model), variants in by_model.items():
        scratch = variants.get("from scratch")
        if scratch is None:
            continue
        for name, group in variants.items():
            if name == "from scratch":
                continue
            lines.append(f"- {model} on {data}, {name} vs from scratch: {_difference(group, scratch)}")
    return lines


def _difference(group: list[Run], scratch: list[Run]) -> str:
    """``+0.41 points (seeds 0, 1, 2: +0.3/+0.5/+0.4): helps`` on the seeds both groups ran."""
    mine = {str(run.seed): run.metrics["test/acc"] * 100 for run in group}
    theirs = {str(run.seed): run.metrics["test/acc"] * 100 for run in scratch}
    seeds = [seed for seed in mine if seed in theirs]
    if not seeds:
        return "no common seed"
    differences = [mine[seed] - theirs[seed] for seed in seeds]
    mean = statistics.mean(differences)
    each = "/".join(f"{d:+.2f}" for d in differences)
    if all(d > 0 for d in differences):
        word = "better on every seed"
    elif all(d < 0 for d in differences):
        word = "worse on every seed"
    else:
        word = "no consistent difference"
    return f"{mean:+.2f} points (seeds {', '.join(seeds)}: {each}): {word}"


def body(runs: list[Run]) -> list[str]:
    """The Transfer table and its verdicts (none when no run trained on another dataset)."""
    groups = transfer_groups(runs)
    if not groups:
        return []
    return [
        "Runs on another dataset (`scripts/run_transfer.sh` is the MNIST -> Fashion-MNIST campaign):",
        "the same model and recipe trained from scratch, fully fine-tuned from MNIST weights",
        "(`init_from=`), as a linear probe (`'finetune.train_roles=[head]'`) and with LoRA",
        "(`adapter=lora`), with the same epochs and seeds. The variant is read from each run's config.",
        "`seed=` draws what is random in a run: new weights (a from-scratch net, LoRA's A, a re-created",
        "head) and dropout; the split and the order of the batches are `data.seed`'s, the same for every",
        "run here. So a full fine-tune or a linear probe that re-creates nothing (Fashion-MNIST has 10",
        "classes, like MNIST) and has no dropout is the same run on every seed: its spread is 0.",
        "",
        HEADER,
        *(row(group, runs) for group in groups),
        "",
        "Against from scratch (test accuracy, the mean of the per-seed differences):",
        "",
        *verdicts(groups),
    ]


def section(runs: list[Run]) -> list[str]:
    """docs/results.md's Transfer section: a heading and :func:`body` (nothing without such runs)."""
    lines = body(runs)
    return ["", "## Transfer: MNIST -> another dataset", "", *lines] if lines else []
