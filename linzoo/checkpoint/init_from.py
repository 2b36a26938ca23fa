"""``init_from=``: the trained weights a new run starts from, read safely, and where they came from.

The file (a .ckpt, a run directory or a .safetensors file) is read by linzoo's one loader
(``torch.load(weights_only=True)``; nothing of it is imported or run), and its net config is
checked plain and matched against the model registry. It must hold the same model with the same
widths as the new run: only ``num_classes`` and ``in_channels`` may differ, and the layers they
size (the head, the input layer) are re-created. Which tensors those are is found by building the
new run's net once more with the file's ``num_classes``/``in_channels``: the tensors whose shapes
then differ from the new net's. Anything else that differs is refused, naming both configs.
"""

from __future__ import annotations

import hashlib
import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from linzoo.checkpoint.files import checkpoint_in
from linzoo.checkpoint.nets import (
    build_net,
    from_file,
    load_weights_into,
    model_name_of,
    net_config_of,
    read_net,
    readable_kwargs,
)
from linzoo.common.errors import UserValueError
from linzoo.models.registry import create_model, model_class
from linzoo.models.transfer import TransferReport, load_transferable

__all__ = ["RECREATABLE", "InitSource", "load_init_from", "read_init_from"]

RECREATABLE = ("num_classes", "in_channels")  # net options whose layers are re-created when they differ


@dataclass
class InitSource:
    """A file's weights, ready for a net of ``net_config``."""

    file: Path
    state: dict[str, torch.Tensor]
    build_config: dict[str, Any]  # the file's own build config (model, data, data_identity, init_from, ...)
    recreated: set[str] = field(default_factory=set)  # state-dict keys of layers built anew
    changed: dict[str, tuple[Any, Any]] = field(default_factory=dict)  # {"num_classes": (file's, new)}

    def lineage(self) -> dict[str, Any]:
        """What the new run records of its source: the file (path, SHA-256), its model, the data it
        was trained on (identity) and the source's own lineage, when recorded."""
        record = {
            "file": str(self.file.resolve()),
            "sha256": _sha256(self.file),
            "model": model_name_of(net_config_of(self.build_config)),
            "data_source": self.build_config.get("data_source"),
            "data_identity": self.build_config.get("data_identity"),
            "init_from": self.build_config.get("init_from"),
            "recreated": {key: {"file": before, "now": now} for key, (before, now) in self.changed.items()},
        }
        return {key: value for key, value in record.items() if value not in (None, {})}


def read_init_from(path: str | Path, *, net_config: dict[str, Any]) -> InitSource:
    """The weights of ``path`` for a new net of ``net_config`` (``{"_target_": ..., **kwargs}``).

    Raises a :class:`UserValueError` naming both configs when the file holds another model, or the
    same model with other widths (only ``num_classes`` and ``in_channels`` may differ).
    """
    file = checkpoint_in(path)
    state, build_config = read_net(file)
    saved = net_config_of(build_config)
    with from_file(file):
        saved_name = model_name_of(saved)
        load_weights_into(build_net(saved), state, file)  # the file's config must describe its weights, all finite
    name = model_name_of(net_config)
    defaults = _defaults(name)  # a config may leave an option at its default unsaid
    kwargs = {key: value for key, value in net_config.items() if not key.startswith("_")}
    saved_kwargs = {**defaults, **{key: value for key, value in saved.items() if not key.startswith("_")}}

    def mismatch(reason: str) -> UserValueError:
        mine, theirs = _shown({**defaults, **kwargs}), _shown(saved_kwargs)
        keys = [key for key in sorted(set(mine) | set(theirs)) if mine.get(key) != theirs.get(key)]
        return UserValueError(
            f"init_from={path} does not fit this run's model: {reason}. This run: {name} "
            f"{ {key: mine.get(key) for key in keys} }; the file: {saved_name} { {key: theirs.get(key) for key in keys} }. "
            "Fix: give the run the file's model and widths (model=, model.net.*); only num_classes and "
            "in_channels may differ (the head and the input layer are then re-created)."
        )

    if saved_name != name:
        raise mismatch(f"it holds a {saved_name!r} model, not {name!r}")
    changed = {
        key: (saved_kwargs[key], kwargs.get(key, defaults[key]))
        for key in RECREATABLE
        if key in defaults and saved_kwargs[key] != kwargs.get(key, defaults[key])
    }
    with from_file(file):
        new_state = build_net(net_config).state_dict()
        as_saved = create_model(name, **{**kwargs, **{key: before for key, (before, _) in changed.items()}})
    as_saved_state = as_saved.state_dict()
    different = _differences(as_saved_state, state)
    if different:
        raise mismatch(f"the weights differ ({different})")
    recreated = {
        key
        for key in set(new_state) | set(as_saved_state)
        if key not in new_state
        or key not in as_saved_state
        or tuple(new_state[key].shape) != tuple(as_saved_state[key].shape)
    }
    return InitSource(file=file, state=state, build_config=build_config, recreated=recreated, changed=changed)


def load_init_from(net: torch.nn.Module, source: InitSource) -> TransferReport:
    """Copy ``source``'s weights into ``net`` (built from the same net config), re-created layers aside."""
    try:
        return load_transferable(net, source.state, recreated=source.recreated)
    except UserValueError as error:
        raise UserValueError(f"init_from={source.file}: {error}") from None


def _shown(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments as the refusal shows them (the ``linear`` spec cut to what differs from its defaults)."""
    return readable_kwargs({**kwargs, "linear": kwargs.get("linear") or {}})


def _defaults(name: str) -> dict[str, Any]:
    """The keyword defaults of the registered model ``name``."""
    parameters = inspect.signature(model_class(name)).parameters.values()
    return {p.name: p.default for p in parameters if p.default is not inspect.Parameter.empty}


def _differences(expected: dict[str, torch.Tensor], state: dict[str, torch.Tensor]) -> str:
    """``"2 missing, 0 unexpected, 1 of other shape (e.g. blocks.0.attn.q.weight: (16, 16) here, (64, 64) saved)"``, or ``""``."""
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    resized = sorted(key for key in set(expected) & set(state) if expected[key].shape != state[key].shape)
    if not (missing or unexpected or resized):
        return ""
    example = (resized or missing or unexpected)[0]
    shapes = f"{example}"
    if resized:
        shapes = f"{example}: {tuple(expected[example].shape)} here, {tuple(state[example].shape)} in the file"
    return f"{len(missing)} tensors missing, {len(unexpected)} unexpected, {len(resized)} of other shape; e.g. {shapes}"


def _sha256(file: Path) -> str:
    digest = hashlib.sha256()
    with open(file, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
