"""Architecture figures of one or more linzoo source trees, side by side: the table of issue 23.

    python dev/architecture.py BEFORE_TREE AFTER_TREE [--names before after] [--python .venv/bin/python]

For each tree (a clone or a ``git worktree``): lines of Python per folder of ``linzoo/``, the
import graph inside linzoo (cycles, imports that go up a layer, library modules that import
Hydra or Lightning at import time), the time of ``import linzoo`` and of ``linzoo.load(...)``
in a fresh interpreter (median of 5) and which frameworks that load pulls in, the size of the
wheel, and the number of tests pytest collects. The trees are timed alternately, one run of
each per round, so both see the same machine. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import ast
import statistics
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

# Layers, lowest first: a module may import its own layer and those below (DESIGN.md).
LAYERS = ["common", "layers", "models", "checkpoint", "data", "tasks", "callbacks", "tools", "run"]
# Where each top-level module of the flat layout (before issue 23) belongs, for the "before" column.
FLAT_HOMES = {
    "checkpoints": "checkpoint",
    "quantize": "tools",
    "predict": "tools",
    "export": "tools",
    "sampling": "tools",
    "image_inputs": "tools",
    "image_files": "tools",
    "benchmarks": "dev",
    "reports": "dev",
    "errors": "common",
    "checks": "common",
}
FRAMEWORKS = ("hydra", "omegaconf", "lightning")
LOAD_CODE = (
    "import sys, time; t = time.perf_counter(); import linzoo; i = time.perf_counter() - t; "
    "t = time.perf_counter(); linzoo.load(sys.argv[1]); l = time.perf_counter() - t; "
    "print(i, l, ','.join(m for m in ('hydra', 'lightning') if m in sys.modules) or '-')"
)


def modules(tree: Path) -> dict[str, Path]:
    """``{"linzoo.run.train": path, ...}`` for every module of ``tree/linzoo``."""
    found = {}
    for path in sorted((tree / "linzoo").rglob("*.py")):
        parts = path.relative_to(tree).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports(path: Path, module: str, *, top_level_only: bool = True) -> set[str]:
    """Modules that ``module`` imports: at import time only (not inside functions or
    ``if TYPE_CHECKING``), or anywhere in the file with ``top_level_only=False``."""
    tree = ast.parse(path.read_text())
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    body = [n for n in tree.body if not (isinstance(n, ast.If) and "TYPE_CHECKING" in ast.unparse(n.test))]
    nodes = body if top_level_only else [node for top in body for node in ast.walk(top)]
    names: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def layer_of(module: str) -> str:
    parts = module.split(".")
    if len(parts) < 2:
        return "top"
    return FLAT_HOMES.get(parts[1], parts[1] if parts[1] in LAYERS else "run")


def graph(tree: Path, *, top_level_only: bool = True) -> dict[str, set[str]]:
    """Internal import edges: module -> linzoo modules it imports (at import time, or anywhere)."""
    mods = modules(tree)
    edges = {}
    for name, path in mods.items():
        # A submodule's own packages (their __init__) run first anyway: not an edge.
        found = imports(path, name, top_level_only=top_level_only)
        targets = {imp for imp in found if imp in mods and not name.startswith(imp)}
        edges[name] = targets
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in edges.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def upward_imports(edges: dict[str, set[str]]) -> list[str]:
    rank = {layer: number for number, layer in enumerate(LAYERS)}
    upward = []
    for source, targets in edges.items():
        for target in targets:
            low, high = layer_of(source), layer_of(target)
            if low in rank and high in rank and rank[high] > rank[low]:
                upward.append(f"{source} -> {target}")
    return sorted(upward)


def framework_importers(tree: Path) -> list[str]:
    """Library modules (not run/, not dev tooling) that import Hydra or OmegaConf at import time."""
    found = []
    for name, path in modules(tree).items():
        if layer_of(name) in ("run", "dev"):
            continue
        found_imports = imports(path, name)
        if any(imp.split(".")[0] in ("hydra", "omegaconf") for imp in found_imports):
            found.append(name)
    return found


def lines_per_folder(tree: Path) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for path in (tree / "linzoo").rglob("*.py"):
        relative = path.relative_to(tree / "linzoo")
        folder = relative.parts[0] if len(relative.parts) > 1 else "(top level)"
        counts[folder] += len(path.read_text().splitlines())
    for path in (tree / "dev").rglob("*.py") if (tree / "dev").is_dir() else ():
        counts["dev/ (outside the wheel)"] += len(path.read_text().splitlines())
    return dict(counts)


def wheel_kilobytes(tree: Path, python: str) -> float:
    with tempfile.TemporaryDirectory() as out:
        subprocess.run(
            [python, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", out, str(tree)],
            check=True,
            capture_output=True,
        )
        (wheel,) = Path(out).glob("*.whl")
        return wheel.stat().st_size / 1e3


def test_count(tree: Path, python: str) -> int:
    done = subprocess.run(
        [python, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"],
        cwd=tree,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"},
    )
    return sum(1 for line in done.stdout.splitlines() if "::" in line)


def timings(trees: list[Path], python: str, checkpoint: Path, rounds: int = 5) -> list[tuple[float, float, str]]:
    """Median ``import linzoo`` and ``linzoo.load`` seconds per tree, alternating the trees each round."""
    samples: list[list[tuple[float, float, str]]] = [[] for _ in trees]
    for _ in range(rounds):
        for number, tree in enumerate(trees):
            out = subprocess.run(
                [python, "-c", LOAD_CODE, str(checkpoint)],
                cwd=tempfile.gettempdir(),
                env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"},
                capture_output=True,
                text=True,
                check=True,
            ).stdout.split()
            samples[number].append((float(out[0]), float(out[1]), out[2]))
    return [
        (statistics.median(s[0] for s in runs), statistics.median(s[1] for s in runs), runs[-1][2]) for runs in samples
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("trees", nargs="+", type=Path)
    parser.add_argument("--names", nargs="+")
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument(
        "--checkpoint", type=Path, default=Path(__file__).resolve().parents[1] / "tests/data/before_issue10/mlp.ckpt"
    )
    args = parser.parse_args()
    names = args.names or [tree.name for tree in args.trees]
    args.python = str(Path(args.python).absolute())  # the timing runs start in a temp folder
    args.trees = [tree.resolve() for tree in args.trees]
    times = timings(args.trees, args.python, args.checkpoint)
    rows: dict[str, list[str]] = defaultdict(list)
    folders = sorted({folder for tree in args.trees for folder in lines_per_folder(tree)})
    for tree, (import_s, load_s, pulled) in zip(args.trees, times):
        edges = graph(tree)
        rows["import cycles (at import time)"].append("; ".join(" <-> ".join(c) for c in cycles(edges)) or "none")
        lazy = cycles(graph(tree, top_level_only=False))
        rows["import cycles (lazy imports too)"].append("; ".join(" <-> ".join(c) for c in lazy) or "none")
        rows["upward imports"].append(str(len(upward_imports(edges))))
        rows["library modules importing hydra/omegaconf"].append(str(len(framework_importers(tree))))
        rows["`import linzoo` (s, median of 5)"].append(f"{import_s:.3f}")
        rows["`linzoo.load(ckpt)` (s, median of 5)"].append(f"{load_s:.3f}")
        rows["frameworks in sys.modules after load"].append(pulled)
        rows["wheel (kB)"].append(f"{wheel_kilobytes(tree, args.python):.0f}")
        rows["tests collected"].append(str(test_count(tree, args.python)))
        per_folder = lines_per_folder(tree)
        for folder in folders:
            rows[f"lines: {folder}"].append(str(per_folder.get(folder, 0)))
    print("| figure | " + " | ".join(names) + " |")
    print("| --- | " + " | ".join("---" for _ in names) + " |")
    for figure, values in rows.items():
        print(f"| {figure} | " + " | ".join(values) + " |")


if __name__ == "__main__":
    main()
