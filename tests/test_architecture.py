"""The folders are the layers, and imports go down only (DESIGN.md), checked over linzoo's import graph.

    common < layers < models < checkpoint < data < tasks < callbacks < tools < run

layers/models are plain PyTorch; only run/ knows Hydra; nothing in the library imports run/ or
tools/; there are no cycles. Lazy imports inside functions count too: they run all the same.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from dev import architecture
from helpers import ROOT

HYDRA = ("hydra", "omegaconf")
LIGHTNING = ("lightning", "pytorch_lightning", "torchmetrics")
# What each layer may not import, anywhere in its files.
FORBIDDEN = {
    "common": HYDRA + LIGHTNING + ("torch",),
    "layers": HYDRA + LIGHTNING,
    "models": HYDRA + LIGHTNING,
    "checkpoint": HYDRA + LIGHTNING,
    "data": HYDRA,
    "tasks": HYDRA,
    "callbacks": HYDRA,
    "tools": HYDRA,
}
OLD_CHECKPOINT = ROOT / "tests" / "data" / "before_issue10" / "mlp.ckpt"


def test_every_module_sits_in_a_layer_folder() -> None:
    loose = [name for name in architecture.modules(ROOT) if architecture.layer_of(name) not in architecture.LAYERS]
    assert loose == ["linzoo"], f"modules outside the layer folders: {loose}"


def test_no_import_cycles() -> None:
    """Neither at import time nor through a lazy import inside a function."""
    assert architecture.cycles(architecture.graph(ROOT)) == []
    assert architecture.cycles(architecture.graph(ROOT, top_level_only=False)) == []


def test_nothing_imports_a_higher_layer() -> None:
    assert architecture.upward_imports(architecture.graph(ROOT, top_level_only=False)) == []


def test_the_package_facade_imports_neither_run_nor_tools() -> None:
    facade = architecture.imports(ROOT / "linzoo" / "__init__.py", "linzoo", top_level_only=False)
    assert not [name for name in facade if name.startswith(("linzoo.run", "linzoo.tools"))]


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_frameworks_stay_in_their_layers(layer: str) -> None:
    found = []
    for name, path in architecture.modules(ROOT).items():
        if architecture.layer_of(name) == layer:
            for imported in architecture.imports(path, name, top_level_only=False):
                if imported.split(".")[0] in FORBIDDEN[layer]:
                    found.append(f"{name} imports {imported}")
    assert not found


def test_the_checker_sees_a_violation(tmp_path) -> None:
    """A planted upward import, cycle and Hydra import in a copy of the tree are all found."""
    for folder in ("layers", "models", "run"):
        (tmp_path / "linzoo" / folder).mkdir(parents=True)
        (tmp_path / "linzoo" / folder / "__init__.py").write_text("")
    (tmp_path / "linzoo" / "__init__.py").write_text("")
    (tmp_path / "linzoo" / "layers" / "a.py").write_text("import hydra\nfrom linzoo.models import b\n")
    (tmp_path / "linzoo" / "models" / "b.py").write_text("def f():\n    from linzoo.run import c\n")
    (tmp_path / "linzoo" / "run" / "c.py").write_text("from linzoo.run import d\n")
    (tmp_path / "linzoo" / "run" / "d.py").write_text("from linzoo.run import c\n")
    edges = architecture.graph(tmp_path, top_level_only=False)
    upward = architecture.upward_imports(edges)
    assert "linzoo.layers.a -> linzoo.models.b" in upward and "linzoo.models.b -> linzoo.run.c" in upward
    assert architecture.cycles(architecture.graph(tmp_path)) == [["linzoo.run.c", "linzoo.run.d"]]
    assert "hydra" in architecture.imports(tmp_path / "linzoo" / "layers" / "a.py", "linzoo.layers.a")


@pytest.mark.parametrize("kind", ["ckpt", "safetensors"])
def test_load_needs_neither_hydra_nor_lightning(kind: str, tmp_path) -> None:
    path = OLD_CHECKPOINT
    if kind == "safetensors":
        pytest.importorskip("safetensors")
        from safetensors.torch import save_file

        checkpoint = torch.load(OLD_CHECKPOINT, map_location="cpu", weights_only=False)
        state = {
            key[4:]: value.contiguous() for key, value in checkpoint["state_dict"].items() if key.startswith("net.")
        }
        path = tmp_path / "mlp.safetensors"
        save_file(state, str(path), metadata={"linzoo_config": json.dumps(checkpoint["linzoo_config"])})
    code = (
        "import sys, linzoo\n"
        f"net = linzoo.load({str(path)!r})\n"
        "print(type(net).__name__, sorted(m for m in ('hydra', 'omegaconf', 'lightning') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert done.stdout.split(maxsplit=1) == ["MLP", "[]\n"]


def test_every_folder_of_the_package_is_a_package() -> None:
    """A folder without __init__.py is a namespace package: find_packages leaves it out of the wheel."""
    folders = {path.parent for path in (ROOT / "linzoo").rglob("*.py") if "__pycache__" not in path.parts}
    assert sorted(str(f.relative_to(ROOT)) for f in folders if not (f / "__init__.py").is_file()) == []
