"""Section ``gpu``: time to accuracy, transformer images/s, a large bf16 Linear's TFLOP/s.

Meant for ``--device cuda``; runs on CPU too (``--tiny`` lowers sizes and targets).

Time to accuracy trains the recipes of ``configs/experiment/`` (composed, as
``scripts/train.py experiment=...`` sees them: net, optimizer, schedule, label smoothing,
batch size, data split) with the reference loop on the data module's on-device batches,
and tests after every epoch; the clock counts training only and stops at the first epoch
at or above the target. It differs from the recipe in exactly what ``TIME_TO_ACCURACY``
lists (``overrides``, shown in the table and the JSON), plus bf16 autocast, ``torch.compile``
and, for the CNN, channels_last memory format.
"""

from __future__ import annotations

import copy
import tempfile
from typing import Any

import torch
from torch import nn

from dev.benchmarks.recipes import (
    build_datamodule,
    build_net,
    build_optimizer,
    build_scheduler,
    compose,
    data_overrides,
    tiny_net,
)
from dev.benchmarks.reference import ReferenceLoop
from dev.benchmarks.timing import (
    calls_for,
    cpu_name,
    interleaved,
    median,
    paired_ratio,
    print_table,
    seconds,
)

# model -> (experiment, target test accuracy, overrides of the recipe, channels_last)
TIME_TO_ACCURACY: dict[str, tuple[str, float, list[str], bool]] = {
    "cnn": (
        "cnn_mnist",
        0.99,
        ["trainer.max_epochs=4", "data.batch_size=512", "optimizer.lr=0.01"],
        True,
    ),
    "mlp": ("mlp_mnist", 0.98, ["trainer.max_epochs=8", "data.batch_size=512"], False),
}
# --tiny: seconds on a CPU (the smoke test), with targets it can reach.
TINY_TIME_TO_ACCURACY = {
    "cnn": (0.3, ["trainer.max_epochs=2", "data.batch_size=64"]),
    "mlp": (0.2, ["trainer.max_epochs=2", "data.batch_size=64"]),
}


def reset_all_parameters(net: nn.Module) -> None:
    """Fresh weights in place (compiled code stays valid): every submodule's reset_parameters."""
    for module in net.modules():
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
        if hasattr(module, "reset_running_stats"):
            module.reset_running_stats()


def time_to_accuracy(args: Any, model: str, *, compile_net: bool) -> dict[str, Any]:
    from linzoo.data import DeviceBatches

    experiment, target, overrides, channels_last = TIME_TO_ACCURACY[model]
    if args.tiny:
        target, tiny_overrides = TINY_TIME_TO_ACCURACY[model]
        overrides = [*overrides, *tiny_overrides, *tiny_net(model, True)]
    device = torch.device(args.device)
    with tempfile.TemporaryDirectory() as run_dir:
        cfg = compose(
            [f"experiment={experiment}", *data_overrides(data_root=args.data_root, tiny=args.tiny), *overrides],
            run_dir,
        )
    datamodule = build_datamodule(cfg)
    train = DeviceBatches(datamodule.train_set, batch_size=cfg.data.batch_size, device=device, shuffle=True)
    test = DeviceBatches(datamodule.test_set, batch_size=cfg.data.eval_batch_size, device=device)
    epochs = cfg.trainer.max_epochs
    torch.manual_seed(0)
    net = build_net(cfg).to(device)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    if compile_net:
        net.compile(backend=args.compile_backend)

    def loop() -> ReferenceLoop:
        optimizer = build_optimizer(cfg, net)
        scheduler = build_scheduler(cfg, optimizer, total_steps=epochs * len(train))
        return ReferenceLoop(net, optimizer, scheduler=scheduler, label_smoothing=cfg.model.label_smoothing, bf16=True)

    # Warm-up: 8 steps and a test pass (compiles, picks cuDNN algorithms), then fresh weights in place.
    def warm_up() -> None:
        warm = loop()
        for index, (images, labels) in enumerate(train):
            warm.step(images, labels)
            if index == 7:
                break
        warm.evaluate(test)

    warmup_s = seconds(warm_up, args.device)
    reset_all_parameters(net)
    runner = loop()
    train_seconds, curve, reached = 0.0, [], None
    for epoch in range(epochs):
        train_seconds += seconds(lambda: runner.train_epoch(train), args.device)
        test_accuracy = runner.evaluate(test)["acc"]
        curve.append({"epoch": epoch + 1, "train_s": round(train_seconds, 4), "test_acc": test_accuracy})
        if test_accuracy >= target:
            reached = train_seconds
            break
    return {
        "experiment": experiment,
        "overrides": overrides,
        "target": target,
        "seconds_to_target": reached,
        "epochs_run": len(curve),
        "curve": curve,
        "max_epochs": epochs,
        "batch_size": cfg.data.batch_size,
        "lr": cfg.optimizer.lr,
        "label_smoothing": cfg.model.label_smoothing,
        "warmup_s": warmup_s,
        "bf16": True,
        "channels_last": channels_last,
        "compile": args.compile_backend if compile_net else False,
        "train_images": len(datamodule.train_set),
    }


def transformer_throughput(args: Any, *, compile_nets: bool) -> dict[str, Any]:
    """Training steps of the default ``model=transformer`` on random images: eager/compile x fp32/bf16."""
    device = args.device
    with tempfile.TemporaryDirectory() as run_dir:
        overrides = ["model=transformer", *data_overrides(data_root=args.data_root, tiny=args.tiny)]
        cfg = compose([*overrides, *tiny_net("transformer", args.tiny)], run_dir)
    batch_size, steps = (16, 2) if args.tiny else (512, 20)
    torch.manual_seed(0)
    base = build_net(cfg).to(device)
    images = torch.rand(batch_size, 1, 28, 28, device=device)
    labels = torch.randint(0, 10, (batch_size,), device=device)
    variants = [("eager", False, False), ("eager bf16", False, True)]
    if compile_nets:
        variants += [("compile", True, False), ("compile bf16", True, True)]
    contenders, warmups = {}, {}
    for name, compiled, bf16 in variants:
        net = copy.deepcopy(base)
        if compiled:
            net.compile(backend=args.compile_backend)
        loop = ReferenceLoop(net, torch.optim.AdamW(net.parameters(), lr=1e-3), bf16=bf16)

        def many(loop: ReferenceLoop = loop, times: int = steps) -> None:
            for _ in range(times):
                loop.step(images, labels)

        warmups[name] = seconds(lambda many=many: many(times=3), device)
        contenders[name] = many
    times = interleaved(contenders, repeats=args.repeats, device=device)
    return {
        "batch_size": batch_size,
        **{
            name: {
                "images_per_s": batch_size * steps / median(t),
                "speedup_vs_eager": paired_ratio(times["eager"], t),
                "warmup_s": warmups[name],
            }
            for name, t in times.items()
        },
    }


def linear_tflops(args: Any) -> dict[str, Any]:
    """A factory Linear n x n in bf16, forward+backward (3 GEMMs: 6 n^3 FLOP) against torch.matmul (2 n^3)."""
    from linzoo.layers.linear import LinearSpec, make_linear

    device = args.device
    n = 256 if args.tiny else 8192
    dtype = torch.bfloat16
    layer = make_linear(n, n, role="hidden", spec=LinearSpec(dtype="bfloat16")).to(device)
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    x = torch.randn(n, n, device=device, dtype=dtype, requires_grad=True)
    grad = torch.randn(n, n, device=device, dtype=dtype)

    def matmul() -> None:
        torch.matmul(a, b)

    def forward_backward() -> None:
        layer.weight.grad = layer.bias.grad = x.grad = None
        layer(x).backward(grad)

    matmul_calls = calls_for(matmul, target_s=0.01 if args.tiny else 0.2)
    linear_calls = max(1, matmul_calls // 3)
    times = interleaved(
        {
            "matmul": lambda: [matmul() for _ in range(matmul_calls)],
            "linear": lambda: [forward_backward() for _ in range(linear_calls)],
        },
        repeats=args.repeats * 2,
        device=device,
    )
    matmul_tflops = 2 * n**3 * matmul_calls / min(times["matmul"]) / 1e12
    linear_tflops = 6 * n**3 * linear_calls / min(times["linear"]) / 1e12
    return {
        "n": n,
        "matmul_tflops": matmul_tflops,
        "factory_linear_fwd_bwd_tflops": linear_tflops,
        "fraction_of_matmul": linear_tflops / matmul_tflops,
    }


def section(args: Any) -> dict[str, Any]:
    on_gpu = args.device == "cuda"
    if on_gpu:
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    compile_nets = args.compile_backend != "none"
    results: dict[str, Any] = {
        "device_name": torch.cuda.get_device_name() if on_gpu else cpu_name(),
        "tf32": on_gpu,  # float32 matmuls/convolutions on tensor cores (the transformer's "eager" row)
    }
    runs = {model: time_to_accuracy(args, model, compile_net=compile_nets) for model in TIME_TO_ACCURACY}
    results.update({f"{model}_time_to_accuracy": run for model, run in runs.items()})
    results["transformer_images_per_s"] = throughput = transformer_throughput(args, compile_nets=compile_nets)
    results["linear_bf16"] = lin = linear_tflops(args)

    rows = []
    for model, r in runs.items():
        reached = r["seconds_to_target"]
        rows.append(
            [
                f"{model.upper()}: training s to {r['target']:.0%} test accuracy",
                reached if reached is not None else f"not reached ({r['curve'][-1]['test_acc']:.4f})",
                f"experiment={r['experiment']} {' '.join(r['overrides'])}; {r['epochs_run']} epochs, bf16, "
                f"compile={r['compile']}, channels_last={r['channels_last']}, warm-up {r['warmup_s']:.1f} s",
            ]
        )
    for name, r in throughput.items():
        if isinstance(r, dict):
            rows.append(
                [
                    f"transformer images/s, {name}",
                    r["images_per_s"],
                    f"x{r['speedup_vs_eager']:.2f} vs eager, batch {throughput['batch_size']}",
                ]
            )
    n = lin["n"]
    rows += [
        [f"torch.matmul {n}x{n} bf16 TFLOP/s", lin["matmul_tflops"], "peak measured in this run"],
        [
            f"factory Linear {n}x{n} bf16 fwd+bwd TFLOP/s",
            lin["factory_linear_fwd_bwd_tflops"],
            f"{lin['fraction_of_matmul']:.1%} of matmul",
        ],
    ]
    print_table(f"5. Speed on {results['device_name']}", ["what", "value", "details"], rows)
    return results
