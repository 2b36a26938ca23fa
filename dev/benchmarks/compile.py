"""Section ``compile``: ``torch.compile`` on/off x precision 32-true/bf16-mixed, training steps per second.

The MLP and the transformer of the default model configs, stepped by the reference loop
(autocast around the forward for bf16-mixed, as Lightning's precision plugin does) with
fused AdamW as ``configs/optimizer/adamw.yaml`` makes it, and one row without fusing.
Compile warm-up (the first two steps) is reported separately.
"""

from __future__ import annotations

import copy
import tempfile
from collections.abc import Callable
from typing import Any

import torch

from dev.benchmarks.recipes import build_net, compose, data_overrides, tiny_net
from dev.benchmarks.reference import ReferenceLoop
from dev.benchmarks.timing import interleaved, median, paired_ratio, print_table, seconds


def repeated(fn: Callable[[], None], times: int) -> Callable[[], None]:
    def run() -> None:
        for _ in range(times):
            fn()

    return run


def section(args: Any) -> dict[str, Any]:
    device = args.device
    batch_size = 16 if args.tiny else 128
    steps = 3 if args.tiny else 20
    results: dict[str, Any] = {"batch_size": batch_size, "steps_per_sample": steps, "backend": args.compile_backend}
    rows = []
    for model in ("mlp", "transformer"):
        with tempfile.TemporaryDirectory() as run_dir:
            overrides = [
                f"model={model}",
                *data_overrides(data_root=args.data_root, tiny=args.tiny),
                *tiny_net(model, args.tiny),
            ]
            cfg = compose(overrides, run_dir)
        torch.manual_seed(0)
        base = build_net(cfg).to(device)
        images = torch.rand(batch_size, 1, 28, 28, device=device)
        labels = torch.randint(0, 10, (batch_size,), device=device)
        contenders: dict[str, Callable[[], None]] = {}
        warmup_s: dict[str, float] = {}
        torch._dynamo.reset()
        variants = [(False, "32-true", True), (False, "32-true", False), (False, "bf16-mixed", True)]
        if args.compile_backend != "none":
            variants += [(True, "32-true", True), (True, "bf16-mixed", True)]
        for compiled, precision, fused in variants:
            name = f"{'compile' if compiled else 'eager'} {precision}{'' if fused else ', AdamW fused=false'}"
            net = copy.deepcopy(base)
            if compiled:
                net.compile(backend=args.compile_backend)
            loop = ReferenceLoop(
                net, torch.optim.AdamW(net.parameters(), lr=1e-3, fused=fused), bf16=precision == "bf16-mixed"
            )

            def step(loop: ReferenceLoop = loop, batch: tuple = (images, labels)) -> None:
                loop.step(*batch)

            # Two steps compile forward and backward (eager: allocator warm-up).
            warmup_s[name] = seconds(repeated(step, 2), device)
            contenders[name] = repeated(step, steps)
        times = interleaved(contenders, repeats=args.repeats, device=device)
        base_time = times["eager 32-true"]
        results[model] = {
            name: {
                "steps_per_s": steps / median(t),
                "speedup_vs_eager_32": paired_ratio(base_time, t),
                "warmup_s": warmup_s[name],
            }
            for name, t in times.items()
        }
        rows += [
            [model, name, r["steps_per_s"], r["speedup_vs_eager_32"], r["warmup_s"]]
            for name, r in results[model].items()
        ]
    print_table(
        f"4. Training steps/s, compile x precision (batch {batch_size}, {device}, backend {args.compile_backend}; "
        f"median of {args.repeats})",
        ["model", "variant", "steps/s", "speed-up vs eager 32-true", "first 2 steps s (compile)"],
        rows,
    )
    return results
