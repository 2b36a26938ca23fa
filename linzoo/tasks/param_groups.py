"""Optimizer parameter groups by role: muP's learning-rate multipliers and ``optimizer.roles``.

Every trainable parameter gets

    lr = optimizer.lr * muP lr multiplier * optimizer.roles.<role>.lr_mult
    weight_decay = optimizer.weight_decay * muP weight-decay multiplier   (>= 2-D parameters only)

The muP multipliers (linzoo.layers.mup.lr_multipliers) depend on the parameter's kind and
on the optimizer actually built: torch.optim.SGD gets MuSGD's, Adam/AdamW MuAdam's; other
optimizers are refused under muP. Parameters outside factory Linears (norms, embeddings,
position embeddings, CLS tokens, convolutions) have role "other": vector-like under muP
(Adam x1, SGD x m) and ``optimizer.roles`` does not reach them. A weight shared by an
embedding and a Linear (a tied lm_head) is the embedding's. LoRA adapter parameters take
their layer's ``optimizer.roles.<role>.lr_mult`` and no muP multiplier (fine-tuning keeps the width).
Frozen parameters are in no group. Without muP and without ``optimizer.roles`` the groups are
exactly :func:`linzoo.tasks.optim.weight_decay_groups`' two (old checkpoints resume).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from linzoo.common.errors import UserValueError, did_you_mean
from linzoo.layers.linear import ROLES
from linzoo.layers.mup import FIXED, VECTOR, lr_multipliers, mup_class, parameter_kind
from linzoo.tasks.optim import OptimizerFactory, weight_decay_groups

__all__ = ["build_optimizer", "check_role_lr_mults", "role_param_groups", "split_role_options"]

OTHER = "other"
# Keys linzoo adds to each parameter group (kept in the optimizer's state_dict, read by nobody else).
_ROLE, _KIND, _WIDTH_MULT, _LR_MULT = "role", "mup_kind", "width_mult", "lr_mult"


def check_role_lr_mults(roles: Mapping[str, Any] | None) -> dict[str, float]:
    """``optimizer.roles`` -> ``{role: lr_mult}`` (null slots dropped); a bad role or value is refused."""
    mults: dict[str, float] = {}
    for role, options in (roles or {}).items():
        if role not in ROLES:
            raise UserValueError(
                f"optimizer.roles.{role}: unknown role; valid: {', '.join(ROLES)}.{did_you_mean(str(role), ROLES)}"
            )
        options = dict(options or {})
        unknown = sorted(set(options) - {"lr_mult"})
        if unknown:
            raise UserValueError(f"optimizer.roles.{role}: unknown key(s) {unknown}; the one key is lr_mult.")
        value = options.get("lr_mult")
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise UserValueError(
                f"optimizer.roles.{role}.lr_mult={value!r}: expected a number > 0 (the role's lr is optimizer.lr "
                f"times it). Fix: optimizer.roles.{role}.lr_mult=0.1"
            )
        mults[role] = float(value)
    return mults


def split_role_options(factory: OptimizerFactory) -> tuple[OptimizerFactory, dict[str, float]]:
    """A Hydra partial ``AdamW(lr=..., roles={...})`` -> (the partial without ``roles``, lr mults)."""
    if isinstance(factory, functools.partial) and "roles" in factory.keywords:
        keywords = dict(factory.keywords)
        roles = keywords.pop("roles")
        return functools.partial(factory.func, *factory.args, **keywords), check_role_lr_mults(roles)
    return factory, {}


def _parameter_roles(net: nn.Module) -> dict[int, tuple[str, str, float]]:
    """id(parameter) -> (role, muP kind, width multiplier) for every parameter of ``net``."""
    width_mult, uses_mup = 1.0, False
    for module in net.modules():
        spec = getattr(module, "spec", None)
        if getattr(spec, "mup", None) is not None:
            width_mult, uses_mup = spec.width_mult, True
            break
    info: dict[int, tuple[str, str, float]] = {}
    other_kind = VECTOR if uses_mup else FIXED
    for module in net.modules():  # embeddings first: a tied lm_head weight is the embedding's
        if isinstance(module, nn.Embedding):
            for parameter in module.parameters(recurse=False):
                info[id(parameter)] = (OTHER, other_kind, width_mult)
    for module in net.modules():
        role = getattr(module, "role", None)
        if not isinstance(role, str) or getattr(module, "is_adapter", False):
            continue
        layer_mult = module.spec.width_mult
        for name, parameter in module.named_parameters(recurse=False):
            klass = getattr(module, "mup_class", None) or mup_class(role)  # TransposedLinear: by role
            kind = parameter_kind(klass, is_bias=name == "bias") if uses_mup else FIXED
            info.setdefault(id(parameter), (role, kind, layer_mult))
        adapter = getattr(module, "adapter", None)
        if adapter is not None:
            for parameter in adapter.parameters():
                info.setdefault(id(parameter), (role, FIXED, 1.0))
    for parameter in net.parameters():
        info.setdefault(id(parameter), (OTHER, other_kind, width_mult))
    return info


def role_param_groups(net: nn.Module, *, lr_mults: Mapping[str, float] | None = None) -> list[dict[str, Any]]:
    """Parameter groups of the trainable parameters of ``net``, one per (role, muP kind, decay).

    Each group carries ``role``, ``mup_kind``, ``width_mult`` and ``lr_mult`` (the user's);
    :func:`apply_multipliers` turns them into lr and weight decay once the optimizer exists.
    Without muP and ``lr_mults``: :func:`weight_decay_groups` (two groups, no extra keys).
    """
    uses_mup = any(getattr(getattr(module, "spec", None), "mup", None) is not None for module in net.modules())
    if not uses_mup and not lr_mults:
        return weight_decay_groups(net)
    info = _parameter_roles(net)
    groups: dict[tuple[str, str, float, bool], dict[str, Any]] = {}
    for parameter in net.parameters():
        if not parameter.requires_grad:
            continue
        role, kind, width_mult = info[id(parameter)]
        decays = parameter.dim() >= 2
        key = (role, kind, width_mult, decays)
        if key not in groups:
            groups[key] = {
                "params": [],
                _ROLE: role,
                _KIND: kind,
                _WIDTH_MULT: width_mult,
                _LR_MULT: (lr_mults or {}).get(role, 1.0),
            }
            if not decays:
                groups[key]["weight_decay"] = 0.0
        groups[key]["params"].append(parameter)
    return list(groups.values())


def optimizer_family(optimizer: torch.optim.Optimizer) -> str | None:
    """``"sgd"`` for torch.optim.SGD, ``"adam"`` for Adam/AdamW (subclasses too), else None."""
    if isinstance(optimizer, torch.optim.SGD):
        return "sgd"
    if isinstance(optimizer, (torch.optim.Adam, torch.optim.AdamW)):
        return "adam"
    return None


def apply_multipliers(optimizer: torch.optim.Optimizer) -> None:
    """Multiply each group's lr and weight decay by its muP and user multipliers (once, before any
    scheduler reads the lrs). Groups without linzoo's keys are left alone."""
    family = optimizer_family(optimizer)
    for group in optimizer.param_groups:
        if _KIND not in group:
            continue
        lr_mult, wd_mult = 1.0, 1.0
        if group[_WIDTH_MULT] != 1.0 or group[_KIND] != FIXED:
            if family is None:
                raise UserValueError(
                    f"linear=mup knows the learning-rate rules of SGD and Adam(W), not of {type(optimizer).__name__}. "
                    "Fix: optimizer=adamw or optimizer=sgd (or linear=default)."
                )
            lr_mult, wd_mult = lr_multipliers(group[_KIND], width_mult=group[_WIDTH_MULT], optimizer=family)
        group["lr"] = group["lr"] * lr_mult * group[_LR_MULT]
        group["weight_decay"] = group.get("weight_decay", 0.0) * wd_mult


def build_optimizer(net: nn.Module, factory: OptimizerFactory) -> torch.optim.Optimizer:
    """``factory`` (a Hydra partial, ``optimizer.roles`` allowed) applied to ``net``'s role groups."""
    factory, lr_mults = split_role_options(factory)
    optimizer = factory(role_param_groups(net, lr_mults=lr_mults))
    apply_multipliers(optimizer)
    return optimizer
