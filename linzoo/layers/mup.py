"""muP (Yang et al., Tensor Programs V, 2022) by role: the role decides input, hidden or output.

m = width / base_width is the width multiplier (``spec.width`` comes from the model,
``base_width`` from ``linear.mup``). At m = 1 muP equals the standard parametrization (SP).

    class   roles                                                  dims of the weight [out, in]
    input   patch, enc                                             [inf, fin]
    hidden  hidden, qkv (q, k, v), attn_out, ffn_in, ffn_out,      [inf, inf]
            channel_mix, dec
    output  head, lm_head                                          [fin, inf]
    fixed   token_mix (MLP-Mixer: [token_mlp_dim, num_patches])   [fin, fin]

A hidden-role layer that reads a fixed-size input (the MLP's first Linear reads the flattened
image) is an input layer: the model says so with ``make_linear(..., in_is_width=False)``.

token_mix is the one deviation from issue 22's table: its weight maps the patch axis
(num_patches) to token_mlp_dim, neither of which grows with the model width, so by mup's
own shape rule it has no infinite dimension (lr x1, init unchanged; width enters only as a
batch axis). Biases have the weight's output dim: [inf] for input/hidden, [fin] for output.

Init (as mup's ``set_base_shapes`` + ``MuReadout``): input and hidden weights keep their
fan-in scheme (variance ~ 1/fan_in already is muP); hidden and output biases with the
fan-in ``default`` scheme are multiplied by sqrt(m); the output weight is multiplied by
sqrt(m) (width-independent scale) and its forward is F.linear(x * output_mult / m, W, b).
``zero_readout``: output weight and bias start at 0; ``zero_query``: the q block starts at 0.

Learning-rate (and weight-decay) multipliers per parameter:

    parameter                            Adam(W): lr, wd     SGD: lr, wd
    hidden weight [inf, inf]             1/m, m              1, 1
    input weight, input/hidden bias,     1, 1                m, 1/m
    output weight (one inf dim)
    output bias, fixed weight/bias       1, 1                1, 1
    other params (norms, embeddings,     1, 1                m, 1/m
    position embeddings, CLS tokens)

"Other" parameters are vector-like (one width dim: a LayerNorm's [dim], an embedding's
[vocab, dim], a position embedding [1, T, dim]), as mup treats them by their shapes.
A tied ``lm_head`` weight IS the token embedding: it follows the embedding's rule (input-like:
Adam x1, SGD x m, the embedding's init); the head still applies output_mult / m in its forward.
Attention under muP scales logits by sqrt(d_base) / d (d = head dim, d_base = d / m): it
equals 1/sqrt(d) at m = 1 and goes like 1/d (the head count stays fixed as width grows).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from linzoo.common.checks import check_dataclass_types
from linzoo.common.errors import ConfigError

__all__ = [
    "MUP_CLASSES",
    "MupSpec",
    "attention_scale",
    "lr_multipliers",
    "mup_class",
    "parameter_kind",
]

# The muP class of every role (and sub-role); see the module docstring.
MUP_CLASSES: dict[str, str] = {
    "patch": "input",
    "enc": "input",
    "hidden": "hidden",
    "qkv": "hidden",
    "q": "hidden",
    "k": "hidden",
    "v": "hidden",
    "attn_out": "hidden",
    "ffn_in": "hidden",
    "ffn_out": "hidden",
    "channel_mix": "hidden",
    "dec": "hidden",
    "token_mix": "fixed",
    "head": "output",
    "lm_head": "output",
}

# Parameter kinds, by how many of their dims grow with width (mup's ``ninf``).
MATRIX = "matrix"  # two infinite dims: hidden weights
VECTOR = "vector"  # one infinite dim
FIXED = "fixed"  # none


@dataclass
class MupSpec:
    """``linear.mup``: the options of muP (``configs/linear/mup.yaml``).

    Attributes:
        base_width: the model width at which muP and SP coincide (m = width / base_width).
        output_mult: the output layer computes F.linear(x * output_mult / m, W, b).
        zero_query: the attention query block (sub-role ``q``) starts at zero.
        zero_readout: the output layer (head, untied lm_head) starts at zero.
    """

    base_width: int = 64
    output_mult: float = 1.0
    zero_query: bool = False
    zero_readout: bool = False

    def __post_init__(self) -> None:
        check_dataclass_types(self, prefix="linear.mup.")
        if self.base_width < 1:
            raise ConfigError("linear.mup.base_width", self.base_width, "an integer >= 1", "linear.mup.base_width=64")
        if not self.output_mult > 0:
            raise ConfigError("linear.mup.output_mult", self.output_mult, "a number > 0", "linear.mup.output_mult=1.0")


def mup_class(role: str, *, in_is_width: bool = True) -> str:
    """``"input"``, ``"hidden"``, ``"output"`` or ``"fixed"`` for a role or sub-role; a hidden-role
    layer whose input size does not grow with width (``in_is_width=False``) is ``"input"``."""
    klass = MUP_CLASSES[role]
    return "input" if klass == "hidden" and not in_is_width else klass


def parameter_kind(klass: str, *, is_bias: bool) -> str:
    """:data:`MATRIX`, :data:`VECTOR` or :data:`FIXED` for a weight or bias of a layer of muP class ``klass``."""
    if klass == "fixed" or (is_bias and klass == "output"):
        return FIXED
    if klass == "hidden" and not is_bias:
        return MATRIX
    return VECTOR


def lr_multipliers(kind: str, *, width_mult: float, optimizer: str) -> tuple[float, float]:
    """(lr multiplier, weight-decay multiplier) of a parameter ``kind`` under ``optimizer``
    (``"adam"`` or ``"sgd"``), as mup's MuAdam / MuSGD (hidden weights scale in and out alike)."""
    m = width_mult
    if optimizer == "adam":
        return (1.0 / m, m) if kind == MATRIX else (1.0, 1.0)
    if optimizer == "sgd":
        return (m, 1.0 / m) if kind == VECTOR else (1.0, 1.0)
    raise ValueError(f"optimizer must be 'adam' or 'sgd', not {optimizer!r}")


def attention_scale(head_dim: int, width_mult: float) -> float:
    """sqrt(d_base) / d with d_base = d / m, i.e. 1 / sqrt(d * m): 1/sqrt(d) at m = 1."""
    return 1.0 / math.sqrt(head_dim * width_mult)
