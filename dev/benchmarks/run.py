"""The benchmark command line: pick sections, run them, print their tables, write one JSON file."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from dev.benchmarks import augment, data, generation, gpu, inference, linear, overhead, startup, time_to_99
from dev.benchmarks import compile as compile_section
from dev.benchmarks.timing import TABLES, environment

SECTIONS: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "overhead": overhead.section,
    "linear": linear.section,
    "data": data.section,
    "compile": compile_section.section,
    "gpu": gpu.section,
    "generation": generation.section,
    "augment": augment.section,
    "startup": startup.section,
    "inference": inference.section,
    "time_to_99": time_to_99.section,
}
DEFAULT_SECTIONS = ("overhead", "linear", "data", "compile", "generation", "augment")

DESCRIPTION = """\
Speed of linzoo, measured side by side in one process run (so machine noise cancels).
docs/benchmarks.md has the results and the machine they come from.

sections (--sections, comma separated):
  overhead    linzoo's training path (composed configs/train.yaml, Lightning Trainer) against
              the hand-written reference loop, step by step in one fit; variants: see
              --overhead-variants. JSON: overhead.<variant>.ratio_train, overhead.linzoo_over_bare
  linear      factory Linear against nn.Linear, forward+backward. JSON: linear.<shape>.ratio
  data        DeviceBatches (data.on_device=true) against the DataLoader, one epoch
  compile     torch.compile on/off x 32-true/bf16-mixed, MLP and transformer steps/s
  gpu         time to accuracy of configs/experiment/ recipes, transformer images/s,
              bf16 Linear TFLOP/s (for --device cuda; runs on CPU at --tiny)
  generation  pixel-LM sampling: preallocated KV cache, grown cache, no cache
  augment     one training epoch with data.augment=none|affine|crop (MLP, on-device batches).
              JSON: augment.ratio.<kind> (epoch time over none)
  startup     predict on one image: cold commands (python, import torch, scripts/predict.py)
              against a warm predict call and the forward per image (--predict-ckpt: your run).
              JSON: startup.command_s, startup.startup_s, startup.median_s
  inference   forward passes of every classifier (trained recipe weights, full MNIST) at batch 1 and
              256: torch fp32 / bf16 / compile, torchao int8, ONNX Runtime fp32 / int8 dynamic / static;
              speed-up over torch fp32, test accuracy, file size; role policies of the int8 path.
              JSON: inference.<model>.backends.<backend>.speedup_256 (not in the default sections:
              it trains or needs --inference-run; scripts/quantization_report.py writes its doc)
  time_to_99  wall seconds to 99% test accuracy, --seeds each: the PyTorch examples' MNIST recipe
              (re-implemented), experiment=cnn_fast through linzoo, and the reference loop on the
              same recipe (not in the default sections: about 15 min with --threads 2).
              JSON: time_to_99.peer_over_linzoo, time_to_99.linzoo_over_hand
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=DESCRIPTION, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument(
        "--sections", default=",".join(DEFAULT_SECTIONS), help=f"comma-separated subset of {','.join(SECTIONS)}"
    )
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--tiny", action="store_true", help="tiny sizes, few repeats: checks that it runs (smoke test)")
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats per contender (default 5, --tiny 2)")
    parser.add_argument("--data-root", default=None, help="folder holding MNIST/raw (default: $LINZOO_DATA or ./data)")
    parser.add_argument("--out", default="benchmark.json", help="where the JSON results go")
    parser.add_argument("--markdown", default=None, help="also write the printed tables to this Markdown file")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (default 1: on a shared machine several threads per process\n"
        "wait on each other at every op and the timings become noise; 0: torch's default)",
    )
    parser.add_argument(
        "--overhead-variants",
        default=",".join(overhead.VARIANTS),
        help=f"the overhead section's Lightning sides (comma separated): {', '.join(overhead.VARIANTS)}",
    )
    parser.add_argument(
        "--compile-backend",
        default=None,
        help="torch.compile backend for sections compile and gpu (default inductor; --tiny: eager, which\n"
        "traces but generates no code, so the smoke test stays fast; none: skip the compiled variants)",
    )
    parser.add_argument("--seeds", default="1,2,3", help="time_to_99: the seeds each contender trains with")
    parser.add_argument(
        "--peer-max-epochs", type=int, default=8, help="time_to_99: the peer recipe stops here if it never reaches 99%%"
    )
    parser.add_argument("--lm-ckpt", default=None, help="generation: time this trained LM checkpoint's net")
    parser.add_argument(
        "--predict-ckpt", default=None, help="startup: predict with this run (default: a random-weight mlp)"
    )
    parser.add_argument(
        "--inference-run",
        action="append",
        default=[],
        metavar="MODEL=RUN_DIR",
        help="inference: measure this trained run of MODEL (else its recipe is trained for --inference-epochs)",
    )
    parser.add_argument("--inference-epochs", type=int, default=1, help="inference: epochs of each recipe's short run")
    parser.add_argument("--inference-runs-dir", default="outputs/inference", help="inference: where short runs go")
    args = parser.parse_args(argv)
    args.overhead_variants = [v.strip() for v in args.overhead_variants.split(",") if v.strip()]
    unknown_variants = sorted(set(args.overhead_variants) - set(overhead.VARIANTS))
    if unknown_variants:
        parser.error(f"unknown overhead variant(s) {unknown_variants}; valid: {', '.join(overhead.VARIANTS)}")
    if args.compile_backend is None:
        args.compile_backend = "eager" if args.tiny else "inductor"
    args.sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = sorted(set(args.sections) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown section(s) {unknown}; valid: {', '.join(SECTIONS)}")
    args.sections.sort(key=list(SECTIONS).index)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda but torch sees no CUDA GPU; use --device cpu")
    if args.repeats is None:
        args.repeats = 2 if args.tiny else 5
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    results: dict[str, Any] = {
        "environment": environment(args.device, sys.argv[1:] if argv is None else argv),
        "tiny": args.tiny,
        "repeats": args.repeats,
    }
    for name in args.sections:
        start = time.perf_counter()
        results[name] = SECTIONS[name](args)
        results[name + "_seconds"] = round(time.perf_counter() - start, 2)
    if hasattr(os, "getloadavg"):
        results["environment"]["load_average_end"] = os.getloadavg()
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nResults: {args.out}")
    if args.markdown:
        command = results["environment"]["command"]
        Path(args.markdown).write_text(f"<!-- {command} -->\n\n" + "\n\n".join(TABLES) + "\n")
        print(f"Tables: {args.markdown}")
    return results
