"""Adapters on a built net, chosen by role: LoRA on the factory's Linears (plain PyTorch).

    net = create_model("transformer", fused_qkv=True)
    add_adapters(net, {"kind": "lora", "rank": 8, "alpha": 16, "roles": ["q", "v"]})
    train_only_adapters(net)         # base frozen: only A, B and the head train
    ...
    merge_adapters(net)              # W += (alpha / rank) B A; the net is plain again

``roles`` names roles (``qkv``, ``attn_out``, ``ffn_in``, ``head``, ...), sub-roles (``q``, ``k``,
``v``: blocks of a Q/K/V projection, separate or fused), or is ``all`` / ``all_but_head`` (every
Linear but those of role ``head`` and ``lm_head``). A Linear made of sub-role blocks gets one
update per selected block (linzoo.layers.lora), so fused and separate projections adapt alike.
A Linear whose weight is shared (the LM head tied to the token embedding) gets no adapter:
merging into it would change the other user of the weight too.

``create_model(name, adapter={...})`` and every net rebuilt from a checkpoint whose net config
holds ``adapter`` apply :func:`add_adapters` after building the net.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from linzoo.common.checks import is_int, is_number
from linzoo.common.errors import ConfigError, UserValueError, closest, did_you_mean
from linzoo.layers.linear import FactoryLinear, override_roles
from linzoo.layers.lora import LoRA
from linzoo.models.transfer import set_trainable

__all__ = [
    "ADAPTER_KINDS",
    "HEAD_ROLES",
    "LoRAOptions",
    "adapter_parameters",
    "adapted_layers",
    "add_adapters",
    "lora_options",
    "merge_adapters",
    "train_only_adapters",
]

ADAPTER_KINDS: tuple[str, ...] = ("lora",)
ROLE_SETS: tuple[str, ...] = ("all", "all_but_head")
HEAD_ROLES: tuple[str, ...] = ("head", "lm_head")


@dataclass(frozen=True)
class LoRAOptions:
    """LoRA settings (configs/adapter/lora.yaml): update (alpha / rank) B A on the Linears of ``roles``."""

    rank: int = 8
    alpha: float = 16.0
    dropout: float = 0.0
    roles: tuple[str, ...] = ("q", "v")


def lora_options(config: Mapping[str, Any], *, prefix: str = "adapter.") -> LoRAOptions:
    """Checked :class:`LoRAOptions` from ``{"kind": "lora", "rank": ..., "alpha": ..., "dropout": ..., "roles": ...}``;
    a bad key or value is one :class:`ConfigError` naming the setting and the fix."""
    valid_keys = ("kind", "rank", "alpha", "dropout", "roles")
    for key in config:
        if key not in valid_keys:
            raise ConfigError(
                f"{prefix}{key}",
                config[key],
                "a LoRA setting",
                f"remove it or correct the spelling.{did_you_mean(str(key), valid_keys, prefix=prefix)} "
                f"Valid keys: {', '.join(valid_keys)}",
            )
    kind = config.get("kind", "lora")
    if kind not in ADAPTER_KINDS:
        raise ConfigError(f"{prefix}kind", kind, f"one of {', '.join(ADAPTER_KINDS)}", "adapter=lora")
    rank = config.get("rank", LoRAOptions.rank)
    if not (is_int(rank) and rank >= 1):
        raise ConfigError(f"{prefix}rank", rank, "an integer >= 1", f"{prefix}rank=8", number=True)
    alpha = config.get("alpha", LoRAOptions.alpha)
    if not (is_number(alpha) and alpha > 0):
        raise ConfigError(
            f"{prefix}alpha",
            alpha,
            "a number > 0 (the update is scaled by alpha / rank)",
            f"{prefix}alpha=16",
            number=True,
        )
    dropout = config.get("dropout", LoRAOptions.dropout)
    if not (is_number(dropout) and 0 <= dropout < 1):
        raise ConfigError(f"{prefix}dropout", dropout, "a probability in [0, 1)", f"{prefix}dropout=0.0", number=True)
    roles = config.get("roles", LoRAOptions.roles)
    roles = (roles,) if isinstance(roles, str) else tuple(roles)
    valid_roles = (*override_roles(), *ROLE_SETS)
    unknown = [role for role in roles if role not in valid_roles]
    if unknown:
        fixed = [(closest(str(role), valid_roles) or role) if role in unknown else role for role in roles]
        fixed = [role for role in fixed if role in valid_roles] or ["q", "v"]
        guess = closest(str(unknown[0]), valid_roles)
        raise ConfigError(
            f"{prefix}roles",
            list(roles),
            f"names of roles, and {unknown[0]} is none{f' (did you mean {guess}?)' if guess else ''}; "
            f"valid: {', '.join(valid_roles)}",
            f"'{prefix}roles=[{','.join(fixed)}]'",
        )
    if not roles:
        raise ConfigError(
            f"{prefix}roles", [], "at least one role (adapter=none for no adapter)", f"'{prefix}roles=[q,v]'"
        )
    return LoRAOptions(rank=int(rank), alpha=float(alpha), dropout=float(dropout), roles=roles)


def _selected_blocks(layer: FactoryLinear, roles: Sequence[str]) -> tuple[int, ...]:
    """Indices of ``layer``'s row blocks that ``roles`` select (all when its role is selected)."""
    if "all" in roles or layer.role in roles or ("all_but_head" in roles and layer.role not in HEAD_ROLES):
        return tuple(range(len(layer.sub_roles) or 1))
    return tuple(index for index, sub_role in enumerate(layer.sub_roles) if sub_role in roles)


def _factory_linears(net: nn.Module) -> Iterator[tuple[str, FactoryLinear]]:
    for name, module in net.named_modules():
        if isinstance(module, FactoryLinear):
            yield name, module


def add_adapters(net: nn.Module, adapter: Mapping[str, Any] | LoRAOptions) -> nn.Module:
    """Give every factory Linear of the selected roles a fresh LoRA adapter (in place); returns ``net``.

    A fresh adapter adds exact zeros (B = 0), so the net's outputs do not change.
    """
    options = adapter if isinstance(adapter, LoRAOptions) else lora_options(adapter)
    if adapted_layers(net):
        raise UserValueError(
            f"{type(net).__name__} already has adapters ({', '.join(adapted_layers(net))}); "
            "merge them first (merge_adapters) or build the net anew."
        )
    uses = Counter(id(parameter) for _, parameter in net.named_parameters(remove_duplicate=False))
    added, tied = 0, []
    for name, layer in _factory_linears(net):
        selected = _selected_blocks(layer, options.roles)
        if not selected:
            continue
        if uses[id(layer.weight)] > 1:
            tied.append(name)
            continue
        if layer.in_features == 0:
            raise UserValueError(
                f"The Linear {name} (role '{layer.role}') is lazy; run one input through the net first."
            )
        layer.adapter = LoRA(
            layer.in_features,
            layer.out_features,
            blocks=len(layer.sub_roles) or 1,
            selected=selected,
            rank=options.rank,
            alpha=options.alpha,
            dropout=options.dropout,
            device=layer.weight.device,
            dtype=layer.weight.dtype,
        )
        added += 1
    if added == 0:
        built = sorted(
            {layer.role for _, layer in _factory_linears(net)}
            | {s for _, m in _factory_linears(net) for s in m.sub_roles}
        )
        why = f" (its Linears {', '.join(tied)} share their weight, which an adapter cannot merge into)" if tied else ""
        raise UserValueError(
            f"adapter.roles=[{','.join(options.roles)}] selects no Linear of {type(net).__name__}{why}. "
            f"Roles it builds: {', '.join(built)}."
        )
    return net


def adapted_layers(net: nn.Module) -> dict[str, FactoryLinear]:
    """``{module name: Linear}`` of the Linears that carry an adapter."""
    return {name: layer for name, layer in _factory_linears(net) if layer.adapter is not None}


def adapter_parameters(net: nn.Module) -> list[nn.Parameter]:
    """The adapters' own parameters (every LoRA's A and B)."""
    return [parameter for layer in adapted_layers(net).values() for parameter in layer.adapter.parameters()]


def merge_adapters(net: nn.Module) -> nn.Module:
    """Fold every adapter into its Linear (W += s * B A on the selected rows) and remove it; returns ``net``.

    The merged net is a plain linzoo net (no adapter keys) and computes the same outputs
    (up to float rounding; without adapter dropout, which is off in eval mode).
    """
    for layer in adapted_layers(net).values():
        with torch.no_grad():
            layer.weight += layer.adapter.delta_weight().to(layer.weight.dtype)
        del layer.adapter  # out of the module tree (and its repr); the slot stays, empty
        layer.adapter = None
    return net


def train_only_adapters(net: nn.Module, *, train_roles: Sequence[str] = ("head",)) -> None:
    """Freeze ``net`` but its adapters and the Linears of ``train_roles`` (default: the
    classification head, which a new task needs to learn): ``requires_grad = False`` elsewhere.

    What ``adapter=lora`` trains unless ``finetune.train_roles`` says otherwise: the rule of
    :func:`linzoo.models.transfer.set_trainable` (adapters always train), other parameters frozen.
    """
    set_trainable(net, roles=list(train_roles), train_other=False)
