"""Section ``linear``: a factory-built Linear against ``nn.Linear`` (same weights), forward + backward."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from dev.benchmarks.timing import calls_for, interleaved, median, paired_ratio, print_table
from linzoo.layers.linear import LinearSpec, make_linear

SHAPES = [((128, 784), 256), ((128, 256), 10), ((4096, 512), 512), ((64, 49, 128), 384)]
TINY_SHAPES = [((16, 32), 8), ((4, 5, 16), 24)]


def forward_backward(layer: nn.Module, x: torch.Tensor, grad: torch.Tensor, calls: int) -> Callable[[], None]:
    """``calls`` forward + backward passes (weight, bias and input gradients)."""

    def run() -> None:
        for _ in range(calls):
            layer.weight.grad = layer.bias.grad = x.grad = None
            layer(x).backward(grad)

    return run


def section(args: Any) -> dict[str, Any]:
    device = args.device
    results = {}
    for input_shape, out_features in TINY_SHAPES if args.tiny else SHAPES:
        in_features = input_shape[-1]
        torch.manual_seed(0)
        reference = nn.Linear(in_features, out_features, device=device)
        factory = make_linear(in_features, out_features, role="hidden", spec=LinearSpec())
        factory.to(device).load_state_dict(reference.state_dict())
        x = torch.randn(*input_shape, device=device, requires_grad=True)
        grad = torch.randn(*input_shape[:-1], out_features, device=device)
        calls = calls_for(forward_backward(reference, x, grad, 1), target_s=0.002 if args.tiny else 0.02)
        times = interleaved(
            {
                "nn.Linear": forward_backward(reference, x, grad, calls),
                "factory": forward_backward(factory, x, grad, calls),
            },
            repeats=args.repeats * 8,
            device=device,
        )
        name = f"{list(input_shape)} x [{in_features},{out_features}]"
        results[name] = {
            "calls_per_sample": calls,
            "nn_linear_us": 1e6 * median(times["nn.Linear"]) / calls,
            "factory_us": 1e6 * median(times["factory"]) / calls,
            "ratio": paired_ratio(times["factory"], times["nn.Linear"]),
        }
    print_table(
        f"2. Factory Linear vs nn.Linear, forward+backward ({device}; median of {args.repeats * 8} paired samples)",
        ["input x weight", "nn.Linear us", "factory us", "ratio"],
        [[name, r["nn_linear_us"], r["factory_us"], r["ratio"]] for name, r in results.items()],
    )
    return results
