"""docs/finetune.md cannot rot: every command of its ```bash blocks runs, in order (tiny models on
generated data), and every ```python block runs, as tests/test_docs_linear.py does for docs/linear.md.

The page has three parts, each with its own test: fine-tuning (its runs depend on each other), your
own images (on a generated folder of three classes) and LoRA."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from helpers import ROOT, SHORT, TINY, data_overrides
from image_folders import draw, make_folder, save
from linzoo.checkpoint.files import read_checkpoint
from linzoo.run.evaluate import evaluate
from linzoo.run.train import train
from linzoo.tools.export import export_checkpoint
from linzoo.tools.predict import predict_checkpoint

PAGE = ROOT / "docs" / "finetune.md"
OWN_IMAGES = "## Your own images"
LORA = "## LoRA"


def page_text() -> str:
    """The page up to its image-folder section: fine-tuning from trained weights."""
    return PAGE.read_text().split(OWN_IMAGES)[0]


def section(heading: str) -> str:
    """The page's section under ``heading``, up to the next ``## `` heading."""
    text = PAGE.read_text().split(heading, 1)[1]
    return text.split("\n## ", 1)[0]


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


def test_the_page_has_the_image_folder_and_lora_commands_of_issue_21() -> None:
    images = [" ".join(words) for words in commands(section(OWN_IMAGES))]
    assert any("data=image_folder data.root=" in line for line in images)
    assert any(line.startswith("python scripts/predict.py") for line in images)
    lora = [" ".join(words) for words in commands(section(LORA))]
    assert any(
        "adapter=lora adapter.rank=8 adapter.alpha=16 adapter.dropout=0.0 adapter.roles=[q,v]" in line for line in lora
    )
    assert any("adapter.roles=[qkv,attn_out,ffn_in,ffn_out]" in line for line in lora)
    assert any("adapter.roles=all_but_head" in line for line in lora)


@pytest.mark.slow
def test_every_image_folder_command_of_docs_finetune_runs(compose_train, compose_eval, tmp_path: Path, capsys) -> None:
    """train on pets/ (cat, dog, fox), eval its last.ckpt, predict new_photos/: as the page says."""
    make_folder(tmp_path / "pets", {"cat": 24, "dog": 24, "fox": 24})
    (tmp_path / "new_photos").mkdir()
    for label in range(3):
        save(draw(label, 5), tmp_path / "new_photos" / f"photo{label}.png", "RGB")
    run = tmp_path / "outputs" / "train" / "pets_run"
    ran = []
    for words in commands(section(OWN_IMAGES)):
        script = words[1]
        options = dict(arg.split("=", 1) for arg in words[2:])
        paths = {
            key: str(tmp_path / value.replace("outputs/train/<run>", str(run.relative_to(tmp_path))))
            for key, value in options.items()
            if key in ("data.root", "ckpt_path", "inputs")
        }
        if script == "scripts/train.py":
            args = [f"{key}={paths.get(key, value)}" for key, value in options.items()]
            metrics = train(compose_train([*args, *TINY[options["model"]], *SHORT], output_dir=run))
            assert metrics["data"]["class_names"] == ["cat", "dog", "fox"]
        elif script == "scripts/eval.py":
            assert paths["ckpt_path"].endswith("checkpoints/last.ckpt")
            evaluated = evaluate(compose_eval([f"ckpt_path={paths['ckpt_path']}"], output_dir=tmp_path / "eval"))
            assert evaluated["same_data_as_checkpoint"] is True
        else:
            assert script == "scripts/predict.py", script
            capsys.readouterr()
            predict_checkpoint(ckpt_path=paths["ckpt_path"], inputs=paths["inputs"], run_dir=tmp_path / "predict")
            rows = capsys.readouterr().out.splitlines()[1:]
            assert len(rows) == 3 and {row.split()[1] for row in rows} <= {"cat", "dog", "fox"}
        ran.append(script)
    assert ran == ["scripts/train.py", "scripts/eval.py", "scripts/predict.py"]


@pytest.mark.slow
def test_every_lora_command_of_docs_finetune_runs(compose_train, fake_mnist_root, tmp_path: Path) -> None:
    found = commands(section(LORA))
    assert len(found) == 3
    for index, words in enumerate(found):
        assert words[:2] == ["python", "scripts/train.py"], words
        args = words[2:]
        model = next(arg.split("=", 1)[1] for arg in args if arg.startswith("model="))
        run = tmp_path / f"lora{index}"
        metrics = train(compose_train([*args, *TINY[model], *data_overrides(fake_mnist_root), *SHORT], output_dir=run))
        assert 0 < metrics["trainable_parameters"] < metrics["num_parameters"]  # the base net is frozen
        options = dict(arg.split("=", 1) for arg in args)
        saved = read_checkpoint(run / "checkpoints" / "last.ckpt")["linzoo_config"]["model"]["net"]["adapter"]
        roles = options.get("adapter.roles", "[q,v]")  # configs/adapter/lora.yaml's default
        expected = roles.strip("[]").split(",") if roles.startswith("[") else roles
        assert saved["kind"] == "lora" and saved["roles"] == expected
        assert saved["rank"] == int(options.get("adapter.rank", 8))


def test_every_python_block_of_docs_finetune_runs(capsys) -> None:
    namespace: dict[str, object] = {"__name__": "docs_finetune"}
    found = blocks(PAGE.read_text(), "python")
    assert len(found) >= 2  # "From Python" and LoRA's
    for index, block in enumerate(found):
        exec(compile(block, f"{PAGE}:block{index}", "exec"), namespace)  # noqa: S102 - our own page
    assert "trainable / " in capsys.readouterr().out
