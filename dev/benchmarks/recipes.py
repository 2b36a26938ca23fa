"""What the benchmarks train: the composed ``configs/train.yaml``, exactly what ``scripts/train.py`` sees."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"

# --tiny: nets small enough for the smoke test to run every section in seconds on a CPU.
TINY_NETS = {
    "mlp": ["model.net.hidden_dims=[32]"],
    "cnn": ["model.net.channels=[8,16]", "model.net.head_hidden_dims=[]"],
    "transformer": ["model.net.dim=16", "model.net.depth=1", "model.net.num_heads=2", "model.net.patch_size=7"],
    "lm": ["model.image_size=7", "model.net.seq_len=49", "model.net.dim=16", "model.net.depth=1"],
}


def compose(overrides: list[str], output_dir: Path | str) -> Any:
    """The composed train config with ``overrides`` and its run directory at ``output_dir``."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from linzoo.run.schemas import register_configs

    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return hydra_compose("train", overrides=[*overrides, f"paths.output_dir={output_dir}"])


def data_overrides(*, data_root: str | None, tiny: bool) -> list[str]:
    """MNIST from ``data_root`` (default ``$LINZOO_DATA`` or ./data), never downloaded."""
    overrides = ["data=mnist", "data.download=false"]
    if data_root:
        overrides.append(f"data.root={data_root}")
    if tiny:
        overrides.append("data.val_size=200")
    return overrides


def tiny_net(model: str, tiny: bool) -> list[str]:
    return TINY_NETS[model] if tiny else []


def build_datamodule(cfg: Any) -> Any:
    from hydra.utils import instantiate

    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")
    return datamodule


def build_net(cfg: Any) -> nn.Module:
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    return instantiate(OmegaConf.to_container(cfg.model.net, resolve=True))


def build_optimizer(cfg: Any, net: nn.Module, **changes: Any) -> Any:
    """The config's optimizer on ``net``, as every task builds it (role groups: weight decay on >=2-D
    weights, ``optimizer.roles`` and muP's multipliers)."""
    from hydra.utils import instantiate

    from linzoo.tasks.param_groups import build_optimizer as build_role_optimizer

    return build_role_optimizer(net, instantiate(cfg.optimizer, **changes))


def build_scheduler(cfg: Any, optimizer: Any, *, total_steps: int) -> Any:
    """The config's learning-rate schedule over ``total_steps`` (None: constant)."""
    from hydra.utils import instantiate

    return instantiate(cfg.scheduler)(optimizer, total_steps=total_steps) if cfg.scheduler else None
