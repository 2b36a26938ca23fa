"""Name -> model class registry: ``create_model("mlp", hidden_dims=(64,))``."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from torch import nn

from linzoo.common.checks import check_net_options
from linzoo.common.errors import UserTypeError, UserValueError, did_you_mean
from linzoo.models.adapters import add_adapters

__all__ = ["create_model", "list_models", "model_class", "name_for_target", "name_of", "register_model"]

ModelClass = TypeVar("ModelClass", bound=Callable[..., nn.Module])

_MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str) -> Callable[[ModelClass], ModelClass]:
    """Class decorator that makes ``create_model(name, ...)`` build the class."""

    def register(model_class: ModelClass) -> ModelClass:
        if name in _MODELS and _MODELS[name] is not model_class:
            raise ValueError(f"A model named {name!r} is already registered ({_MODELS[name]!r}).")
        _MODELS[name] = model_class
        return model_class

    return register


def create_model(name: str, *, adapter: Mapping[str, Any] | None = None, **kwargs: Any) -> nn.Module:
    """Build the registered model ``name`` with keyword arguments ``kwargs``.

    ``adapter`` (e.g. ``{"kind": "lora", "rank": 8, "alpha": 16, "roles": ["q", "v"]}``) adds fresh
    adapters to the built net by role (linzoo.models.adapters.add_adapters); None: none.
    """
    if name not in _MODELS:
        raise UserValueError(f"Unknown model {name!r}; valid: {', '.join(list_models())}.{did_you_mean(name, _MODELS)}")
    accepted = [p for p in inspect.signature(_MODELS[name]).parameters if p not in ("self", "args", "kwargs")]
    for key in kwargs:
        if key not in accepted:
            raise UserTypeError(
                f"create_model({name!r}) got an unknown option {key}={kwargs[key]!r}.{did_you_mean(key, accepted)} "
                f"Valid options: {', '.join(accepted)}."
            )
    check_net_options(kwargs)
    net = _MODELS[name](**kwargs)
    return net if adapter is None else add_adapters(net, adapter)


def model_class(name: str) -> Callable[..., nn.Module]:
    """The class registered as ``name``."""
    if name not in _MODELS:
        raise UserValueError(f"Unknown model {name!r}; valid: {', '.join(list_models())}.{did_you_mean(name, _MODELS)}")
    return _MODELS[name]


def list_models() -> list[str]:
    """Sorted names of all registered models."""
    return sorted(_MODELS)


def name_of(model_class: type) -> str:
    """The registry name of ``model_class`` (``"mlp"`` for ``MLP``)."""
    for name, registered in _MODELS.items():
        if registered is model_class:
            return name
    raise UserValueError(f"{model_class.__name__} is not a registered model; valid: {', '.join(list_models())}.")


def name_for_target(target: str) -> str:
    """The registry name of a class path saved in a config (``"linzoo.models.MLP"`` or
    ``"linzoo.models.mlp.MLP"`` -> ``"mlp"``), matched against the registered classes: nothing
    is imported, so a path that names anything else is an error, never code that runs."""
    for name, registered in _MODELS.items():
        paths = {f"linzoo.models.{registered.__name__}", f"{registered.__module__}.{registered.__qualname__}"}
        if target in paths:
            return name
    known = ", ".join(f"linzoo.models.{cls.__name__}" for cls in _MODELS.values())
    raise UserValueError(f"_target_={target!r} is not a linzoo model; a saved net names one of: {known}.")
