"""The standard deviation each weight init of the Linear factory gives: the one place that knows it.

For a weight block of shape [fan_out, fan_in] (a whole layer, or one row block of a fused Q/K/V
projection), every scheme of :data:`linzoo.layers.linear.WEIGHT_INITS` draws zero-mean entries
with the std below (gain: ``torch.nn.init.calculate_gain(nonlinearity, a)``; fan: the
``mode``'s fan):

    default          1 / sqrt(3 fan_in)              U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    kaiming_*        gain / sqrt(fan)                uniform and normal alike
    xavier_*         gain * sqrt(2 / (fan_in + fan_out))
    trunc_normal     0.8796 * std                    N(0, std^2) cut at +-2 std
    lecun_normal     1 / sqrt(fan_in)
    normal           std
    orthogonal       gain / sqrt(max(fan_in, fan_out))   min(fan_in, fan_out) orthonormal rows or
                                                          columns: sum of squares gain^2 * min(...)
    zeros            0

Statistics (``callbacks=role_stats``) compare measured stds with these; an init that changes a
scale (a new scheme, a muP multiplier) changes this file too.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from torch import nn

from linzoo.layers.linear import _TRUNC_STD_FACTOR, WEIGHT_INITS, FactoryLinear, LinearSpec

__all__ = ["expected_block_stds", "expected_std"]


def _kaiming(spec: LinearSpec, fan_in: int, fan_out: int) -> float:
    fan = fan_in if spec.mode == "fan_in" else fan_out
    return nn.init.calculate_gain(spec.nonlinearity, spec.a) / math.sqrt(fan)


def _xavier(spec: LinearSpec, fan_in: int, fan_out: int) -> float:
    return spec.gain * math.sqrt(2.0 / (fan_in + fan_out))


_STDS: dict[str, Callable[[LinearSpec, int, int], float]] = {
    "default": lambda spec, fan_in, fan_out: 1.0 / math.sqrt(3 * fan_in),
    "kaiming_uniform": _kaiming,
    "kaiming_normal": _kaiming,
    "xavier_uniform": _xavier,
    "xavier_normal": _xavier,
    "trunc_normal": lambda spec, fan_in, fan_out: _TRUNC_STD_FACTOR * spec.std,
    "lecun_normal": lambda spec, fan_in, fan_out: 1.0 / math.sqrt(fan_in),
    "normal": lambda spec, fan_in, fan_out: spec.std,
    "orthogonal": lambda spec, fan_in, fan_out: spec.gain / math.sqrt(max(fan_in, fan_out)),
    "zeros": lambda spec, fan_in, fan_out: 0.0,
}


def expected_std(spec: LinearSpec, *, fan_in: int, fan_out: int) -> float:
    """The std of the entries ``WEIGHT_INITS[spec.init]`` draws for a [fan_out, fan_in] block.

    ``spec`` is the block's resolved spec (``layer.block_specs[i]``: policy and role overrides
    applied).
    """
    if spec.init not in _STDS:
        known = "known to WEIGHT_INITS" if spec.init in WEIGHT_INITS else "unknown"
        raise ValueError(f"No expected std for init {spec.init!r} ({known}); add it to linzoo/layers/init_std.py.")
    return _STDS[spec.init](spec, fan_in, fan_out)


def expected_block_stds(layer: FactoryLinear) -> tuple[float, ...]:
    """The expected std of each row block of ``layer`` (one per ``layer.block_specs``).

    A block is [out_features / chunks, in_features], initialised by its own spec (so
    ``linear.roles.k.init=zeros`` gives 0 for the K block of a fused Q/K/V projection). Under muP
    the output layer's weight starts at sqrt(m) times its scheme's (``layer.weight_scale``,
    linzoo.layers.mup), and so does its expected std.
    """
    fan_out = layer.out_features // layer.chunks
    scale = getattr(layer, "weight_scale", 1.0)
    return tuple(scale * expected_std(spec, fan_in=layer.in_features, fan_out=fan_out) for spec in layer.block_specs)
