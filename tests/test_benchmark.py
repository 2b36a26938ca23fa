"""Smoke test of scripts/benchmark.py: every section runs at tiny size and writes valid JSON.

It checks that the script keeps working, not the timings (those are machine noise at
this size; docs/benchmarks.md has the real numbers and the commands behind them).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = ["overhead", "linear", "data", "compile", "gpu"]


@pytest.mark.slow
def test_benchmark_script_runs_every_section_at_tiny_size(fake_mnist_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    command = [
        sys.executable, str(ROOT / "scripts" / "benchmark.py"), "--tiny", "--repeats", "1",
        "--sections", ",".join(SECTIONS), "--data-root", str(fake_mnist_root), "--out", str(out),
    ]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    results = json.loads(out.read_text())
    assert set(SECTIONS) <= set(results)
    assert results["environment"]["torch"] and results["environment"]["lightning"]
    for variant in results["overhead"].values():
        assert variant["ratio_train"] > 0 and variant["data_source"] == "mnist"
        assert set(variant["final_metrics"]["hand"]) >= {"train/loss", "train/acc"}
    assert all(row["ratio"] > 0 for row in results["linear"].values())
    assert results["data"]["iteration_ratio"] > 0
    assert {"eager 32-true", "compile bf16-mixed"} <= set(results["compile"]["transformer"])
    gpu = results["gpu"]
    assert {"cnn_time_to_accuracy", "mlp_time_to_accuracy", "transformer_images_per_s", "linear_bf16"} <= set(gpu)
    assert gpu["linear_bf16"]["matmul_tflops"] > 0
    for section in SECTIONS:  # every section printed its table
        assert f"## {SECTIONS.index(section) + 1}." in done.stdout


def test_benchmark_rejects_an_unknown_section(tmp_path: Path) -> None:
    command = [sys.executable, str(ROOT / "scripts" / "benchmark.py"), "--sections", "overhead,warp", "--out", "x.json"]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "unknown section" in done.stderr
    assert not (tmp_path / "x.json").exists()
