"""Fast inference on CPU, backend by backend, for every classifier; writes docs/quantization.md.

    LINZOO_DATA=/path/with/MNIST/raw python scripts/quantization_report.py [--epochs N] [--run MODEL=RUN_DIR ...]

For each classifier: train its recipe (``experiment=<model>_mnist``) for ``--epochs`` on full MNIST
unless ``--run model=RUN_DIR`` gives a finished run, then measure it with the benchmark section
``inference`` (dev/benchmarks/inference.py): every backend's latency at batch 1 and 256 (paired,
interleaved, against torch float32), test accuracy on the 10,000 official test digits and file
size, and the role policies of the int8 path. The numbers in the doc are that run's output.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
from pathlib import Path
from typing import Any

import torch

from dev.benchmarks import inference
from dev.benchmarks.timing import cpu_name
from linzoo.tools.onnx_runtime import OnnxNet

ROOT = Path(__file__).resolve().parents[2]  # the repository, when linzoo is a clone
GOALS = {"mlp": 2.0, "mixer": 2.0, "transformer": 1.3}  # issue 24: speed-up of int8 over fp32 at batch 256


def relative(path: Path) -> str:
    """``path`` relative to the repository when inside it."""
    path = path.resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def backend_table(result: dict[str, Any]) -> list[str]:
    reference = result["backends"][inference.REFERENCE]["accuracy"]
    lines = [
        "| backend | batch 1 ms | vs fp32 | batch 256 ms | vs fp32 | test acc | drop (points) | file MB |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, r in result["backends"].items():
        bold = "**" if name == inference.DEFAULT_INT8 else ""
        lines.append(
            f"| {bold}{name}{bold} | {r['ms_1']:.3f} | x{r['speedup_1']:.2f} | {r['ms_256']:.2f} | x{r['speedup_256']:.2f} "
            f"| {100 * r['accuracy']:.2f} % | {100 * (reference - r['accuracy']):+.2f} | {r['size_mb']:.3f} |"
        )
    return lines


def policy_table(result: dict[str, Any]) -> list[str]:
    reference = result["backends"][inference.REFERENCE]["accuracy"]
    lines = [
        "| policy | int8 Linears | batch 1 ms | vs fp32 | batch 256 ms | vs fp32 | test acc | drop (points) | file MB |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, r in result["policies"].items():
        lines.append(
            f"| {name} | {r['int8_linears']} of {result['linears']} | {r['ms_1']:.3f} | x{r['speedup_1']:.2f} "
            f"| {r['ms_256']:.2f} | x{r['speedup_256']:.2f} | {100 * r['accuracy']:.2f} % "
            f"| {100 * (reference - r['accuracy']):+.2f} | {r['size_mb']:.3f} |"
        )
    return lines


def parts_table(result: dict[str, Any]) -> list[str]:
    lines = ["| split | batch 256 ms | vs fp32 |", "| --- | ---: | ---: |"]
    for name, r in result["parts"].items():
        if name != inference.REFERENCE:
            bold = "**" if name == inference.part_name(OnnxNet.split_from_default) else ""
            lines.append(f"| {bold}{name}{bold} | {r['ms']:.2f} | x{r['speedup']:.2f} |")
    return lines


def fastest(result: dict[str, Any], batch: int, *, within_points: float = 0.3) -> str:
    """The fastest backend at ``batch`` among those within ``within_points`` of fp32's accuracy (the
    ablation row ``inference.EXACT_INT8`` is no path a config picks: left out)."""
    reference = result["backends"][inference.REFERENCE]["accuracy"]
    fine = {
        name: r
        for name, r in result["backends"].items()
        if 100 * (reference - r["accuracy"]) <= within_points and name != inference.EXACT_INT8
    }
    name = max(fine, key=lambda n: fine[n][f"speedup_{batch}"])
    return f"{name} (x{fine[name][f'speedup_{batch}']:.2f})"


def summary(results: dict[str, dict[str, Any]]) -> list[str]:
    """Which path is fastest per model, and how ``quantize=int8`` meets the goals, from the numbers."""
    lines = [
        "| model | fastest at batch 1 (acc. within 0.3 points) | fastest at batch 256 (acc. within 0.3 points) "
        "| `quantize=int8` batch 1 | `quantize=int8` batch 256 | goal at 256 | int8 drop (points) |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for model, result in results.items():
        int8 = result["backends"][inference.DEFAULT_INT8]
        drop = 100 * (result["backends"][inference.REFERENCE]["accuracy"] - int8["accuracy"])
        goal = f"x{GOALS[model]:.1f}" if model in GOALS else "-"
        lines.append(
            f"| {model} | {fastest(result, 1)} | {fastest(result, 256)} | x{int8['speedup_1']:.2f} "
            f"| x{int8['speedup_256']:.2f} | {goal} | {drop:+.2f} |"
        )
    return lines


def write_report(path: Path, results: dict[str, dict[str, Any]], args: argparse.Namespace, command: str) -> None:
    import onnxruntime
    import torchao

    lines = [
        "# Fast inference on CPU: backends and int8",
        "",
        "Generated by `scripts/quantization_report.py` (do not edit by hand); every number below is",
        "that command's own output. Rerun:",
        "",
        "```bash",
        command,
        "```",
        "",
        f"Machine: {cpu_name()} ({os.cpu_count()} cores), {torch.get_num_threads()} thread(s) for torch and "
        f"ONNX Runtime; torch {torch.__version__}, torchao {torchao.__version__}, onnxruntime "
        f"{onnxruntime.__version__}; {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC.",
        "",
        f"Nets: each classifier's recipe (`configs/experiment/<model>_mnist.yaml`) trained for {args.epochs} "
        "epoch(s) on full MNIST, as `python scripts/train.py experiment=<model>_mnist data.source=full trainer=cpu "
        f"trainer.max_epochs={args.epochs}` would (runs: "
        + ", ".join(f"`{relative(Path(r['run']))}`" for r in results.values())
        + "). Short runs: their accuracies are below the recipes' targets; what matters here is the",
        "drop from float32 to each backend.",
        "",
        "How to read the tables: latency is the median of one forward pass in `torch.inference_mode()`,",
        f"every backend timed in turn (ABBA, {args.repeats} rounds, each after {inference.SETTLE_S:g} s idle, so that",
        "no thread pool of the backend before still spins); `vs fp32` is the median of the per-round",
        "speed-ups over torch eager float32 (above 1: faster). glibc's malloc thresholds are fixed first",
        "(`dev/benchmarks/timing.py` `steady_allocator`), which keeps eager torch at its fastest (the fp32",
        "mixer at batch 256 otherwise takes 37 to 65 ms by what the process did before).",
        "Test accuracy: the 10,000 official test digits.",
        "File: `torch.save(state_dict)` for torch backends (compile and autocast keep the float32 file),",
        "the `.onnx` file for ONNX Runtime.",
        "",
        "- **ORT int8 dynamic** is what `quantize=int8` runs (`export.py quantize=int8` writes it as",
        "  `model-int8.onnx`; `eval.py`/`predict.py quantize=int8` run it): `quant_pre_process`, then",
        "  `quantize_dynamic` of the factory Linears' MatMul/Gemm nodes only (int8 weights per output",
        "  channel, 7 bits so that no x86 CPU saturates, uint8 activations quantized at run time, before",
        "  the Transpose/Reshape in front of a Linear, which then moves uint8);",
        "  convolutions and attention's own matmuls stay float32. ONNX Runtime rows cut a batch of",
        f"  {OnnxNet.split_from_default} or more into parts of about {OnnxNet.split_from_default} images, "
        "each thread running its share on its own session (`OnnxNet`'s `split_from`);",
        "  **ORT int8 dynamic, one call** runs the same file as one call whose ops share the threads.",
        "  `quantize=int8` computes GELU in its tanh form (at most 4.7e-4 from the exact one, far below",
        "  the uint8 step), and its sessions leave out ONNX Runtime's `SkipLayerNormFusion` (slower at",
        "  width 64); **ORT int8 dynamic, exact GELU, fused SkipLayerNorm** is the same file without both.",
        "- **ORT int8 static**: the same Linears, QDQ format, activation ranges calibrated (MinMax) on",
        "  1,024 training images.",
        "- **torchao int8 dynamic** is `quantize=int8 backend=torch` (`Int8DynamicActivationInt8WeightConfig`);",
        "  weight-only is `Int8WeightOnlyConfig`; `+ compile`: `torch.compile` (inductor, with",
        "  `torch._inductor.config.freezing = True`, which inductor's CPU int8 and mkldnn paths need) of that net.",
        "",
        "## Which path is fastest",
        "",
        *summary(results),
        "",
    ]
    for model, result in results.items():
        lines += [
            f"## {model} ({result['params']:,} parameters, {result['linears']} factory Linears)",
            "",
            *backend_table(result),
            "",
            "Role policies of `quantize=int8` (ONNX Runtime int8 dynamic), e.g. "
            "`quantize=int8 quantize.roles.head=none quantize.roles.patch=none`:",
            "",
            *policy_table(result),
            "",
            "The same int8 file at batch 256, cut into parts of about N images, `threads` parts at a time",
            "(`OnnxNet(split_from=N)`; bold: the default), or run as one call:",
            "",
            *parts_table(result),
            "",
        ]
    lines += [
        "The machine may be shared: latencies move between runs (repeat the command to see how much);",
        "the ratios, taken pairwise round by round, move less.",
        "",
    ]
    path.write_text("\n".join(lines))
    print(f"Wrote {path}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(inference.MODELS))
    parser.add_argument("--epochs", type=int, default=1, help="training epochs of each recipe's short run")
    parser.add_argument(
        "--run",
        action="append",
        default=[],
        metavar="MODEL=RUN_DIR",
        help="measure a run trained before (say its epochs with --epochs) instead of training again",
    )
    parser.add_argument("--threads", type=int, default=1, help="torch and ONNX Runtime threads")
    parser.add_argument("--repeats", type=int, default=7, help="timed rounds per batch size")
    parser.add_argument("--compile-backend", default="inductor", help="torch.compile backend (none: skip compile)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "quantization.md")
    parser.add_argument("--json", type=Path, default=None, help="also write the raw results here")
    parser.add_argument("--runs-dir", type=Path, default=ROOT / "outputs" / "quantization")
    args = parser.parse_args(argv)
    data_root = os.environ.get("LINZOO_DATA")
    if not data_root:
        parser.error("set LINZOO_DATA to a folder with MNIST/raw (full MNIST is needed for the test accuracy).")
    runs = inference.trained_runs(
        args.models, given=inference.parse_runs(args.run), epochs=args.epochs, runs_dir=args.runs_dir, data_root=None
    )
    torch.set_num_threads(args.threads)
    results = inference.run_all(
        models=args.models,
        runs=runs,
        data_root=None,
        repeats=args.repeats,
        compile_backend=args.compile_backend,
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    command = (
        "LINZOO_DATA=/path/with/MNIST/raw python scripts/quantization_report.py"
        + (f" --epochs {args.epochs}" if args.epochs != 1 else "")
        + (f" --threads {args.threads}" if args.threads != 1 else "")
        + (f" --repeats {args.repeats}" if args.repeats != 7 else "")
        + (f" --models {' '.join(args.models)}" if args.models != list(inference.MODELS) else "")
    )
    write_report(args.out, results, args, command)
