"""Dynamic int8 quantization of every factory Linear, on CPU, with torchao.

``quantize_int8(net)`` swaps the weight of every ``nn.Linear`` (``FactoryLinear`` is a
subclass, so all of them) for a torchao ``Int8Tensor``: weights int8 with one scale per
output row, activations quantized to int8 per token at run time (symmetric), int8 x int8
matmul, float output. Why torchao and not ``torch.ao.quantization.quantize_dynamic``:

- ``quantize_dynamic(model, {nn.Linear})`` matches exact types, so it leaves every
  ``FactoryLinear`` in float32, silently; and even with ``mapping={FactoryLinear:
  nnqd.Linear}`` it fails (``from_float`` only accepts ``nn.Linear`` itself);
- ``torch.ao.quantization`` is deprecated in torch 2.15 (its warning says: migrate to
  torchao's ``quantize_``); torchao's ``quantize_`` selects layers with ``isinstance``.

Which Linears are quantized is a per-role policy (``linzoo/tools/quantize_policy.py``):
``quantize.roles.head=none`` keeps the heads float. Linears whose weight is shared with another
module (an LM head tied to its token embedding, a tied autoencoder decoder) keep their float
weight: quantizing it would untie it.

Speed: in eager PyTorch this int8 Linear is slower than float32 on CPU (docs/quantization.md);
``quantize=int8`` in export, eval and predict therefore runs ONNX Runtime's int8
(``linzoo/tools/onnx_runtime.py``) unless ``backend=torch`` or ``format=exported_program`` asks for this one.

On an x86 CPU without AVX-512 VNNI or AMX (AVX2 only, or AVX-512 without VNNI), torch's
oneDNN int8 x int8 matmul adds pairs of u8 x s8 products into int16 and saturates: its
result is wrong by up to ~5e4 (measured with ``ONEDNN_MAX_CPU_ISA=AVX2``), and a quantized
net then changes 15% of its predictions. ``quantize_int8`` checks the kernel on one
full-range product first and refuses such a CPU with one clear line.
"""

from __future__ import annotations

import functools
import io
import logging
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from linzoo.common.checks import require
from linzoo.common.errors import UserValueError
from linzoo.tools.quantize_policy import check_roles, quantized_paths, shared_weights

log = logging.getLogger(__name__)

__all__ = [
    "QUANTIZE_CHOICES",
    "Int8MatmulUnreliable",
    "check_quantize",
    "float_linear_weights",
    "int8_matmul_error",
    "quantize_options",
    "quantize_int8",
    "serialized_megabytes",
    "shared_weights",
]

QUANTIZE_CHOICES = ("int8",)


def check_quantize(quantize: str | Mapping[str, Any] | None) -> str | None:
    """``None`` or ``"int8"`` (also from the config group's ``{mode: ..., roles: ...}``); else a clear error."""
    if isinstance(quantize, Mapping):
        quantize = quantize.get("mode")
    if quantize is None or str(quantize).lower() in ("none", "null", "false"):
        return None
    if str(quantize).lower() not in QUANTIZE_CHOICES:
        raise UserValueError(f"quantize={quantize!r} is not supported; use quantize=int8 or leave it null.")
    return str(quantize).lower()


def quantize_options(quantize: str | Mapping[str, Any] | None) -> tuple[str | None, dict[str, str]]:
    """``(mode, roles policy)`` of a ``quantize`` setting: ``"int8"``, ``None`` or ``{mode, roles}``.
    A policy without ``quantize=int8`` is a clear error (it would silently do nothing)."""
    mode = check_quantize(quantize)
    roles = check_roles(quantize.get("roles") if isinstance(quantize, Mapping) else None)
    if roles and mode is None:
        raise UserValueError(
            "quantize.roles.* is set but nothing is quantized. Fix: add quantize=int8 before quantize.roles.<role>=..."
        )
    return mode, roles


class Int8MatmulUnreliable(UserValueError):
    """quantize=int8 asked on a CPU whose int8 matmul kernel gives wrong sums (like fp16 without CUDA)."""


@functools.cache
def int8_matmul_error() -> int:
    """Largest absolute error of ``torch._int_mm`` (int8 [32, 64] x [64, 32] -> int32, the kernel
    torchao's dynamic int8 Linear runs on CPU) against the exact int64 product, on full-range
    values. 0 on CPUs with AVX-512 VNNI or AMX; large where int16 accumulation saturates."""
    generator = torch.Generator().manual_seed(0)
    a = torch.randint(-127, 128, (32, 64), dtype=torch.int8, generator=generator)
    b = torch.randint(-127, 128, (64, 32), dtype=torch.int8, generator=generator)
    return int((torch._int_mm(a, b).long() - a.long() @ b.long()).abs().max())


def quantize_int8(net: nn.Module, *, roles: Mapping[str, str | None] | None = None) -> nn.Module:
    """Quantize ``net`` in place (moved to CPU, eval mode): every untied ``nn.Linear`` whose role
    ``roles`` does not keep float (``{"head": "none"}``) -> dynamic int8.

    Raises :class:`Int8MatmulUnreliable` where this CPU's int8 matmul is not exact (see the module doc).
    """
    require("torchao", "quantize=int8")
    error = int8_matmul_error()
    if error:
        raise Int8MatmulUnreliable(
            f"quantize=int8: this CPU's int8 matmul (oneDNN, without AVX-512 VNNI or AMX) saturates "
            f"(off by up to {error} on a check), so int8 predictions would be wrong. Leave quantize unset "
            "(float32), or quantize on a CPU with AVX-512 VNNI or AMX."
        )
    from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_

    net = net.cpu().eval()
    tied = shared_weights(net)
    skipped = [name for name, m in net.named_modules() if isinstance(m, nn.Linear) and id(m.weight) in tied]
    if skipped:
        log.info("Kept float32 (tied weights): %s", ", ".join(skipped))
    chosen = set(quantized_paths(net, roles))
    quantize_(net, Int8DynamicActivationInt8WeightConfig(), filter_fn=lambda module, fqn: fqn in chosen)
    return net


def float_linear_weights(net: nn.Module) -> list[str]:
    """Names of the ``nn.Linear`` layers whose weight is still a plain float tensor."""
    from torchao.quantization import Int8Tensor

    return [
        name
        for name, module in net.named_modules()
        if isinstance(module, nn.Linear)
        and not (isinstance(module.weight, Int8Tensor) and module.weight.qdata.dtype == torch.int8)
    ]


def serialized_megabytes(net: nn.Module) -> float:
    """Size of ``torch.save(net.state_dict())`` in MB (10^6 bytes)."""
    buffer = io.BytesIO()
    torch.save(net.state_dict(), buffer)
    return buffer.getbuffer().nbytes / 1e6
