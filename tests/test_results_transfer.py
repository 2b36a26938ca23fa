"""The Transfer table of docs/results.md (dev.reports.transfer): variants read from each run's config,
mean ± std over seeds, trainable parameters, the MNIST source's accuracy and per-seed verdicts."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import yaml

from dev.reports import results, transfer
from helpers import ROOT


def make_run(path: Path, *, seed: int, accuracy: float, config: dict, metrics: dict | None = None) -> Path:
    """A finished run directory as scripts/train.py leaves it (what the table reads)."""
    path.mkdir(parents=True)
    dataset = (config.get("data") or {}).get("dataset", "mnist")
    record = {
        "test/acc": accuracy,
        "model": "VisionTransformer",
        "data_source": dataset,
        "data": {"dataset": dataset},
        "num_parameters": 138_890,
        "trainable_parameters": 138_890,
        "epochs": 3,
        "wall_time_s": 120.0,
        "torch_threads": 2,
        "seed": seed,
        "weights": str(path / "checkpoints" / "last.ckpt"),
        **(metrics or {}),
    }
    (path / "metrics.json").write_text(json.dumps(record))
    (path / "config.yaml").write_text(yaml.safe_dump({"seed": seed, **config}))
    overrides = [f"{key}={value}" for key, value in sorted(config.items()) if not isinstance(value, dict)]
    (path / ".hydra").mkdir()
    (path / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(["model=transformer", *overrides, f"seed={seed}"]))
    return path


def campaign(root: Path) -> list[results.Run]:
    source = make_run(root / "source", seed=0, accuracy=0.9857, config={})
    source_ckpt = str(source / "checkpoints" / "last.ckpt")
    fashion = {"data": {"dataset": "fashion_mnist"}}
    lineage = {"init_from": {"file": source_ckpt}}
    variants = {  # name: (config, accuracies of seeds 0 and 1, trainable parameters, metrics)
        "scratch": ({**fashion}, (0.880, 0.884), 138_890, {}),
        "finetune": ({**fashion, "init_from": str(source)}, (0.885, 0.887), 138_890, lineage),
        "probe": (
            {**fashion, "init_from": str(source), "finetune": {"train_roles": ["head"]}},
            (0.700, 0.710),
            650,
            lineage,
        ),
        "lora": (
            {**fashion, "init_from": str(source), "adapter": {"kind": "lora", "rank": 8, "roles": ["q", "v"]}},
            (0.883, 0.879),
            8_842,
            lineage,
        ),
    }
    for name, (config, accuracies, trainable, metrics) in variants.items():
        for seed, accuracy in enumerate(accuracies):
            make_run(
                root / f"{name}{seed}",
                seed=seed,
                accuracy=accuracy,
                config=config,
                metrics={"trainable_parameters": trainable, **metrics},
            )
    return [results.read_run(path) for path in sorted(root.iterdir())]


def test_transfer_runs_get_their_own_table_with_variants_from_the_config(tmp_path: Path) -> None:
    page = results.render(campaign(tmp_path), [])
    main, transfer = page.split("## Transfer")
    assert main.count("| `transformer`") == 1  # only the MNIST source stays in the recipes table
    rows = [line for line in transfer.splitlines() if line.startswith("| VisionTransformer")]
    assert [row.split(" | ")[1] for row in rows] == [
        "from scratch",
        "full fine-tune",
        "linear probe",
        "LoRA r=8 on q,v + head",
    ]
    scratch, finetune, probe, lora = rows
    assert "88.20 ± 0.28%" in scratch and "138,890 / 138,890" in scratch and "| - |" in scratch
    assert "88.60 ± 0.14%" in finetune and "98.57% (seed 0)" in finetune  # the source's MNIST accuracy
    assert "650 / 138,890" in probe and "70.50 ± 0.71%" in probe
    assert "8,842 / 138,890" in lora and "2.0 min (2.0/2.0; 2/2 thr)" in lora
    assert "seed=S`" in scratch and "| 0, 1 |" in scratch


def test_verdicts_compare_each_variant_with_scratch_seed_by_seed(tmp_path: Path) -> None:
    page = results.render(campaign(tmp_path), [])
    verdicts = [line for line in page.splitlines() if line.startswith("- VisionTransformer")]
    assert verdicts == [
        "- VisionTransformer on fashion_mnist, full fine-tune vs from scratch: +0.40 points (seeds 0, 1: +0.50/+0.30): "
        "better on every seed",
        "- VisionTransformer on fashion_mnist, linear probe vs from scratch: -17.70 points (seeds 0, 1: -18.00/-17.40): "
        "worse on every seed",
        "- VisionTransformer on fashion_mnist, LoRA r=8 on q,v + head vs from scratch: -0.10 points "
        "(seeds 0, 1: +0.30/-0.50): no consistent difference",
    ]


def test_without_transfer_runs_the_page_has_no_transfer_section(tmp_path: Path) -> None:
    run = make_run(tmp_path / "mnist", seed=0, accuracy=0.99, config={})
    assert "## Transfer" not in results.render([results.read_run(run)], [])


def test_run_transfer_trains_each_source_then_its_variants_with_the_same_seeds(tmp_path: Path) -> None:
    """A fake python records each command instead of training (the campaign's order and overrides)."""
    (tmp_path / "scripts").mkdir()
    for name in ("run_transfer.sh", "campaign_lib.sh"):
        (tmp_path / "scripts" / name).write_text((ROOT / "scripts" / name).read_text())
    fake_python = tmp_path / "fake_python"
    fake_python.write_text(f'#!/bin/sh\necho "$@" >> {tmp_path / "commands.log"}\n')
    fake_python.chmod(0o755)
    env = {**os.environ, "PYTHON": str(fake_python), "TRANSFER_STAMP": "t", "SEEDS": "0 1", "VIT_SOURCE_EPOCHS": "4"}
    done = subprocess.run(
        ["bash", str(tmp_path / "scripts" / "run_transfer.sh"), "--wait"], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    runs = [line.split() for line in (tmp_path / "commands.log").read_text().splitlines() if "train.py" in line]
    source = {"cnn": "outputs/train/transfer-t/cnn-source-seed0", "vit": "outputs/train/transfer-t/vit-source-seed0"}
    shown = [" ".join(word for word in run[1:] if not word.startswith("hydra.run.dir=")) for run in runs]
    assert shown[0] == "experiment=cnn_fast data.source=full seed=0"
    assert shown[7] == "model=transformer data.source=full trainer.max_epochs=4 seed=0"
    assert shown[1:7] == [
        "experiment=cnn_fast data=fashion_mnist trainer.max_epochs=3 seed=0",
        f"experiment=cnn_fast data=fashion_mnist trainer.max_epochs=3 init_from={source['cnn']} seed=0",
        f"experiment=cnn_fast data=fashion_mnist trainer.max_epochs=3 init_from={source['cnn']} finetune.train_roles=[head] seed=0",
        "experiment=cnn_fast data=fashion_mnist trainer.max_epochs=3 seed=1",
        f"experiment=cnn_fast data=fashion_mnist trainer.max_epochs=3 init_from={source['cnn']} seed=1",
        f"experiment=cnn_fast data=fashion_mnist trainer.max_epochs=3 init_from={source['cnn']} finetune.train_roles=[head] seed=1",
    ]
    lora = f"init_from={source['vit']} adapter=lora adapter.rank=8 adapter.alpha=16 adapter.roles=[q,v]"
    assert shown[8:12] == [
        "model=transformer data=fashion_mnist trainer.max_epochs=3 seed=0",
        f"model=transformer data=fashion_mnist trainer.max_epochs=3 init_from={source['vit']} seed=0",
        f"model=transformer data=fashion_mnist trainer.max_epochs=3 init_from={source['vit']} finetune.train_roles=[head] seed=0",
        f"model=transformer data=fashion_mnist trainer.max_epochs=3 {lora} seed=0",
    ]
    assert len(shown) == 16
    results = [line for line in (tmp_path / "commands.log").read_text().splitlines() if "results.py" in line]
    assert results[-1].endswith("--readme README.md --transfer docs/finetune.md")


def test_transfer_option_fills_the_block_of_a_page_and_keeps_the_rest(tmp_path: Path) -> None:
    runs = campaign(tmp_path / "runs")
    page = tmp_path / "finetune.md"
    page.write_text("# Fine-tuning\n\nbefore\n<!-- transfer:start -->\nold\n<!-- transfer:end -->\nafter\n")
    paths = [str(run.path) for run in runs]
    assert results.main([*paths, "--out", str(tmp_path / "results.md"), "--transfer", str(page)]) == 0
    table = "\n".join(transfer.body(runs))
    assert "| VisionTransformer | linear probe |" in table
    assert page.read_text() == (
        f"# Fine-tuning\n\nbefore\n<!-- transfer:start -->\n{table}\n<!-- transfer:end -->\nafter\n"
    )


def test_the_finetune_page_holds_a_transfer_block() -> None:
    text = (ROOT / "docs" / "finetune.md").read_text()
    assert text.count("<!-- transfer:start -->") == 1 and text.count("<!-- transfer:end -->") == 1
