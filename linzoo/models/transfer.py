"""Reusing a trained net: choose what trains by the factory's role, and load weights into a new net.

Plain PyTorch. Selection is by role (``module.role`` of the factory's Linears), never by module
name::

    summary = set_trainable(net, roles=("head",), train_other=False)   # a linear probe
    report = load_transferable(net, state, recreated={"head.layers.0.weight", "head.layers.0.bias"})

The rule for a parameter (each shared, tied Parameter counted once):

- it *trains* when one of the modules that own it directly is chosen: a module with a ``role``
  in ``roles`` (a factory Linear, a tied ``TransposedLinear``), a module with ``is_adapter = True``
  (an adapter such as LoRA's A and B always trains: it exists to be trained; the base weight of
  the Linear it adapts follows that Linear's role), or, with ``train_other``, any other module
  (norms, embeddings, convolutions, positional embeddings, CLS tokens);
- ``train_other="auto"`` means ``train_other = (roles == "all")``: a full fine-tune trains
  everything, any choice of roles freezes everything else (a linear probe is then a true probe);
- a norm layer with running statistics (BatchNorm) whose parameters are all frozen is frozen
  whole: :func:`frozen_norm_layers` names them so that training keeps them in eval mode.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from linzoo.common.errors import UserValueError, did_you_mean
from linzoo.layers.linear import ROLES

__all__ = [
    "ADAPTER_FLAG",
    "HEAD_ROLES",
    "ROLE_SETS",
    "TRAIN_OTHER_CHOICES",
    "TrainableSummary",
    "TransferReport",
    "adapter_keys",
    "frozen_norm_layers",
    "load_transferable",
    "parameter_owners",
    "resolve_roles",
    "set_trainable",
    "trains_other",
]

ADAPTER_FLAG = "is_adapter"  # a module with is_adapter = True trains its own parameters whatever the roles
HEAD_ROLES = ("head", "lm_head")
ROLE_SETS = ("all", "all_but_head")  # names for sets of roles, besides a list of roles
TRAIN_OTHER_CHOICES = ("auto", True, False)
OTHER = "other"  # the owner kind of a parameter of a module without a role


def resolve_roles(value: str | Sequence[str], *, setting: str = "finetune.train_roles") -> tuple[str, ...]:
    """The roles ``value`` names: ``"all"`` (every role), ``"all_but_head"`` (every role but
    ``head``/``lm_head``), or a list of roles of :data:`ROLES` (``[]``: none). A typo is an
    error naming the closest role."""
    if isinstance(value, str):
        if value == "all":
            return ROLES
        if value == "all_but_head":
            return tuple(role for role in ROLES if role not in HEAD_ROLES)
        if value in ROLES:
            return (value,)
        raise UserValueError(
            f"{setting}={value}: expected all, all_but_head or a list of roles such as [head,attn_out]."
            f"{did_you_mean(value, (*ROLE_SETS, *ROLES))} Roles: {', '.join(ROLES)}."
        )
    roles = tuple(str(role) for role in value)
    for role in roles:
        if role not in ROLES:
            raise UserValueError(
                f"{setting}: unknown role {role!r}.{did_you_mean(role, ROLES)} Roles: {', '.join(ROLES)}; "
                f"or {setting}=all / all_but_head."
            )
    return roles


def trains_other(train_other: str | bool, roles: str | Sequence[str]) -> bool:
    """Whether the parameters of modules without a role train: ``train_other`` itself, or for
    ``"auto"`` whether ``roles`` is ``"all"``."""
    if train_other == "auto":
        return roles == "all"
    if isinstance(train_other, bool):
        return train_other
    raise UserValueError(
        f"finetune.train_other={train_other}: expected auto, true or false "
        "(auto: true with finetune.train_roles=all, false with a list of roles)."
    )


def parameter_owners(net: nn.Module) -> dict[nn.Parameter, set[str]]:
    """For every Parameter of ``net`` (tied ones once), the kinds of the modules that own it
    directly: their ``role``, ``"adapter"`` for an adapter, ``"other"`` for any other module."""
    owners: dict[nn.Parameter, set[str]] = {}
    for module in net.modules():
        role = getattr(module, "role", None)
        if getattr(module, ADAPTER_FLAG, False) is True:
            kind = "adapter"
        elif isinstance(role, str):
            kind = role
        else:
            kind = OTHER
        for parameter in module.parameters(recurse=False):
            owners.setdefault(parameter, set()).add(kind)
    return owners


@dataclass
class TrainableSummary:
    """What :func:`set_trainable` chose: counts of scalars (tied Parameters once), and roles."""

    trainable: int
    total: int
    trained_roles: list[str]  # roles of ``net`` that train
    frozen_roles: list[str]  # roles of ``net`` that stay frozen
    missing_roles: list[str]  # roles asked for that ``net`` has no Linear of
    train_other: bool

    def line(self) -> str:
        """``Parameters: 1,290 trainable / 52,874 total (2.4%); ...``."""
        share = 100.0 * self.trainable / self.total if self.total else 0.0
        text = f"Parameters: {self.trainable:,} trainable / {self.total:,} total ({share:.1f}%)"
        if self.frozen_roles or not self.train_other:
            text += f"; trained roles: {', '.join(self.trained_roles) or 'none'}"
            other = "trained" if self.train_other else "frozen"
            text += f"; other parameters (norms, embeddings, convolutions): {other}"
        return text


def set_trainable(
    net: nn.Module, *, roles: str | Sequence[str] = "all", train_other: str | bool = "auto"
) -> TrainableSummary:
    """Set ``requires_grad`` of every parameter of ``net`` by the rule of this module; returns the counts.

    Raises a :class:`UserValueError` when nothing would train.
    """
    chosen = set(resolve_roles(roles))
    other = trains_other(train_other, roles)
    owners = parameter_owners(net)
    for parameter, kinds in owners.items():
        parameter.requires_grad_(bool(kinds & chosen) or "adapter" in kinds or (other and OTHER in kinds))
    present = {kind for kinds in owners.values() for kind in kinds if kind in ROLES}
    summary = TrainableSummary(
        trainable=sum(p.numel() for p in owners if p.requires_grad),
        total=sum(p.numel() for p in owners),
        trained_roles=sorted(present & chosen),
        frozen_roles=sorted(present - chosen),
        missing_roles=sorted(chosen - present) if not isinstance(roles, str) else [],
        train_other=other,
    )
    if summary.trainable == 0:
        raise UserValueError(
            f"finetune.train_roles={_shown(roles)} with finetune.train_other={str(other).lower()} leaves nothing to "
            f"train in {type(net).__name__}; its roles: {', '.join(sorted(present))}. Fix: add one of them to "
            "finetune.train_roles, or finetune.train_other=true."
        )
    return summary


def _shown(roles: str | Sequence[str]) -> str:
    return roles if isinstance(roles, str) else f"[{','.join(roles)}]"


def frozen_norm_layers(net: nn.Module) -> list[nn.Module]:
    """Norm layers with running statistics (BatchNorm) whose parameters are all frozen: a frozen
    layer is frozen whole, so training keeps these in eval mode (their statistics stay the loaded ones)."""
    found = []
    for module in net.modules():
        if isinstance(module, nn.modules.batchnorm._NormBase) and module.track_running_stats:
            parameters = list(module.parameters(recurse=False))
            if parameters and not any(p.requires_grad for p in parameters):
                found.append(module)
    return found


@dataclass
class TransferReport:
    """What :func:`load_transferable` did, by state-dict key."""

    loaded: list[str] = field(default_factory=list)  # copied from the file
    reinitialised: list[str] = field(default_factory=list)  # kept as freshly initialised (re-created layers)
    skipped: list[str] = field(default_factory=list)  # tensors of the file that were not used
    new_adapters: list[str] = field(default_factory=list)  # adapters (LoRA's A, B) the file has not: fresh

    def line(self, source: Any) -> str:
        """One line: ``init_from=<source>: loaded 40 tensors; re-initialised 2 (head.layers.0.weight, ...); skipped 2 (...)``,
        and ``; new adapters 8 (...)`` when the net has adapters that the file has not."""
        adapters = f"; new adapters {_names(self.new_adapters)}" if self.new_adapters else ""
        return (
            f"init_from={source}: loaded {len(self.loaded)} tensors; re-initialised {_names(self.reinitialised)}; "
            f"skipped {_names(self.skipped)} of the file{adapters}"
        )


def _names(keys: Sequence[str]) -> str:
    if not keys:
        return "none"
    shown = ", ".join(keys[:4]) + (", ..." if len(keys) > 4 else "")
    return f"{len(keys)} ({shown})"


def adapter_keys(net: nn.Module) -> set[str]:
    """The state-dict keys of ``net``'s adapters (modules with ``is_adapter = True``)."""
    return {
        f"{name}.{key}" if name else key
        for name, module in net.named_modules()
        if getattr(module, ADAPTER_FLAG, False)
        for key in module.state_dict()
    }


def load_transferable(
    net: nn.Module, state: dict[str, torch.Tensor], *, recreated: Collection[str] = ()
) -> TransferReport:
    """Copy ``state`` into ``net``, except the keys of ``recreated`` (layers built anew, e.g. a head
    for another number of classes), which keep their fresh initialisation.

    Adapters of ``net`` (modules with ``is_adapter = True``, LoRA's A and B) that the file has not
    keep theirs too: a LoRA fine-tune starts from a plain trained net (``init_from=<MNIST run>
    adapter=lora``), and its fresh B = 0 leaves the loaded net's outputs as they were. Every other
    key must be in both with the same shape: anything else is a ``UserValueError`` (the caller
    decides what may be re-created; see linzoo/checkpoint/init_from.py).
    """
    own = net.state_dict()
    recreated = set(recreated)
    adapters = adapter_keys(net)
    report = TransferReport()
    problems = []
    for key, tensor in own.items():
        if key in recreated:
            report.reinitialised.append(key)
        elif key not in state and key in adapters:
            report.new_adapters.append(key)
        elif key not in state:
            problems.append(f"{key} is missing from the file")
        elif tuple(state[key].shape) != tuple(tensor.shape):
            problems.append(f"{key}: {tuple(tensor.shape)} here, {tuple(state[key].shape)} in the file")
        else:
            report.loaded.append(key)
    report.skipped = [key for key in state if key not in report.loaded]
    problems += [f"{key} is not in this net" for key in report.skipped if key not in own and key not in recreated]
    if problems:
        raise UserValueError(f"the weights do not fit: {'; '.join(problems[:3])}")
    with torch.no_grad():
        for key in report.loaded:
            own[key].copy_(state[key])
    return report
