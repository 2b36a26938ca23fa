"""``init_from=`` and ``finetune.*`` of a training run: a new run from trained weights, and what trains.

    init_from=<run dir | .ckpt | .safetensors>   the weights a NEW run starts from (new optimizer,
                                                 schedule and run directory; not a resume)
    finetune.train_roles=all | all_but_head | [head,attn_out,...]   which factory roles train
    finetune.train_other=auto | true | false     the parameters of modules without a role;
                                                 auto: true with train_roles=all, else false

The plain-PyTorch part is linzoo/models/transfer.py, the file reading linzoo/checkpoint/init_from.py.
"""

from __future__ import annotations

import logging
from typing import Any

from omegaconf import DictConfig, OmegaConf
from torch import nn

from linzoo.checkpoint.init_from import InitSource, load_init_from, read_init_from
from linzoo.common.errors import ConfigError, UserFileNotFoundError, UserValueError
from linzoo.models.transfer import TrainableSummary, resolve_roles, set_trainable, trains_other

log = logging.getLogger(__name__)

__all__ = ["DEFAULTS", "check_finetune_config", "finetune_record", "prepare_net", "read_source"]

DEFAULTS = {"train_roles": "all", "train_other": "auto"}
ADAPTER_DEFAULTS = {"train_roles": ["head"], "train_other": "auto"}  # adapter=lora: the base frozen, the head trains


def finetune_settings(cfg: DictConfig) -> dict[str, Any]:
    """``{"train_roles": "all" | [roles], "train_other": "auto" | bool}`` of ``cfg.finetune`` (defaults if absent)."""
    node = cfg.get("finetune")
    given = OmegaConf.to_container(node, resolve=True) if node is not None else {}
    return {**DEFAULTS, **{key: value for key, value in given.items() if value is not None}}


def check_finetune_config(cfg: DictConfig) -> None:
    """The values of ``init_from`` and ``finetune.*`` (their types and keys: the schema)."""
    settings = finetune_settings(cfg)
    roles = settings["train_roles"]
    if not isinstance(roles, (str, list)):
        raise ConfigError(
            "finetune.train_roles", roles, "all, all_but_head or a list of roles", "finetune.train_roles=[head]"
        )
    resolve_roles(roles)
    other = settings["train_other"]
    if isinstance(other, str) and other.lower() in ("true", "false"):
        other = other.lower() == "true"
    if other not in ("auto", True, False):
        raise ConfigError(
            "finetune.train_other",
            other,
            "auto (true with finetune.train_roles=all, false with a list), true or false",
            "finetune.train_other=auto",
        )
    init_from = cfg.get("init_from")
    if init_from is not None and cfg.get("ckpt_path") is not None:
        raise ConfigError(
            "init_from",
            init_from,
            "no init_from together with ckpt_path: init_from starts a new run from trained weights, ckpt_path "
            "resumes a run (whose checkpoint already records where its weights came from)",
            "drop init_from to resume, or ckpt_path to start a new run",
        )


def finetune_record(cfg: DictConfig) -> dict[str, Any] | None:
    """The ``finetune`` settings a checkpoint records: only those that differ from the defaults (so
    the build config of an ordinary run, and resuming checkpoints from before, stay as they were)."""
    settings = finetune_settings(cfg)
    if settings["train_other"] in ("true", "false"):
        settings["train_other"] = settings["train_other"] == "true"
    changed = {key: value for key, value in settings.items() if value != DEFAULTS[key]}
    return settings if changed else None


def read_source(cfg: DictConfig, net_config: dict[str, Any]) -> InitSource | None:
    """The weights ``init_from`` names, checked against the run's net config (before anything is written)."""
    init_from = cfg.get("init_from")
    if init_from is None:
        return None
    try:
        return read_init_from(str(init_from), net_config=net_config)
    except UserFileNotFoundError as error:
        raise UserFileNotFoundError(f"init_from={init_from}: {error}") from None


def prepare_net(net: nn.Module, cfg: DictConfig, source: InitSource | None, *, report: bool) -> TrainableSummary:
    """Load ``source`` into ``net`` (printing what was loaded, re-initialised and skipped), then set
    what trains by ``finetune.*``; a re-created layer that would stay frozen is refused.

    With ``adapter=lora`` and no ``finetune.*`` given, the net's own weights are frozen and only the
    adapters and the head train (:data:`ADAPTER_DEFAULTS`); adapters always train."""
    settings = finetune_record(cfg) or dict(ADAPTER_DEFAULTS if cfg.get("adapter") is not None else DEFAULTS)
    loaded = None
    if source is not None:
        loaded = load_init_from(net, source)
        if report:
            print(loaded.line(source.file) + _changes(source))
    summary = set_trainable(net, roles=settings["train_roles"], train_other=settings["train_other"])
    if summary.missing_roles:
        log.warning(
            "finetune.train_roles: %s has no Linear of role %s, so it trains nothing there. Roles it builds: %s.",
            type(net).__name__,
            "/".join(summary.missing_roles),
            ", ".join(summary.trained_roles + summary.frozen_roles),
        )
    if loaded is not None and loaded.reinitialised:
        frozen = [
            key
            for key, parameter in net.named_parameters()
            if key in loaded.reinitialised and not parameter.requires_grad
        ]
        if frozen:
            roles = settings["train_roles"]
            raise UserValueError(
                f"init_from={source.file}: the re-created layers ({', '.join(frozen[:4])}) start from random weights, "
                f"but finetune.train_roles={roles} with train_other={str(trains_other(settings['train_other'], roles)).lower()} "
                "would freeze them. Fix: add their role (head for a new head) to finetune.train_roles, or "
                "finetune.train_other=true for an input convolution."
            )
    return summary


def _changes(source: InitSource) -> str:
    if not source.changed:
        return ""
    return " (" + ", ".join(f"{key} {before} -> {now}" for key, (before, now) in source.changed.items()) + ")"
