"""Section ``inference``: one forward pass of every classifier on CPU, backend by backend.

Backends (each built from the same trained float32 net):

- torch eager float32 (the reference of every ratio), bf16 autocast, ``torch.compile``;
- torchao int8: dynamic activations + int8 weights (``Int8DynamicActivationInt8WeightConfig``,
  what ``quantize=int8 backend=torch`` runs), weight-only int8 (``Int8WeightOnlyConfig``), each
  eager and compiled;
- ONNX Runtime float32, int8 dynamic (what ``quantize=int8`` runs: linzoo/tools/onnx_runtime.py)
  and int8 static (QDQ, calibrated on training images), both after ``quant_pre_process``.

Batches 1 and 256, timed paired and interleaved (dev/benchmarks/timing.py); the ratio is the
speed-up over torch float32 (above 1: faster). Per backend also the test accuracy on the 10,000
MNIST test digits and the size of its file. Role policies (``quantize.roles.<role>=none``) are
measured for the ONNX Runtime int8 path. Nets: ``--inference-run MODEL=RUN_DIR`` (trained ones),
else the recipes ``experiment=<model>_mnist`` trained for ``--inference-epochs`` on full MNIST.
"""

from __future__ import annotations

import copy
import datetime
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

import linzoo
from dev.benchmarks.timing import calls_for, interleaved, median, paired_ratio, print_table, steady_allocator
from linzoo.tools.onnx_runtime import OnnxNet, export_onnx, linear_nodes, quantize_onnx
from linzoo.tools.quantize import quantize_int8, serialized_megabytes
from linzoo.tools.quantize_policy import linear_roles, quantized_paths

MODELS = ("mlp", "cnn", "transformer", "mixer")
BATCHES = (1, 256)
REFERENCE = "torch fp32"
DEFAULT_INT8 = "ORT int8 dynamic"  # quantize=int8
EXACT_INT8 = "ORT int8 dynamic, exact GELU, fused SkipLayerNorm"  # the same without the GELU/LayerNorm speed-ups
EVAL_BATCH = 256  # accuracy in batches of this size (the last one padded): compiled nets see 2 shapes only
# Role policies measured for the int8 path: name -> quantize.roles overrides.
POLICIES: dict[str, dict[str, str]] = {
    "all Linears (default)": {},
    "head=none": {"head": "none"},
    "head=none patch=none": {"head": "none", "patch": "none"},
}

# Idle seconds before each timed contender: after a 2-thread ONNX Runtime call (batch 1, "one call"),
# its spinning workers made the next contender's int8 mixer at batch 256 take 35-39 ms instead of 24-26 ms
# (pauses of 0, 2 and 10 ms); after 50 ms, 24 ms.
SETTLE_S = 0.1

# Images per part for OnnxNet's split (quantize=int8's default file at batch 256); None: one call.
PARTS: tuple[int | None, ...] = (16, 32, 64, None)

Forward = Callable[[torch.Tensor], torch.Tensor]


def part_name(split_from: int | None) -> str:
    return "one call" if split_from is None else f"parts of about {split_from}"


def train_recipe(model: str, *, epochs: int, run_dir: Path, data_root: str | None) -> Path:
    """``python scripts/train.py experiment=<model>_mnist data.source=full trainer=cpu trainer.max_epochs=<epochs>``."""
    from dev.reports.training import train_run

    overrides = [
        f"experiment={model}_mnist",
        "data.source=full",
        "trainer=cpu",
        f"trainer.max_epochs={epochs}",
        "callbacks/progress_bar=tqdm",
        "callbacks.progress_bar.refresh_rate=200",
        "print_config=false",
        *([f"data.root={data_root}"] if data_root else []),
    ]
    return train_run(overrides, run_dir=run_dir)


def mnist_images(*, train: bool, num: int | None, data_root: str | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Full MNIST images (float [N, 1, 28, 28] in [0, 1], as the nets were trained on) and labels."""
    from linzoo.data.mnist import MNISTDataModule

    data = MNISTDataModule(
        source="full", root=data_root, download=False, batch_size=num or 1024, eval_batch_size=10_000
    )
    data.setup("fit" if train else "test")
    images, labels = next(iter(data.train_dataloader() if train else data.test_dataloader()))
    return images[:num], labels[:num]


@torch.inference_mode()
def accuracy(forward: Forward, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Test accuracy, in batches of ``EVAL_BATCH`` (the last one padded with zeros)."""
    correct = 0
    for start in range(0, len(images), EVAL_BATCH):
        batch = images[start : start + EVAL_BATCH]
        padded = torch.cat([batch, batch.new_zeros(EVAL_BATCH - len(batch), *batch.shape[1:])])
        correct += int((forward(padded)[: len(batch)].argmax(dim=1) == labels[start : start + EVAL_BATCH]).sum())
    return correct / len(images)


def compiled(net: nn.Module, backend: str) -> nn.Module:
    """``torch.compile`` for inference: inductor's CPU int8 and mkldnn Linear paths need ``freezing``
    (weights as constants), as torchao's CPU tests turn it on (pytorch/ao#362)."""
    import torch._inductor.config

    torch._inductor.config.freezing = True
    return torch.compile(net, backend=backend, dynamic=False)


def bf16_autocast(net: nn.Module) -> Forward:
    def forward(images: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return net(images).float()

    return forward


def torchao_weight_only(net: nn.Module) -> nn.Module:
    from torchao.quantization import Int8WeightOnlyConfig, quantize_

    chosen = set(quantized_paths(net))
    quantize_(net, Int8WeightOnlyConfig(), filter_fn=lambda module, fqn: fqn in chosen)
    return net


def file_megabytes(path: Path) -> float:
    return path.stat().st_size / 1e6


def onnx_int8(
    net: nn.Module,
    source: Path,
    out: Path,
    *,
    roles: dict[str, str],
    method: str,
    calibration: torch.Tensor,
    gelu: str = "tanh",
) -> Path:
    """``source`` (float ONNX of ``net``) with the Linears that ``roles`` picks quantized by ``method``."""
    nodes = list(linear_nodes(source, quantized_paths(net, roles)).values())
    return quantize_onnx(source, out, nodes=nodes, method=method, calibration=calibration.split(128), gelu=gelu)


def backends(
    net: nn.Module, directory: Path, *, calibration: torch.Tensor, compile_backend: str
) -> dict[str, tuple[Forward, float]]:
    """``{backend name: (forward, file MB)}``, all built from the float32 ``net`` (left unchanged)."""
    threads = torch.get_num_threads()
    size = serialized_megabytes(net)
    found: dict[str, tuple[Forward, float]] = {
        REFERENCE: (net, size),
        "torch bf16 autocast": (bf16_autocast(net), size),
    }
    dynamic_int8 = quantize_int8(copy.deepcopy(net))
    weight_only = torchao_weight_only(copy.deepcopy(net))
    found["torchao int8 dynamic (quantize=int8 backend=torch)"] = (dynamic_int8, serialized_megabytes(dynamic_int8))
    found["torchao int8 weight-only"] = (weight_only, serialized_megabytes(weight_only))
    if compile_backend != "none":
        found["torch.compile fp32"] = (compiled(copy.deepcopy(net), compile_backend), size)
        found["torchao int8 dynamic + compile"] = (
            compiled(dynamic_int8, compile_backend),
            serialized_megabytes(dynamic_int8),
        )
        found["torchao int8 weight-only + compile"] = (
            compiled(weight_only, compile_backend),
            serialized_megabytes(weight_only),
        )
    source = export_onnx(net, directory / "model.onnx", sample=torch.zeros(2, 1, 28, 28))
    found["ORT fp32"] = (OnnxNet(source, threads=threads), file_megabytes(source))
    for method in ("dynamic", "static"):
        path = onnx_int8(net, source, directory / f"{method}.onnx", roles={}, method=method, calibration=calibration)
        found[f"ORT int8 {method}"] = (OnnxNet(path, threads=threads), file_megabytes(path))
        if method == "dynamic":  # the same file, every batch one call whose ops share the threads
            whole = OnnxNet(path, threads=threads, split_from=None)
            found["ORT int8 dynamic, one call"] = (whole, file_megabytes(path))
    # quantize=int8 without its two GELU/LayerNorm speed-ups (linzoo/tools/onnx_runtime.py's docstring)
    exact = onnx_int8(
        net, source, directory / "exact.onnx", roles={}, method="dynamic", calibration=calibration, gelu="exact"
    )
    found[EXACT_INT8] = (OnnxNet(exact, threads=threads, left_out=()), file_megabytes(exact))
    return found


def milliseconds(forwards: dict[str, Forward], images: torch.Tensor, *, repeats: int, target_s: float) -> dict:
    """``{name: (median ms per forward, speed-up over REFERENCE)}``, contenders timed in turn (ABBA)."""
    with torch.inference_mode():
        for forward in forwards.values():  # warm-up (and compilation)
            forward(images)
        calls = {name: calls_for(lambda f=forward: f(images), target_s=target_s) for name, forward in forwards.items()}

        def repeated(forward: Forward, count: int) -> Callable[[], None]:
            def run() -> None:
                for _ in range(count):
                    forward(images)

            return run

        times = interleaved(
            {name: repeated(forward, calls[name]) for name, forward in forwards.items()},
            repeats=repeats,
            settle_s=SETTLE_S,
        )
    per_call = {name: [t / calls[name] for t in values] for name, values in times.items()}
    return {
        name: (1e3 * median(values), paired_ratio(per_call[REFERENCE], values)) for name, values in per_call.items()
    }


def measure_model(
    net: nn.Module,
    *,
    test: tuple[torch.Tensor, torch.Tensor],
    calibration: torch.Tensor,
    repeats: int,
    compile_backend: str,
    target_s: float,
) -> dict[str, Any]:
    """Every backend of ``net``: ms and speed-up at each batch, accuracy, file size; then the policies."""
    images, labels = test
    torch._dynamo.reset()
    # Three compiled variants of one forward, two batch shapes each: past dynamo's default limit
    # of 8 entries per code object it would fall back to eager, silently.
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)
    result: dict[str, Any] = {"backends": {}, "policies": {}}
    with tempfile.TemporaryDirectory(prefix="linzoo-inference-") as scratch:
        directory = Path(scratch)
        found = backends(net, directory, calibration=calibration, compile_backend=compile_backend)
        for name, (forward, size) in found.items():
            result["backends"][name] = {"size_mb": size, "accuracy": accuracy(forward, images, labels)}
        for batch in BATCHES:
            timed = milliseconds(
                {name: forward for name, (forward, _) in found.items()},
                images[:batch],
                repeats=repeats,
                target_s=target_s,
            )
            for name, (ms, speedup) in timed.items():
                result["backends"][name][f"ms_{batch}"] = ms
                result["backends"][name][f"speedup_{batch}"] = speedup
        roles = set(linear_roles(net).values())
        source = directory / "model.onnx"
        policies: dict[str, Forward] = {REFERENCE: net}
        for policy, overrides in POLICIES.items():
            if not set(overrides) <= roles:
                continue  # this model has no Linear of that role: the same as a smaller policy
            path = onnx_int8(
                net,
                source,
                directory / f"policy{len(policies)}.onnx",
                roles=overrides,
                method="dynamic",
                calibration=calibration,
            )
            policies[policy] = OnnxNet(path)
            result["policies"][policy] = {
                "size_mb": file_megabytes(path),
                "accuracy": accuracy(policies[policy], images, labels),
                "int8_linears": len(quantized_paths(net, overrides)),
            }
        for batch in BATCHES:
            timed = milliseconds(policies, images[:batch], repeats=repeats, target_s=target_s)
            for policy, (ms, speedup) in timed.items():
                if policy != REFERENCE:
                    result["policies"][policy][f"ms_{batch}"] = ms
                    result["policies"][policy][f"speedup_{batch}"] = speedup
        default_file = found[DEFAULT_INT8][0].path  # the file quantize=int8 writes
        parts: dict[str, Forward] = {REFERENCE: net}
        for split_from in PARTS:
            parts[part_name(split_from)] = OnnxNet(default_file, split_from=split_from)
        timed = milliseconds(parts, images[: BATCHES[-1]], repeats=repeats, target_s=target_s)
        result["parts"] = {name: {"ms": ms, "speedup": speedup} for name, (ms, speedup) in timed.items()}
    result["linears"] = len(linear_roles(net))
    result["params"] = sum(p.numel() for p in net.parameters())
    return result


def run_all(
    *,
    models: list[str],
    runs: dict[str, Path],
    data_root: str | None,
    repeats: int,
    compile_backend: str,
    target_s: float = 0.2,
) -> dict[str, Any]:
    """``measure_model`` for the trained net of each model in ``runs``; prints the tables."""
    steady_allocator()  # torch float32 at its fast end on every call (timing.steady_allocator)
    test = mnist_images(train=False, num=None, data_root=data_root)
    calibration, _ = mnist_images(train=True, num=1024, data_root=data_root)
    results = {}
    for model in models:
        net = linzoo.load(runs[model]).cpu().eval()
        results[model] = measure_model(
            net, test=test, calibration=calibration, repeats=repeats, compile_backend=compile_backend, target_s=target_s
        )
        results[model]["run"] = str(runs[model])
        print_tables(model, results[model], repeats=repeats)
    return results


def print_tables(model: str, result: dict[str, Any], *, repeats: int) -> None:
    rows = [
        [
            name,
            r["ms_1"],
            f"x{r['speedup_1']:.2f}",
            r["ms_256"],
            f"x{r['speedup_256']:.2f}",
            f"{100 * r['accuracy']:.2f}",
            r["size_mb"],
        ]
        for name, r in result["backends"].items()
    ]
    header = ["backend", "batch 1 ms", "vs fp32", "batch 256 ms", "vs fp32", "test acc %", "file MB"]
    print_table(f"{model}: inference on CPU, {torch.get_num_threads()} thread(s), median of {repeats}", header, rows)
    policy_rows = [
        [
            policy,
            r["int8_linears"],
            r["ms_1"],
            f"x{r['speedup_1']:.2f}",
            r["ms_256"],
            f"x{r['speedup_256']:.2f}",
            f"{100 * r['accuracy']:.2f}",
            r["size_mb"],
        ]
        for policy, r in result["policies"].items()
    ]
    print_table(
        f"{model}: role policies of ONNX Runtime int8 dynamic ({result['linears']} Linears)",
        ["policy", "int8 Linears", "batch 1 ms", "vs fp32", "batch 256 ms", "vs fp32", "test acc %", "file MB"],
        policy_rows,
    )
    print_table(
        f"{model}: ONNX Runtime int8 dynamic at batch {BATCHES[-1]}, by images per part",
        ["split", "ms", "vs fp32"],
        [[name, r["ms"], f"x{r['speedup']:.2f}"] for name, r in result["parts"].items() if name != REFERENCE],
    )


def parse_runs(items: list[str]) -> dict[str, Path]:
    """``["mlp=outputs/run", ...]`` -> ``{"mlp": Path(...)}``."""
    return {model: Path(path) for model, path in (item.split("=", 1) for item in items)}


def trained_runs(
    models: list[str], *, given: dict[str, Path], epochs: int, runs_dir: Path, data_root: str | None
) -> dict[str, Path]:
    """The run of each model: ``given`` ones, else a short training of its recipe (one after the other)."""
    stamp = datetime.datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    return {
        model: given[model]
        if model in given
        else train_recipe(model, epochs=epochs, run_dir=runs_dir / f"{stamp}_{model}", data_root=data_root)
        for model in models
    }


def section(args: Any) -> dict[str, Any]:
    if args.device != "cpu":
        raise SystemExit("section inference measures CPU backends; use --device cpu")
    data_root = args.data_root or os.environ.get("LINZOO_DATA")
    models = list(MODELS)
    runs = trained_runs(
        models,
        given=parse_runs(args.inference_run),
        epochs=args.inference_epochs,
        runs_dir=Path(args.inference_runs_dir),
        data_root=data_root,
    )
    return run_all(
        models=models,
        runs=runs,
        data_root=data_root,
        repeats=args.repeats,
        compile_backend=args.compile_backend,
        target_s=0.02 if args.tiny else 0.2,
    )
