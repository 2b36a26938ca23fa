"""scripts/results.py (dev.reports.results) on generated run directories: one row per recipe, mean ± std over seeds, commands."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dev.reports import results
from helpers import ROOT


def make_run(
    path: Path, overrides: list[str] | None, metrics: dict, *, seed: int | None = 0, hydra: bool = True
) -> Path:
    """A run directory as scripts/train.py leaves it: metrics.json, config.yaml, .hydra/overrides.yaml."""
    path.mkdir(parents=True)
    base = {
        "model": "MLP",
        "task": "Classifier",
        "data_source": "mnist",
        "num_parameters": 1_863_690,
        "epochs": 100,
        "wall_time_s": 1800.0,
        "seed": seed,
    }
    (path / "metrics.json").write_text(json.dumps({**base, **metrics}))
    (path / "config.yaml").write_text(yaml.safe_dump({"seed": seed, "trainer": {"max_epochs": 100}}))
    if overrides is not None:
        (path / ".hydra").mkdir()
        (path / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    return path


def test_seeds_of_one_recipe_make_one_row_with_mean_and_std(tmp_path: Path) -> None:
    for seed, accuracy in zip((0, 1, 2), (0.9890, 0.9900, 0.9910)):
        make_run(
            tmp_path / f"mlp{seed}",
            ["experiment=mlp_mnist", f"seed={seed}", f"hydra.run.dir=x/{seed}"],
            {"test/acc": accuracy},
            seed=seed,
        )
    make_run(tmp_path / "cnn", ["experiment=cnn_mnist"], {"test/acc": 0.9961, "num_parameters": 101_000})
    out = tmp_path / "results.md"
    assert results.main([str(p) for p in tmp_path.iterdir()] + ["--out", str(out)]) == 0
    rows = [line for line in out.read_text().splitlines() if line.startswith("| `")]
    assert len(rows) == 2
    cnn, mlp = rows
    assert "99.00 ± 0.10% (test accuracy)" in mlp  # mean 99.00, sample std 0.10
    assert "| 0, 1, 2 |" in mlp and "`python scripts/train.py experiment=mlp_mnist seed=S`" in mlp
    assert "hydra.run.dir" not in mlp and "1,863,690" in mlp and "30.0 min (30.0/30.0/30.0)" in mlp and "≥ 98.9%" in mlp
    assert "99.61% (test accuracy)" in cnn and "`python scripts/train.py experiment=cnn_mnist`" in cnn
    assert "LeNet-5" in cnn and "101,000" in cnn


def test_different_overrides_are_different_rows_and_lower_is_better_metrics_show(tmp_path: Path) -> None:
    make_run(tmp_path / "a", ["experiment=autoencoder_mnist", "seed=0"], {"test/sse_per_image": 4.5})
    make_run(
        tmp_path / "b",
        ["experiment=autoencoder_mnist", "seed=1", "trainer.max_epochs=400"],
        {"test/sse_per_image": 3.1},
        seed=1,
    )
    text = results.render([results.read_run(tmp_path / name) for name in ("a", "b")], [])
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    assert len(rows) == 2
    assert "4.50 (test squared error per image)" in rows[0] and "seed=0`" in rows[0]
    assert "3.10 (test squared error per image)" in rows[1] and "trainer.max_epochs=400 seed=1`" in rows[1]


def test_sample_runs_are_not_mixed_with_full_mnist_runs(tmp_path: Path) -> None:
    make_run(tmp_path / "full", ["model=transformer"], {"test/acc": 0.98})
    make_run(tmp_path / "sample", ["model=transformer"], {"test/acc": 0.95, "data_source": "mnist_sample"})
    text = results.render([results.read_run(tmp_path / n) for n in ("full", "sample")], [])
    rows = [line for line in text.splitlines() if line.startswith("| `transformer`")]
    assert len(rows) == 2 and "| mnist |" in rows[0] and "| mnist_sample |" in rows[1]


def test_unfinished_runs_are_skipped_and_missing_overrides_said(tmp_path: Path) -> None:
    (tmp_path / "unfinished" / "checkpoints").mkdir(parents=True)
    make_run(tmp_path / "composed", None, {"test/acc": 0.97})
    out = tmp_path / "results.md"
    results.main([str(tmp_path / "unfinished"), str(tmp_path / "composed"), "--out", str(out)])
    text = out.read_text()
    assert "(unknown: no .hydra/overrides.yaml)" in text and "97.00%" in text
    assert "Skipped (no `metrics.json`: unfinished or failed): " in text and "unfinished`" in text


def test_zero_runs_says_so_and_lists_the_targets(tmp_path: Path) -> None:
    out = tmp_path / "results.md"
    completed = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "results.py"), "--out", str(out)],
        check=False,
        capture_output=True,
        text=True,
    )
    assert completed.returncode == 0, completed.stderr
    text = out.read_text()
    assert "No finished runs yet" in text and "| `cnn_mnist` | ≥ 99.6% |" in text


def test_without_out_the_page_goes_to_stdout_and_docs_results_md_is_left_alone(tmp_path, capsys) -> None:
    """Summarising one's own runs must not write over the project's page: only --out names a file."""
    page = ROOT / "docs" / "results.md"
    before = page.read_bytes()
    make_run(tmp_path / "mine", ["model=mlp", "optimizer.lr=0.1"], {"test/acc": 0.5})
    try:
        assert results.main([str(tmp_path / "mine")]) == 0
        after = page.read_bytes()
    finally:
        page.write_bytes(before)  # in case it was overwritten
    assert after == before and [p.name for p in tmp_path.iterdir()] == ["mine"]
    captured = capsys.readouterr()
    assert (
        captured.out.startswith("# Results\n")
        and "`python scripts/train.py model=mlp optimizer.lr=0.1`" in captured.out
    )
    assert captured.err == "stdout: 1 runs in 1 rows, 0 skipped\n"


@pytest.mark.parametrize("values, shown", [([99.5], "99.50"), ([1.0, 2.0, 3.0], "2.00 ± 1.00")])
def test_mean_and_spread(values: list[float], shown: str) -> None:
    assert results.mean_and_spread(values) == shown


def test_readme_block_gets_the_short_table(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# x\n\n<!-- results:start -->\nold\n<!-- results:end -->\n\nafter\n")
    make_run(tmp_path / "runs" / "cnn", ["experiment=cnn_mnist"], {"test/acc": 0.9961})
    results.main([str(tmp_path / "runs" / "cnn"), "--out", str(tmp_path / "r.md"), "--readme", str(readme)])
    text = readme.read_text()
    assert "old" not in text and text.endswith("<!-- results:end -->\n\nafter\n")
    assert (
        "| `cnn_mnist` | 99.61% (test accuracy) | ≥ 99.6% | 30.0 min | mnist | `python scripts/train.py experiment=cnn_mnist` |"
        in text
    )
    with pytest.raises(ValueError, match="no <!-- results:start -->"):
        results.update_readme(tmp_path / "r.md", [])


def test_wall_time_says_how_many_torch_threads_each_run_had(tmp_path: Path) -> None:
    make_run(tmp_path / "old", ["experiment=mlp_mnist", "seed=0"], {"test/acc": 0.99})  # before torch_threads
    for seed in (1, 2):
        make_run(
            tmp_path / f"s{seed}",
            ["experiment=mlp_mnist", f"seed={seed}"],
            {"test/acc": 0.99, "torch_threads": 1, "wall_time_s": 2400.0},
            seed=seed,
        )
    make_run(tmp_path / "cnn", ["experiment=cnn_mnist"], {"test/acc": 0.996})
    text = results.render([results.read_run(tmp_path / n) for n in ("old", "s1", "s2", "cnn")], [])
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    mlp, cnn = rows  # in the order given
    assert "| 36.7 min (30.0/40.0/40.0; ?/1/1 thr) |" in mlp  # mean of 30, 40, 40 min, then each run's
    assert "| 30.0 min |" in cnn  # no run of the group recorded it: no thread count shown


def test_the_same_command_with_a_changed_recipe_is_another_row_marked_by_its_config(tmp_path: Path) -> None:
    """Seeds and output directories do not split a row; a changed recipe config does."""
    for seed in (0, 1):
        run = make_run(
            tmp_path / f"old{seed}", ["experiment=cnn_mnist", f"seed={seed}"], {"test/acc": 0.995}, seed=seed
        )
        config = {"seed": seed, "trainer": {"max_epochs": 30}, "paths": {"output_dir": str(run)}}
        config["callbacks"] = {"model_checkpoint": {"dirpath": f"{run}/checkpoints"}}
        (run / "config.yaml").write_text(yaml.safe_dump(config))
    new = make_run(tmp_path / "new", ["experiment=cnn_mnist", "seed=0"], {"test/acc": 0.997})
    (new / "config.yaml").write_text(yaml.safe_dump({"seed": 0, "trainer": {"max_epochs": 45}}))
    runs = [results.read_run(tmp_path / name) for name in ("old0", "old1", "new")]
    rows = [line for line in results.render(runs, []).splitlines() if line.startswith("| `")]
    assert len(rows) == 2
    old_digest, new_digest = runs[0].config_digest, runs[2].config_digest
    assert runs[1].config_digest == old_digest != new_digest
    assert rows[0].startswith(f"| `cnn_mnist` (config {old_digest}) | 99.50 ± 0.00%")
    assert rows[1].startswith(f"| `cnn_mnist` (config {new_digest}) | 99.70%")


def test_a_setting_added_later_at_its_old_behaviour_does_not_split_a_row(tmp_path: Path) -> None:
    """data.affine_* appeared on 2026-11-30 with the values every earlier run used implicitly
    (MNISTDataModule's keyword defaults)."""
    data = {"_target_": "linzoo.data.MNISTDataModule", "augment": "affine"}
    configs = {
        "before": {"data": data},
        "after": {"data": {**data, "affine_degrees": 10.0, "affine_scale": [0.9, 1.1]}},
        "milder": {"data": {**data, "affine_degrees": 5.0, "affine_scale": [0.9, 1.1]}},
    }
    for name, config in configs.items():
        run = make_run(tmp_path / name, ["experiment=transformer_mnist"], {"test/acc": 0.992})
        (run / "config.yaml").write_text(yaml.safe_dump({"seed": 0, **config}))
    before, after, milder = (results.read_run(tmp_path / name) for name in configs)
    assert before.config_digest == after.config_digest != milder.config_digest
    rows = [line for line in results.render([before, after, milder], []).splitlines() if line.startswith("| `")]
    assert len(rows) == 2


def test_a_rerun_of_a_seed_counts_once_and_is_listed_with_both_results(tmp_path: Path) -> None:
    made = {
        "seed0": (0, 0.990, "2026-11-30T10:00:00+00:00"),
        "seed1": (1, 0.980, "2026-11-30T10:00:00+00:00"),
        "seed0-again": (0, 0.994, "2026-11-30T15:00:00+00:00"),
    }
    for name, (seed, acc, ended) in made.items():
        make_run(tmp_path / name, ["model=mlp", f"seed={seed}"], {"test/acc": acc, "ended_at": ended}, seed=seed)
    runs = [results.read_run(tmp_path / name) for name in made]
    page = results.render(runs, [])
    rows = [line for line in page.splitlines() if line.startswith("| `")]
    assert len(rows) == 1 and rows[0].startswith("| `mlp` | 98.70 ± 0.99%")  # seeds 1 and (latest) 0
    assert "| 0, 1 |" in rows[0]
    reruns = [line for line in page.splitlines() if line.startswith("- `")]
    assert reruns == [
        "- `python scripts/train.py model=mlp seed=0` (mnist): 99.00% (2026-11-30 10:00, ? thr), "
        "99.40% (2026-11-30 15:00, ? thr)"
    ]
    assert "Reruns" not in results.render(runs[:2], [])


def test_keep_in_copies_each_record_and_builds_the_table_from_the_copies(tmp_path: Path) -> None:
    run = make_run(
        tmp_path / "outputs" / "recipes-x" / "cnn_mnist-seed0", ["experiment=cnn_mnist"], {"test/acc": 0.996}
    )
    (run / "csv" / "version_0").mkdir(parents=True)
    (run / "csv" / "version_0" / "metrics.csv").write_text("epoch,val/acc\n0,0.99\n")
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "last.ckpt").write_bytes(b"weights")
    os.utime(run / "metrics.json", (1_700_000_000, 1_700_000_000))  # 2023-11-14 UTC; no ended_at in metrics.json
    keep = tmp_path / "docs" / "runs"
    out = tmp_path / "results.md"
    assert results.main([str(run), "--keep-in", str(keep), "--out", str(out)]) == 0
    kept = keep / "recipes-x" / "cnn_mnist-seed0"
    assert sorted(str(p.relative_to(kept)) for p in kept.rglob("*") if p.is_file()) == [
        ".hydra/overrides.yaml",
        "config.yaml",
        "csv/metrics.csv",
        "metrics.json",
    ]
    assert json.loads((kept / "metrics.json").read_text())["ended_at"] == "2023-11-14T22:13:20+00:00"
    # The table reads the copies: the date survives a copy that loses the file times.
    os.utime(kept / "metrics.json", (0, 0))
    results.main([str(kept), "--out", str(out)])
    assert "| 2023-11-14 |" in out.read_text() and "99.60%" in out.read_text()
    # Keeping the same record again changes nothing; a different one under the same name is refused.
    assert results.main([str(run), "--keep-in", str(keep), "--out", str(out)]) == 0
    (run / "metrics.json").write_text(json.dumps({"test/acc": 0.5, "seed": 0}))
    with pytest.raises(FileExistsError, match="already keeps a different record"):
        results.main([str(run), "--keep-in", str(keep), "--out", str(out)])
    assert json.loads((kept / "metrics.json").read_text())["test/acc"] == 0.996


def test_run_recipes_refuses_an_unknown_set(tmp_path: Path) -> None:
    completed = subprocess.run(
        ["bash", str(ROOT / "scripts" / "run_recipes.sh"), "--wait"],
        env={**os.environ, "SET": "recipe", "PYTHON": "false"},
        check=False,
        capture_output=True,
        text=True,
    )
    assert completed.returncode == 2 and "SET=recipe: expected recipes or defaults" in completed.stderr


def test_run_recipes_only_runs_the_named_recipes_with_every_seed(tmp_path: Path) -> None:
    """ONLY="cnn_mnist mixer_mnist": those recipes (cnn with its three seeds), nothing else; a fake
    python records each command instead of training."""
    (tmp_path / "scripts").mkdir()
    script = tmp_path / "scripts" / "run_recipes.sh"
    script.write_text((ROOT / "scripts" / "run_recipes.sh").read_text())
    (tmp_path / "scripts" / "campaign_lib.sh").write_text((ROOT / "scripts" / "campaign_lib.sh").read_text())
    fake_python = tmp_path / "fake_python"
    fake_python.write_text(f'#!/bin/sh\necho "$@" >> {tmp_path / "commands.log"}\n')
    fake_python.chmod(0o755)
    env = {**os.environ, "PYTHON": str(fake_python), "RECIPES_STAMP": "test", "ONLY": "cnn_mnist mixer_mnist"}
    completed = subprocess.run(["bash", str(script), "--wait"], env=env, capture_output=True, text=True, check=False)
    assert completed.returncode == 0, completed.stderr
    trainings = [line for line in (tmp_path / "commands.log").read_text().splitlines() if "train.py" in line]
    assert sorted(line.split()[1] + " " + line.split()[3] for line in trainings) == [
        "experiment=cnn_mnist seed=0",
        "experiment=cnn_mnist seed=1",
        "experiment=cnn_mnist seed=2",
        "experiment=mixer_mnist seed=0",
    ]
    completed = subprocess.run(
        ["bash", str(script), "--wait"], env={**env, "ONLY": "vit_mnist"}, capture_output=True, text=True, check=False
    )
    assert completed.returncode == 2 and "ONLY=vit_mnist matches none of" in completed.stderr
