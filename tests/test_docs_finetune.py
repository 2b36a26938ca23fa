"""docs/finetune.md cannot rot: every command of its ```bash blocks runs, in order (tiny models on
generated data), and every ```python block runs, as tests/test_docs_linear.py does for docs/linear.md."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from helpers import ROOT, SHORT, TINY
from linzoo.run.train import train
from linzoo.tools.export import export_checkpoint

PAGE = ROOT / "docs" / "finetune.md"
OWN_IMAGES = "## Your own images"  # that section's commands need an image folder: tests/test_image_folder.py


def page_text() -> str:
    """The page up to its image-folder section (whose commands run in tests/test_image_folder.py)."""
    return PAGE.read_text().split(OWN_IMAGES)[0]


def blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```$", text, flags=re.DOTALL | re.MULTILINE)


def commands(text: str) -> list[list[str]]:
    return [shlex.split(line) for block in blocks(text, "bash") for line in block.splitlines() if line.strip()]


def test_the_page_has_the_commands_of_issue_21() -> None:
    text = page_text()
    lines = [" ".join(words) for words in commands(text)]
    assert any("model=transformer data=fashion_mnist init_from=runs/mnist_vit " in line for line in lines)
    assert any("finetune.train_roles=[head] " in line for line in lines)
    assert any("finetune.train_roles=[head,attn_out,ffn_out]" in line for line in lines)
    assert any("finetune.train_other=true" in line for line in lines)
    assert any(".safetensors" in line and "init_from=" in line for line in lines)


@pytest.mark.slow
def test_every_command_of_docs_finetune_runs(compose_train, fake_mnist_root, tmp_path: Path) -> None:
    in_tmp = lambda value: re.sub(r"(?<![\w/])runs/", f"{tmp_path}/runs/", value)  # noqa: E731
    runs: dict[str, dict] = {}
    for words in commands(page_text()):
        assert words[0] == "python", words
        script, args = words[1], [in_tmp(arg) for arg in words[2:]]
        if script == "scripts/export.py":
            options = dict(arg.split("=", 1) for arg in args)
            export_checkpoint(run_dir=tmp_path / "export", **options)
            continue
        assert script == "scripts/train.py", script
        run_dir = next(Path(arg.split("=", 1)[1]) for arg in args if arg.startswith("hydra.run.dir="))
        args = [arg for arg in args if not arg.startswith("hydra.run.dir=")]
        model = next(arg.split("=", 1)[1] for arg in args if arg.startswith("model="))
        data = [] if any(arg.startswith("data=") for arg in args) else ["data=mnist"]
        if "data=fashion_mnist" in args:
            data.append("data.source=full")  # the fake root holds the full (fake) Fashion-MNIST files
        data += [f"data.root={fake_mnist_root}", "data.download=false", "data.val_size=200"]
        train(compose_train([*args, *TINY[model], *data, *SHORT], output_dir=run_dir))
        runs[run_dir.name] = json.loads((run_dir / "metrics.json").read_text())
    assert len(runs) == 7
    from_file = runs["fashion_from_safetensors"]["init_from"]
    assert from_file["file"].endswith("runs/mnist_vit.safetensors") and from_file["data_identity"]["dataset"] == "mnist"
    assert runs["fashion_vit"]["trainable_parameters"] == runs["fashion_vit"]["num_parameters"]
    probe, residual, residual_norms = (
        runs[name] for name in ("fashion_probe", "fashion_residual", "fashion_residual_norms")
    )
    head = 16 * 10 + 10
    assert probe["trainable_parameters"] == head
    assert head < residual["trainable_parameters"] < residual_norms["trainable_parameters"] < probe["num_parameters"]


def test_every_python_block_of_docs_finetune_runs(capsys) -> None:
    namespace: dict[str, object] = {"__name__": "docs_finetune"}
    found = blocks(page_text(), "python")
    assert found
    for index, block in enumerate(found):
        exec(compile(block, f"{PAGE}:block{index}", "exec"), namespace)  # noqa: S102 - our own page
    assert "trainable / " in capsys.readouterr().out
