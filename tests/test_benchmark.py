"""Smoke test of scripts/benchmark.py: every section runs at tiny size on generated data and writes valid JSON.

It checks that the benchmarks keep working and that their JSON is consistent with its own
samples, not the timings (those are machine noise at this size; docs/benchmarks.md has the
real numbers and the commands behind them).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dev.benchmarks.compare import rows
from dev.benchmarks.reference import ReferenceLoop
from dev.benchmarks.timing import paired_ratio
from helpers import ROOT

SECTIONS = ["overhead", "linear", "data", "compile", "gpu", "generation", "augment", "startup"]


@pytest.mark.slow
def test_benchmark_script_runs_every_section_at_tiny_size(fake_mnist_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    command = [
        sys.executable,
        str(ROOT / "scripts" / "benchmark.py"),
        "--tiny",
        "--repeats",
        "2",
        "--sections",
        ",".join(SECTIONS),
        "--data-root",
        str(fake_mnist_root),
        "--out",
        str(out),
        "--markdown",
        str(tmp_path / "tables.md"),
    ]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    results = json.loads(out.read_text())
    assert set(SECTIONS) <= set(results)
    assert results["environment"]["torch"] and results["environment"]["lightning"]
    overhead = results["overhead"]
    assert set(overhead) == {"linzoo", "linzoo_on_device", "linzoo_no_callbacks", "bare_lightning", "linzoo_over_bare"}
    for name, variant in overhead.items():
        if name == "linzoo_over_bare":
            continue
        assert len(variant["linzoo_train_s"]) == len(variant["hand_train_s"]) == 2  # the warm-up epoch dropped
        assert variant["ratio_train"] == pytest.approx(paired_ratio(variant["linzoo_train_s"], variant["hand_train_s"]))
        assert variant["data_source"] == "mnist"
        hand, lightning = variant["final_metrics"]["hand"], variant["final_metrics"]["lightning"]
        assert 0 <= hand["train/acc"] <= 1 and math.isfinite(hand["train/loss"])
        if name != "bare_lightning":  # both sides validated: the same metric names
            assert {"train/loss", "train/acc", "val/loss", "val/acc"} <= set(hand) & set(lightning)
    assert overhead["linzoo_over_bare"] == pytest.approx(
        overhead["linzoo"]["ratio_train"] / overhead["bare_lightning"]["ratio_train"]
    )
    (row,) = rows([out])  # python -m dev.benchmarks.compare reads the same file
    assert row[0] == "bench" and row[3] == pytest.approx(overhead["linzoo_over_bare"])
    for row in results["linear"].values():
        assert row["calls_per_sample"] >= 1 and math.isfinite(row["ratio"])
    assert results["data"]["examples"] == 800  # 1,000 fake training images less 200 for validation
    assert {"eager 32-true", "compile bf16-mixed"} <= set(results["compile"]["transformer"])
    gpu = results["gpu"]
    for model, experiment in (("cnn", "cnn_mnist"), ("mlp", "mlp_mnist")):
        run = gpu[f"{model}_time_to_accuracy"]
        assert run["experiment"] == experiment and run["epochs_run"] == len(run["curve"]) <= run["max_epochs"]
    assert math.isfinite(gpu["linear_bf16"]["matmul_tflops"])
    generation = results["generation"]
    assert generation["same_tokens"] is True  # preallocated, grown and no cache: the same samples
    assert generation["cache, preallocated"]["time_vs_preallocated"] == 1.0
    augment = results["augment"]
    assert set(augment["ratio"]) == {"none", "affine", "crop"} and augment["ratio"]["none"] == 1.0
    assert all(math.isfinite(ratio) for ratio in augment["ratio"].values()) and augment["examples"] == 800
    startup = results["startup"]
    assert set(startup["median_s"]) == {
        "python -c pass",
        "python -c 'import torch'",
        "scripts/predict.py, one image",
        "predict_checkpoint, warm",
        "forward, batch 1",
        "forward, batch 256",
    }
    assert startup["command_s"] == startup["median_s"]["scripts/predict.py, one image"] > 0
    assert set(startup["cpu_s"]) == {"python -c pass", "python -c 'import torch'", "scripts/predict.py, one image"}
    assert all(seconds > 0 for seconds in startup["cpu_s"].values())
    assert startup["startup_s"] == pytest.approx(startup["command_s"] - startup["median_s"]["predict_checkpoint, warm"])
    tables = (tmp_path / "tables.md").read_text()
    for number in range(1, len(SECTIONS) + 1):  # every section printed its table, and --markdown kept it
        assert f"## {number}." in done.stdout and f"## {number}." in tables
    assert "## 1b." in tables and "--tiny" in tables.splitlines()[0]  # the command heads the file


def test_benchmark_rejects_an_unknown_section(tmp_path: Path) -> None:
    command = [sys.executable, str(ROOT / "scripts" / "benchmark.py"), "--sections", "overhead,warp", "--out", "x.json"]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "unknown section" in done.stderr
    assert not (tmp_path / "x.json").exists()


def test_reference_loop_trains_and_tracks_what_it_saw() -> None:
    import torch

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
    images = torch.randn(64, 1, 2, 2)
    labels = (images.flatten(1).sum(1) > 0).long()
    loop = ReferenceLoop(net, torch.optim.SGD(net.parameters(), lr=0.5), track=True)
    before = loop.evaluate([(images, labels)])
    for _ in range(20):
        loop.train_epoch([(images[:32], labels[:32]), (images[32:], labels[32:])])
    after = loop.evaluate([(images, labels)])
    assert after["loss"] < before["loss"] and after["acc"] >= 0.9
    tracked = loop.epoch_metrics()  # the last epoch's two batches, weighted by size
    assert tracked["train/acc"] >= 0.9 and tracked["train/loss"] < before["loss"]


@pytest.mark.slow
def test_inference_section_measures_every_backend_and_policy(tmp_path: Path) -> None:
    """Section inference on a tiny random transformer and generated digits (the real run needs full
    MNIST and trained recipes: scripts/quantization_report.py)."""
    import torch

    import linzoo
    from dev.benchmarks import inference

    torch.manual_seed(0)
    net = linzoo.create_model("transformer", dim=16, depth=1, num_heads=2, patch_size=7).eval()
    images, labels = torch.rand(300, 1, 28, 28), torch.randint(0, 10, (300,))
    result = inference.measure_model(
        net, test=(images, labels), calibration=images[:128], repeats=1, compile_backend="none", target_s=0.001
    )
    backends = result["backends"]
    assert {inference.REFERENCE, inference.DEFAULT_INT8, "ORT int8 static", "torchao int8 weight-only"} <= set(backends)
    assert backends[inference.REFERENCE]["speedup_256"] == 1.0
    for r in backends.values():
        assert r["ms_1"] > 0 and r["ms_256"] > 0 and 0 <= r["accuracy"] <= 1 and r["size_mb"] > 0
    # torch and ONNX Runtime float32 are the same function: the same predictions (one may flip on a tie)
    assert backends["ORT fp32"]["accuracy"] == pytest.approx(backends[inference.REFERENCE]["accuracy"], abs=0.004)
    assert list(result["policies"]) == list(inference.POLICIES)  # the ViT has heads and a patch embedding
    assert [p["int8_linears"] for p in result["policies"].values()] == [8, 7, 6]
    assert inference.EXACT_INT8 in backends  # quantize=int8 without its GELU/LayerNorm speed-ups
    assert list(result["parts"]) == [inference.REFERENCE, *map(inference.part_name, inference.PARTS)]
    assert all(r["ms"] > 0 for r in result["parts"].values()) and result["parts"][inference.REFERENCE]["speedup"] == 1
    from dev.reports import quantization  # docs/quantization.md from these numbers

    result["run"] = str(tmp_path)
    doc = tmp_path / "quantization.md"
    quantization.write_report(doc, {"transformer": result}, argparse.Namespace(epochs=1, repeats=1), "(command)")
    text = doc.read_text()
    assert "| **parts of about 32** |" in text and "| one call |" in text  # the default in bold
    fastest_cells = [line.split(" | ")[1:3] for line in text.splitlines() if line.startswith("| transformer |")]
    assert fastest_cells and not any(inference.EXACT_INT8 in cell for cell in fastest_cells[0])


def test_time_to_99_section_runs_the_three_contenders_at_tiny_size(fake_mnist_root: Path, tmp_path: Path) -> None:
    out, tables = tmp_path / "ttt.json", tmp_path / "ttt.md"
    command = [
        *(sys.executable, str(ROOT / "scripts" / "benchmark.py"), "--tiny", "--sections", "time_to_99"),
        *("--seeds", "3,4", "--data-root", str(fake_mnist_root), "--out", str(out), "--markdown", str(tables)),
    ]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    result = json.loads(out.read_text())["time_to_99"]
    assert result["experiment"] == "cnn_fast" and result["seeds"] == [3, 4]
    for name in ("peer", "linzoo", "hand"):
        runs = result[name]["runs"]
        assert [run["seed"] for run in runs] == [3, 4]
        assert all(0 <= run["test_acc"] <= 1 and run["seconds"] > 0 for run in runs)  # tiny target: 0%
        assert result[name]["mean_seconds"] == pytest.approx(sum(run["seconds"] for run in runs) / 2)
    assert all(run["epochs"] == 1 for run in result["peer"]["runs"])
    linzoo, hand = result["linzoo"]["runs"], result["hand"]["runs"]
    expected = sorted(a["seconds"] / b["seconds"] for a, b in zip(linzoo, hand, strict=True))
    assert result["linzoo_over_hand"] == pytest.approx(sum(expected) / 2)  # median of two
    variants = result["steps"]["variants"]
    assert list(variants) == ["float32", "bf16", "float32 channels_last", "bf16 channels_last"]
    assert variants["float32"]["time_vs_float32"] == 1.0 and all(v["ms_per_step"] > 0 for v in variants.values())
    markdown = tables.read_text()
    assert "## 9b. A training step" in markdown
    assert "## 9. Time to 0%" in markdown and "--sections time_to_99" in markdown.splitlines()[0]


def test_time_to_99_ratios_and_summary_count_only_runs_that_reached_the_target() -> None:
    from dev.benchmarks.time_to_99 import fmt_seconds, ratio, summary

    fast = [
        {"seconds": 10.0, "test_acc": 0.991},
        {"seconds": 12.0, "test_acc": 0.993},
        {"seconds": 11.0, "test_acc": 0.99},
    ]
    slow = [
        {"seconds": 100.0, "test_acc": 0.99},
        {"seconds": 96.0, "test_acc": 0.99},
        {"seconds": None, "test_acc": 0.98},
    ]
    assert ratio(slow[:2], fast[:2]) == pytest.approx((10.0 + 8.0) / 2)
    assert ratio(slow, fast) is None  # a seed that missed the target has no time
    assert summary(fast) == {"mean_test_acc": pytest.approx(0.99133, abs=1e-5), "mean_seconds": 11.0, "reached": 3}
    assert summary(slow)["mean_seconds"] is None and summary(slow)["reached"] == 2
    missed = {"seconds": None, "test_acc": 0.9846, "epochs": 1, "curve": [{"epoch": 1, "s": 45.25, "test_acc": 0.9846}]}
    assert fmt_seconds(missed) == "not reached (98.46% after 1 ep., 45.2 s)"
    assert fmt_seconds({"seconds": 20.0, "test_acc": 0.9921, "epochs": 1}) == "20.0 s (99.21%, 1 ep.)"


def test_peer_net_is_the_pytorch_examples_net() -> None:
    import torch

    from dev.benchmarks.time_to_99 import PeerNet

    net = PeerNet()
    assert sum(p.numel() for p in net.parameters()) == 1_199_882  # examples/mnist/main.py's Net
    log_probs = net.eval()(torch.rand(2, 1, 28, 28))
    assert log_probs.shape == (2, 10) and torch.allclose(log_probs.exp().sum(1), torch.ones(2))


@pytest.mark.skipif(sys.platform != "linux", reason="glibc's mallopt")
def test_steady_allocator_stops_the_page_faults_of_an_eager_forward() -> None:
    """The default mixer's eager forward at batch 256 gets fresh pages from the kernel on every call
    (glibc maps its big blocks anew); after steady_allocator, it reuses the heap: no page faults."""
    code = (
        "import resource, sys, torch, linzoo\n"
        "from dev.benchmarks.timing import steady_allocator\n"
        "if sys.argv[1] == 'steady':\n"
        "    assert steady_allocator()\n"
        "net, images = linzoo.create_model('mixer').eval(), torch.rand(256, 1, 28, 28)\n"
        "with torch.inference_mode():\n"
        "    for _ in range(2): net(images)\n"
        "    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
        "    for _ in range(3): net(images)\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)\n"
    )
    faults = {}
    for mode in ("steady", "default"):
        command = [sys.executable, "-c", code, mode]
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300, check=True)
        faults[mode] = int(done.stdout.split()[-1])
    assert 5 * faults["steady"] < faults["default"] and faults["default"] > 1000, (
        faults
    )  # 2 threads: a few in a new arena


def test_interleaved_idles_before_each_timed_call(monkeypatch) -> None:
    """settle_s: a pause before every call (warm-up included), in ABBA order; none by default."""
    from dev.benchmarks import timing

    events: list[str] = []
    monkeypatch.setattr(timing.time, "sleep", lambda seconds: events.append(f"sleep {seconds}"))
    contenders = {"a": lambda: events.append("a"), "b": lambda: events.append("b")}
    times = timing.interleaved(contenders, repeats=2, settle_s=0.1)
    assert events == [event for name in "abbaab" for event in ("sleep 0.1", name)]  # warm-up round, then 2
    assert [len(values) for values in times.values()] == [2, 2]
    events.clear()
    timing.interleaved(contenders, repeats=1)
    assert events == ["a", "b", "b", "a"]
