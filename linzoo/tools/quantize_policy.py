"""Which Linears ``quantize=int8`` quantizes, chosen by the factory's role, never by module name.

A policy maps roles to ``"int8"`` or ``"none"`` (float); a role left out (or null) is int8::

    python scripts/export.py ckpt_path=RUN quantize=int8 quantize.roles.head=none quantize.roles.patch=none

torchao (``filter_fn(module, fqn)``) and ONNX Runtime (``nodes_to_quantize``) select layers by
module path or node name; :func:`quantized_paths` translates the policy into the module paths of
one net (``linzoo.tools.onnx_runtime.linear_nodes`` turns those into ONNX node names). Linears
whose weight is shared with another module (an LM head tied to its token embedding) stay float:
quantizing it would untie it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

from torch import nn

from linzoo.common.errors import UserValueError
from linzoo.layers.linear import ROLES

__all__ = ["PRECISIONS", "check_roles", "linear_roles", "quantized_paths", "shared_weights"]

PRECISIONS = ("int8", "none")  # what a role may get: int8, or none (kept float)


def check_roles(roles: Mapping[str, str | None] | None) -> dict[str, str]:
    """The policy as ``{role: "int8" | "none"}`` (nulls dropped); unknown roles or values are clear errors."""
    policy: dict[str, str] = {}
    for role, precision in dict(roles or {}).items():
        if role not in ROLES:
            raise UserValueError(
                f"quantize.roles.{role}: no linzoo model has a Linear of role {role!r}; roles: {', '.join(ROLES)}."
            )
        if precision is None:
            continue
        value = str(precision).lower()
        if value not in PRECISIONS:
            raise UserValueError(
                f"quantize.roles.{role}={precision}: expected int8 or none (kept float). "
                f"Fix: quantize.roles.{role}=none."
            )
        policy[role] = value
    return policy


def shared_weights(net: nn.Module) -> set[int]:
    """ids of Parameters held by more than one module (tied weights)."""
    counts = Counter(id(p) for module in net.modules() for p in module.parameters(recurse=False))
    return {pid for pid, count in counts.items() if count > 1}


def linear_roles(net: nn.Module) -> dict[str, str]:
    """``{module path: role}`` of every ``nn.Linear`` of ``net`` (a plain ``nn.Linear``: role ``""``)."""
    return {
        name: str(getattr(module, "role", "")) for name, module in net.named_modules() if isinstance(module, nn.Linear)
    }


def quantized_paths(net: nn.Module, roles: Mapping[str, str | None] | None = None) -> list[str]:
    """Module paths of the Linears a policy quantizes: every untied ``nn.Linear`` whose role is not ``none``."""
    policy = check_roles(roles)
    tied = shared_weights(net)
    return [
        name
        for name, role in linear_roles(net).items()
        if policy.get(role, "int8") == "int8" and id(net.get_submodule(name).weight) not in tied
    ]
