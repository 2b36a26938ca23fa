"""The one Linear factory that builds every affine map of every linzoo model.

A model never calls ``nn.Linear`` itself. It asks for a layer with a *role*::

    fc = make_linear(784, 256, role="hidden", spec=spec)

and the :class:`LinearSpec` decides bias, weight init and bias init, optionally per
role (``spec.roles["attn_out"] = {"init": "zeros"}``). Roles, not parameter names,
decide special inits such as GPT-2's scaled residual projections.

What comes back is a :class:`FactoryLinear`, a subclass of ``nn.Linear`` whose
``reset_parameters`` applies the chosen init, so ``state_dict`` loads into a plain
``nn.Linear`` and back, ``torch.compile``/AMP/DDP see an ordinary Linear, and
``init="default"`` reproduces ``nn.Linear`` bit for bit under the same seed.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from linzoo.common.checks import check_dataclass_types, check_value_type
from linzoo.common.errors import ConfigError, UserTypeError, UserValueError, did_you_mean
from linzoo.layers.mup import MupSpec, mup_class

__all__ = [
    "BIAS_INITS",
    "RESIDUAL_ROLES",
    "ROLES",
    "SUB_ROLES",
    "WEIGHT_INITS",
    "FactoryLazyLinear",
    "FactoryLinear",
    "LinearSpec",
    "as_linear_spec",
    "make_linear",
    "override_roles",
]

# Every role a linzoo model asks for. Overrides for other names are rejected, so a
# typo in ``linear.roles.<role>`` fails loudly instead of silently doing nothing.
ROLES: tuple[str, ...] = (
    "hidden",  # MLP hidden layers
    "head",  # classification heads (and their hidden layers)
    "patch",  # patch embedding of ViT / Mixer
    "qkv",  # attention Q, K, V projections (separate or fused)
    "attn_out",  # attention output projection (a residual projection)
    "ffn_in",  # feed-forward up projection (and the SwiGLU gate)
    "ffn_out",  # feed-forward down projection (a residual projection)
    "token_mix",  # MLP-Mixer token-mixing MLP
    "channel_mix",  # MLP-Mixer channel-mixing MLP
    "enc",  # autoencoder encoder
    "dec",  # autoencoder decoder
    "lm_head",  # language-model output head
)

# Sub-roles: the row blocks of a layer, named. A Q/K/V projection (role "qkv") is made of the
# blocks q, k and v: one block each when separate, three when fused. Overrides and adapters may
# name a sub-role (``linear.roles.q.init=zeros``, ``adapter.roles=[q,v]``); a sub-role's options
# are the role's, then its own overrides.
SUB_ROLES: dict[str, tuple[str, ...]] = {"qkv": ("q", "k", "v")}
_PARENT_ROLE: dict[str, str] = {sub: role for role, subs in SUB_ROLES.items() for sub in subs}

# Projections that write into the residual stream; the ``gpt2`` policy scales them.
RESIDUAL_ROLES: tuple[str, ...] = ("attn_out", "ffn_out")

POLICIES: tuple[str, ...] = ("none", "gpt2")

# Weight schemes whose scale goes like 1/sqrt(fan_in) (kaiming_* only with mode=fan_in), the ones
# muP builds on; zeros is fine too. linear.mup refuses the others (fixed-std or fan-out schemes).
FAN_IN_INITS: tuple[str, ...] = ("default", "kaiming_uniform", "kaiming_normal", "lecun_normal", "zeros")

# Trunc-normal at +-2 std has standard deviation 0.8796... of the untruncated one.
_TRUNC_STD_FACTOR = 0.87962566103423978

_DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "float": torch.float32,
    "float64": torch.float64,
    "double": torch.float64,
    "float16": torch.float16,
    "half": torch.float16,
    "bfloat16": torch.bfloat16,
}


@dataclass
class LinearSpec:
    """Options of the Linear factory; Hydra fills it from ``configs/linear/*.yaml``.

    Attributes:
        bias: whether layers have a bias.
        init: weight scheme, a key of :data:`WEIGHT_INITS`.
        bias_init: bias scheme, a key of :data:`BIAS_INITS`.
        std: standard deviation for ``normal`` and ``trunc_normal``.
        gain: gain for ``xavier_*`` and ``orthogonal``.
        a: negative slope for ``kaiming_*`` with ``nonlinearity="leaky_relu"``.
        mode: ``"fan_in"`` or ``"fan_out"`` for ``kaiming_*``.
        nonlinearity: nonlinearity name for ``kaiming_*`` (``torch.nn.init.calculate_gain``).
        bias_value: value for ``bias_init="constant"``.
        policy: ``"none"`` or ``"gpt2"``: normal(0, 0.02) everywhere and
            std 0.02/sqrt(2 * num_layers) for the residual roles ``attn_out``/``ffn_out``.
        num_layers: depth used by the ``gpt2`` policy; models with blocks fill it in.
        roles: per-role overrides of any field above, e.g. ``{"attn_out": {"init": "zeros"}}``.
            They are applied after the policy, so they always win.
        device: device of new parameters (``"meta"`` for deferred init), or None.
        dtype: dtype name of new parameters (``"bfloat16"``, ...) or None for the default.
        width: the model's width (muP's m = width / mup.base_width); models fill it in
            (``spec.with_width``): MLP hidden_dims[0], transformer/lm/mixer dim.
        mup: muP options (:class:`linzoo.layers.mup.MupSpec`, ``linear=mup``) or None for SP.
    """

    bias: bool = True
    init: str = "default"
    bias_init: str = "default"
    std: float = 0.02
    gain: float = 1.0
    a: float = 0.0
    mode: str = "fan_in"
    nonlinearity: str = "leaky_relu"
    bias_value: float = 0.0
    policy: str = "none"
    num_layers: int | None = None
    roles: dict[str, dict[str, Any]] = field(default_factory=dict)
    device: str | None = None
    dtype: str | None = None
    width: int | None = None
    mup: MupSpec | None = None

    def __post_init__(self) -> None:
        check_dataclass_types(self, prefix="linear.")  # bias="no" is an error, not True
        if isinstance(self.mup, Mapping):  # from a config or a checkpoint
            self.mup = _mup_spec(self.mup)
        if self.mup is not None and not isinstance(self.mup, MupSpec):
            raise UserTypeError(f"linear.mup must be a MupSpec, a mapping or null, not {type(self.mup).__name__}.")
        if self.width is not None and self.width < 1:
            raise ConfigError("linear.width", self.width, "an integer >= 1", "leave linear.width to the model")
        if self.std <= 0:
            raise ConfigError("linear.std", self.std, "a standard deviation > 0", "linear.std=0.02")
        _check_name("linear.init", self.init, WEIGHT_INITS)
        _check_name("linear.bias_init", self.bias_init, BIAS_INITS)
        _check_name("linear.policy", self.policy, POLICIES)
        _check_name("linear.mode", self.mode, ("fan_in", "fan_out"))
        if self.dtype is not None:
            _check_name("linear.dtype", self.dtype, _DTYPES)
        # A null override (from a Hydra config slot) means "inherit"; empty roles are dropped.
        roles = {
            role: {k: v for k, v in dict(over or {}).items() if v is not None} for role, over in self.roles.items()
        }
        self.roles = {role: overrides for role, overrides in roles.items() if overrides}
        overridable = overridable_fields()
        for role, overrides in self.roles.items():
            _check_name("linear.roles.<role>", role, override_roles(), what="role")
            for key, value in overrides.items():
                _check_name(f"linear.roles.{role}.<key>", key, overridable, what="key")
                check_value_type(f"linear.roles.{role}.{key}", value, _FIELD_TYPES[key])
                if key in ("init", "bias_init"):
                    _check_name(f"linear.roles.{role}.{key}", value, WEIGHT_INITS if key == "init" else BIAS_INITS)

    def with_depth(self, num_layers: int) -> LinearSpec:
        """A copy whose ``num_layers`` is set (models with residual blocks call this)."""
        return dataclasses.replace(self, num_layers=num_layers)

    def with_width(self, width: int) -> LinearSpec:
        """A copy whose ``width`` is set (models call this; muP's m = width / mup.base_width)."""
        return dataclasses.replace(self, width=width)

    @property
    def width_mult(self) -> float:
        """muP's m = width / mup.base_width; 1.0 without muP."""
        if self.mup is None:
            return 1.0
        if self.width is None:
            raise UserValueError(
                "linear=mup needs the model's width, and this model does not set it (spec.with_width). "
                "muP covers the models whose Linears carry the width: mlp, transformer, lm and mixer. "
                "Fix: use linear=default with this model, or one of those models."
            )
        return self.width / self.mup.base_width

    def with_role(self, role: str, **overrides: Any) -> LinearSpec:
        """A copy with ``overrides`` added to ``roles[role]``, e.g. ``with_role("qkv", bias=False)``."""
        merged = {**self.roles.get(role, {}), **overrides}
        return dataclasses.replace(self, roles={**self.roles, role: merged})

    def for_role(self, role: str) -> LinearSpec:
        """The spec one layer (or row block) of ``role`` gets: policy applied, then the role's overrides.

        A sub-role (``q``) gets its role's (``qkv``) overrides first, then its own.
        """
        _check_name("role", role, override_roles(), what="role")
        parent = _PARENT_ROLE.get(role)
        resolved: dict[str, Any] = {}
        if self.policy == "gpt2":
            resolved.update(init="normal", std=0.02)
            if role in RESIDUAL_ROLES:
                if self.num_layers is None:
                    raise UserValueError(
                        f"The gpt2 policy scales '{role}' by the model depth, but the spec has "
                        "no num_layers; build it with spec.with_depth(num_layers)."
                    )
                resolved["std"] = 0.02 / math.sqrt(2 * self.num_layers)
        if self.mup is not None:
            zero = (self.mup.zero_query and role == "q") or (self.mup.zero_readout and mup_class(role) == "output")
            if zero:
                resolved.update(init="zeros", bias_init="zeros")
        if parent is not None:
            resolved.update(self.roles.get(parent, {}))
        resolved.update(self.roles.get(role, {}))
        return dataclasses.replace(self, policy="none", roles={}, **resolved)

    @property
    def torch_dtype(self) -> torch.dtype | None:
        return None if self.dtype is None else _DTYPES[self.dtype]


_FIELD_TYPES = typing.get_type_hints(LinearSpec)


def override_roles() -> tuple[str, ...]:
    """Every name ``linear.roles.<name>`` takes: the roles, then the sub-roles (q, k, v)."""
    return ROLES + tuple(_PARENT_ROLE)


def overridable_fields() -> tuple[str, ...]:
    """Fields a per-role override may set."""
    return tuple(f.name for f in fields(LinearSpec) if f.name not in ("roles", "policy", "num_layers", "width", "mup"))


def _mup_spec(options: Mapping[str, Any]) -> MupSpec:
    """``linear.mup`` from a mapping; an unknown key is refused with the valid ones."""
    valid = tuple(f.name for f in fields(MupSpec))
    for key in options:
        _check_name("linear.mup.<key>", key, valid, what="key")
    return MupSpec(**{key: options[key] for key in options})


def _check_name(setting: str, value: Any, valid: Mapping[str, Any] | tuple[str, ...], *, what: str = "value") -> None:
    """``linear.init=glorot: unknown value; valid: ... Did you mean ...?`` unless ``value`` is valid.

    ``setting`` may hold a ``<role>``/``<key>`` placeholder, filled with ``value``.
    """
    if value in valid:
        return
    if "<" in setting:
        shown = setting.replace("<role>" if what == "role" else "<key>", str(value))
    else:
        shown = f"{setting}={value}"
    hint = did_you_mean(str(value), valid)
    raise UserValueError(f"{shown}: unknown {what} {value!r}; valid: {', '.join(sorted(valid))}.{hint}")


def as_linear_spec(spec: LinearSpec | Mapping[str, Any] | None) -> LinearSpec:
    """Accept a :class:`LinearSpec`, a mapping of its fields (e.g. a Hydra DictConfig) or None."""
    if spec is None:
        return LinearSpec()
    if isinstance(spec, LinearSpec):
        return spec
    if isinstance(spec, Mapping):
        data = {key: spec[key] for key in spec if key != "_target_"}
        unknown = sorted(set(data) - {f.name for f in fields(LinearSpec)})
        if unknown:
            valid = ", ".join(f.name for f in fields(LinearSpec))
            raise UserValueError(f"Unknown linear option(s) {unknown}; valid: {valid}.")
        if data.get("roles") is None:  # ``roles: null`` in a config means no overrides
            data.pop("roles", None)
        else:
            data["roles"] = {role: dict(over or {}) for role, over in data["roles"].items()}
        return LinearSpec(**data)
    raise UserTypeError(f"spec must be a LinearSpec, a mapping or None, not {type(spec).__name__}.")


# --- weight and bias schemes -------------------------------------------------------
# Each takes the weight block ([out, in]) and the spec, and fills it in place.

WeightInit = Callable[[torch.Tensor, LinearSpec], None]
BiasInit = Callable[[torch.Tensor, LinearSpec, int], None]


def _default_weight(weight: torch.Tensor, spec: LinearSpec) -> None:
    """nn.Linear's: U(-1/sqrt(fan_in), 1/sqrt(fan_in)), via kaiming_uniform(a=sqrt(5))."""
    nn.init.kaiming_uniform_(weight, a=math.sqrt(5))


def _kaiming_uniform(weight: torch.Tensor, spec: LinearSpec) -> None:
    """U(-b, b), b = gain(nonlinearity, a) * sqrt(3 / fan_mode)."""
    nn.init.kaiming_uniform_(weight, a=spec.a, mode=spec.mode, nonlinearity=spec.nonlinearity)


def _kaiming_normal(weight: torch.Tensor, spec: LinearSpec) -> None:
    """N(0, std^2), std = gain(nonlinearity, a) / sqrt(fan_mode)."""
    nn.init.kaiming_normal_(weight, a=spec.a, mode=spec.mode, nonlinearity=spec.nonlinearity)


def _xavier_uniform(weight: torch.Tensor, spec: LinearSpec) -> None:
    """U(-b, b), b = gain * sqrt(6 / (fan_in + fan_out))."""
    nn.init.xavier_uniform_(weight, gain=spec.gain)


def _xavier_normal(weight: torch.Tensor, spec: LinearSpec) -> None:
    """N(0, std^2), std = gain * sqrt(2 / (fan_in + fan_out))."""
    nn.init.xavier_normal_(weight, gain=spec.gain)


def _trunc_normal(weight: torch.Tensor, spec: LinearSpec) -> None:
    """N(0, std^2) truncated at +-2 std (so the sample std is 0.8796 * std)."""
    nn.init.trunc_normal_(weight, mean=0.0, std=spec.std, a=-2 * spec.std, b=2 * spec.std)


def _lecun_normal(weight: torch.Tensor, spec: LinearSpec) -> None:
    """Truncated normal (+-2 sigma) rescaled so the final std is 1/sqrt(fan_in), as in JAX/timm."""
    sigma = 1.0 / math.sqrt(weight.shape[1]) / _TRUNC_STD_FACTOR
    nn.init.trunc_normal_(weight, mean=0.0, std=sigma, a=-2 * sigma, b=2 * sigma)


def _normal(weight: torch.Tensor, spec: LinearSpec) -> None:
    """N(0, std^2), std = spec.std (0.02 by default)."""
    nn.init.normal_(weight, mean=0.0, std=spec.std)


def _orthogonal(weight: torch.Tensor, spec: LinearSpec) -> None:
    """A (semi-)orthogonal matrix times gain."""
    nn.init.orthogonal_(weight, gain=spec.gain)


def _zeros_weight(weight: torch.Tensor, spec: LinearSpec) -> None:
    nn.init.zeros_(weight)


WEIGHT_INITS: dict[str, WeightInit] = {
    "default": _default_weight,
    "kaiming_uniform": _kaiming_uniform,
    "kaiming_normal": _kaiming_normal,
    "xavier_uniform": _xavier_uniform,
    "xavier_normal": _xavier_normal,
    "trunc_normal": _trunc_normal,
    "lecun_normal": _lecun_normal,
    "normal": _normal,
    "orthogonal": _orthogonal,
    "zeros": _zeros_weight,
}


def _default_bias(bias: torch.Tensor, spec: LinearSpec, fan_in: int) -> None:
    """nn.Linear's: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
    nn.init.uniform_(bias, -bound, bound)


def _zeros_bias(bias: torch.Tensor, spec: LinearSpec, fan_in: int) -> None:
    nn.init.zeros_(bias)


def _constant_bias(bias: torch.Tensor, spec: LinearSpec, fan_in: int) -> None:
    nn.init.constant_(bias, spec.bias_value)


BIAS_INITS: dict[str, BiasInit] = {
    "default": _default_bias,
    "zeros": _zeros_bias,
    "constant": _constant_bias,
}


# --- the layer ---------------------------------------------------------------------


class FactoryLinear(nn.Linear):
    """``nn.Linear`` whose ``reset_parameters`` applies a :class:`LinearSpec` scheme.

    y = x W^T + b (+ adapter(x)), x: [..., in_features] -> y: [..., out_features].

    ``chunks > 1`` initialises the weight as that many independent row blocks (a fused
    Q/K/V projection is initialised as three separate layers would be). ``sub_roles`` name the
    blocks (``("q", "k", "v")`` fused, ``("q",)`` for a separate Q) and ``block_specs`` give
    each block its own spec (``linear.roles.k.init=zeros`` zeroes only the K rows).

    ``adapter`` is an optional module added to the output (a LoRA update, linzoo.layers.lora);
    None by default, so the layer computes exactly ``F.linear``.

    Under muP (``spec.mup``, linzoo.layers.mup) an output-role layer computes
    F.linear(x * output_mult / m, W, b) and starts with W (and a ``default`` bias) times sqrt(m);
    a hidden-role layer's ``default`` bias starts times sqrt(m). At m = 1 nothing changes.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        role: str,
        spec: LinearSpec,
        chunks: int = 1,
        sub_roles: tuple[str, ...] = (),
        block_specs: tuple[LinearSpec, ...] = (),
        in_is_width: bool = True,
    ) -> None:
        # Set before nn.Linear.__init__, which calls reset_parameters() exactly once.
        self.role = role
        self.mup_class = mup_class(role, in_is_width=in_is_width)  # input, hidden, output or fixed
        self.spec = spec
        self.chunks = chunks
        self.sub_roles = sub_roles
        self.block_specs = block_specs or (spec,) * chunks
        self.input_scale, self.weight_scale, self.bias_scale = _mup_scales(self.mup_class, spec)
        super().__init__(in_features, out_features, bias=spec.bias, device=spec.device, dtype=spec.torch_dtype)
        self.adapter: nn.Module | None = None

    def reset_parameters(self) -> None:
        if self.in_features == 0:  # uninitialised lazy layer: nothing to fill yet
            return
        with torch.no_grad():
            for block, block_spec in zip(self.weight.chunk(self.chunks, dim=0), self.block_specs, strict=True):
                WEIGHT_INITS[block_spec.init](block, block_spec)
            if self.weight_scale != 1.0:
                self.weight.mul_(self.weight_scale)
            if self.bias is None:
                return
            if len({(s.bias_init, s.bias_value) for s in self.block_specs}) == 1:  # one scheme: the whole bias
                BIAS_INITS[self.block_specs[0].bias_init](self.bias, self.block_specs[0], self.in_features)
            else:
                for block, block_spec in zip(self.bias.chunk(self.chunks), self.block_specs, strict=True):
                    BIAS_INITS[block_spec.bias_init](block, block_spec, self.in_features)
            if self.bias_scale != 1.0:  # only the fan-in ("default") scheme depends on the width
                for block, block_spec in zip(self.bias.chunk(self.chunks), self.block_specs, strict=True):
                    if block_spec.bias_init == "default":
                        block.mul_(self.bias_scale)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if self.input_scale != 1.0:  # muP output layer: x * output_mult / m
            input = input * self.input_scale
        try:
            output = F.linear(input, self.weight, self.bias)
        except RuntimeError as error:
            problem = self._explain_bad_input(input)
            if problem is None:
                raise
            raise problem from error
        if self.adapter is not None:
            output = output + self.adapter(input)
        return output

    def _explain_bad_input(self, input: torch.Tensor) -> Exception | None:
        """Turn torch's matmul errors into messages that name the fix (checked only on failure)."""
        if not (input.is_floating_point() or input.is_complex()):
            return TypeError(
                f"Linear (role '{self.role}') got an integer tensor ({input.dtype}); convert it with .float() first."
            )
        if input.dim() == 0 or input.shape[-1] != self.in_features:
            got = "a scalar" if input.dim() == 0 else f"last dimension {input.shape[-1]}"
            return ValueError(
                f"Linear (role '{self.role}') expects in_features={self.in_features} "
                f"in the last dimension, got {got} (input shape {tuple(input.shape)})."
            )
        if input.dtype != self.weight.dtype and not torch.is_autocast_enabled():
            return TypeError(
                f"Linear (role '{self.role}') has {self.weight.dtype} weights but got a "
                f"{input.dtype} input; convert with .to({self.weight.dtype}) or move the model "
                f"with .to({input.dtype})."
            )
        return None

    def extra_repr(self) -> str:
        sub_roles = f", sub_roles={','.join(self.sub_roles)}" if self.sub_roles else ""
        mup = f", mup={self.mup_class}" if self.spec.mup is not None else ""
        return f"{super().extra_repr()}, role={self.role}{sub_roles}, init={self.spec.init}{mup}"


class FactoryLazyLinear(nn.modules.lazy.LazyModuleMixin, FactoryLinear):
    """A :class:`FactoryLinear` whose ``in_features`` is inferred from its first input."""

    cls_to_become = FactoryLinear
    weight: nn.parameter.UninitializedParameter
    bias: nn.parameter.UninitializedParameter  # type: ignore[assignment]

    def __init__(
        self,
        out_features: int,
        *,
        role: str,
        spec: LinearSpec,
        chunks: int = 1,
        sub_roles: tuple[str, ...] = (),
        block_specs: tuple[LinearSpec, ...] = (),
        in_is_width: bool = True,
    ) -> None:
        super().__init__(
            0,
            0,
            role=role,
            spec=dataclasses.replace(spec, bias=False),
            chunks=chunks,
            sub_roles=sub_roles,
            in_is_width=in_is_width,
        )
        self.spec = spec
        self.block_specs = block_specs or (spec,) * chunks
        self.weight = nn.parameter.UninitializedParameter(device=spec.device, dtype=spec.torch_dtype)
        self.out_features = out_features
        if spec.bias:
            self.bias = nn.parameter.UninitializedParameter(device=spec.device, dtype=spec.torch_dtype)

    def reset_parameters(self) -> None:
        if not self.has_uninitialized_params() and self.in_features != 0:
            super().reset_parameters()

    def initialize_parameters(self, input: torch.Tensor) -> None:  # type: ignore[override]
        if self.has_uninitialized_params():
            with torch.no_grad():
                self.in_features = input.shape[-1]
                self.weight.materialize((self.out_features, self.in_features))
                if self.bias is not None:
                    self.bias.materialize((self.out_features,))
                self.reset_parameters()


def make_linear(
    in_features: int | None,
    out_features: int,
    *,
    role: str,
    spec: LinearSpec | Mapping[str, Any] | None = None,
    chunks: int = 1,
    sub_roles: tuple[str, ...] = (),
    in_is_width: bool = True,
) -> FactoryLinear:
    """Build the Linear for ``role`` from ``spec``: the one way linzoo makes an affine map.

    Args:
        in_features: input size, or None for a lazy layer that infers it on first input.
        out_features: output size.
        role: what the layer is for, one of :data:`ROLES`; selects per-role overrides.
        spec: factory options (a :class:`LinearSpec`, a mapping of its fields, or None).
        chunks: number of independently initialised row blocks (3 for fused Q/K/V).
        sub_roles: names of the row blocks, from :data:`SUB_ROLES` of ``role`` (``("q", "k", "v")``
            for a fused Q/K/V projection, ``("q",)`` for a separate Q); sets ``chunks``. Each
            block gets ``spec.for_role(sub_role)``: the role's options, then the sub-role's.
        in_is_width: False when ``in_features`` is a fixed input size that does not grow with
            the model width (the MLP's first Linear); muP then treats a hidden-role layer as an
            input layer (linzoo.layers.mup). No effect without muP.

    Returns:
        A :class:`FactoryLinear` (an ``nn.Linear``), or a :class:`FactoryLazyLinear`.
    """
    for name, size in (("in_features", in_features), ("out_features", out_features)):
        if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 1):
            raise UserValueError(
                f"make_linear(role={role!r}): {name}={size}, expected an integer >= 1 (a layer of width 0 "
                "cannot learn). Fix: give every width of the model (dim, hidden_dims, ...) a value >= 1."
            )
    full_spec = as_linear_spec(spec)
    layer_spec = full_spec.for_role(role)
    block_specs: tuple[LinearSpec, ...] = ()
    if sub_roles:
        for sub_role in sub_roles:
            _check_name(f"make_linear(role={role!r}) sub_roles", sub_role, SUB_ROLES.get(role, ()), what="sub-role")
        if chunks not in (1, len(sub_roles)):
            raise UserValueError(f"chunks={chunks} does not match sub_roles={sub_roles}; leave chunks out.")
        chunks = len(sub_roles)
        block_specs = tuple(full_spec.for_role(sub_role) for sub_role in sub_roles)
        layer_spec = _one_layer_spec(role, sub_roles, block_specs)
    if out_features % chunks != 0:
        raise UserValueError(f"out_features={out_features} is not divisible by chunks={chunks}.")
    for sub_role, block_spec in zip(sub_roles or (role,), block_specs or (layer_spec,)):
        _check_mup_init(sub_role, block_spec)
    options = {
        "role": role,
        "spec": layer_spec,
        "chunks": chunks,
        "sub_roles": sub_roles,
        "block_specs": block_specs,
        "in_is_width": in_is_width,
    }
    if in_features is None:
        return FactoryLazyLinear(out_features, **options)
    return FactoryLinear(in_features, out_features, **options)


def _mup_scales(klass: str, spec: LinearSpec) -> tuple[float, float, float]:
    """(input scale, weight init scale, bias init scale) of a layer of muP class ``klass``:
    output: (output_mult / m, sqrt(m), sqrt(m)); hidden: (1, 1, sqrt(m)); else (1, 1, 1)."""
    if spec.mup is None:
        return 1.0, 1.0, 1.0
    m = spec.width_mult
    if klass == "output":
        return spec.mup.output_mult / m, math.sqrt(m), math.sqrt(m)
    if klass == "hidden":
        return 1.0, 1.0, math.sqrt(m)
    return 1.0, 1.0, 1.0


def _check_mup_init(role: str, spec: LinearSpec) -> None:
    """muP builds on fan-in inits (variance ~ 1/fan_in); refuse fixed-std or fan-out schemes."""
    if spec.mup is None:
        return
    if spec.init not in FAN_IN_INITS or (spec.init.startswith("kaiming") and spec.mode != "fan_in"):
        raise UserValueError(
            f"linear=mup: role '{role}' has init={spec.init} (mode={spec.mode}), whose scale does not go like "
            f"1/sqrt(fan_in); muP rescales fan-in inits only ({', '.join(FAN_IN_INITS)}; kaiming_* with "
            "mode=fan_in). Fix: linear.init=default (or drop the role's init override)."
        )


def _one_layer_spec(role: str, sub_roles: tuple[str, ...], block_specs: tuple[LinearSpec, ...]) -> LinearSpec:
    """The layer-wide spec of a layer made of ``sub_roles`` blocks: the first block's. Options that
    belong to the whole layer (bias on/off, dtype, device) must agree between the blocks."""
    for key in ("bias", "dtype", "device"):
        values = {getattr(block, key) for block in block_specs}
        if len(values) > 1:
            shown = ", ".join(f"{sub}: {getattr(block, key)}" for sub, block in zip(sub_roles, block_specs))
            raise UserValueError(
                f"linear.roles.<{'|'.join(sub_roles)}>.{key} differ ({shown}), but the {'/'.join(sub_roles)} blocks "
                f"of a fused '{role}' projection are one Linear with one {key}. Fix: set linear.roles.{role}.{key} "
                "instead, or use separate projections (model.net.fused_qkv=false)."
            )
    return block_specs[0]
