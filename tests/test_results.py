"""scripts/results.py (linzoo.reports.results) on generated run directories: one row per recipe, mean ± std over seeds, commands."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from helpers import ROOT
from linzoo.reports import results


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
