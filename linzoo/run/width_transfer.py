"""muP's width transfer (Tensor Programs V, figure 1): training loss after a fixed number of steps,
for one (parametrization, width, learning rate, seed) point; a Hydra multirun covers the grid.

    python scripts/width_transfer.py -m                                       # configs/width_transfer.yaml's grid
    python scripts/width_transfer.py linear=mup width=512 optimizer.lr=0.002 seed=0   # one point

One job builds the net and the optimizer as train does (the composed config, with the model's width
set as :func:`linzoo.run.coord_check.width_overrides` does and, under ``linear=mup``,
``linear.mup.base_width=base_width``; :func:`linzoo.tasks.param_groups.build_optimizer`), then takes
``steps`` optimizer steps of cross-entropy on shuffled batches of the training split (the seed
draws the init and the order), at a constant lr. It writes ``metrics.json`` into its job directory:

    {"parametrization": "sp" | "mup", "width": W, "lr": lr, "seed": S, "steps": N, "loss_window": W,
     "loss": mean of the last ``loss_window`` training losses (null when diverged),
     "diverged": true when a loss was not finite, "losses": every step's loss,
     "status": "finished" | "diverged", "monitor": {"metric": "train/loss", "mode": "min", "best": loss}}

and returns the loss (what a sweeper minimises; the sweep's ``sweep_results.yaml`` ranks the jobs
by it). ``scripts/mup_report.py`` reads a sweep's ``metrics.json`` files into docs/mup.md. The training split is read once per process, so the jobs of
a multirun (run one after another in one process by Hydra's basic launcher) share it.
"""

from __future__ import annotations

import json
import math
from typing import Any

import torch
import torch.nn.functional as F
import yaml
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from linzoo.checkpoint.atomic import write_text_atomically
from linzoo.common.errors import UserValueError
from linzoo.data.tensor_dataset import to_float_images
from linzoo.models.registry import name_for_target
from linzoo.run.coord_check import MODELS, width_overrides
from linzoo.tasks.param_groups import build_optimizer

__all__ = ["run_point", "training_split"]

_SPLITS: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}  # data config -> (uint8 images, labels)


def model_name(cfg: DictConfig) -> str:
    """The registry name of the configured net; one of the models whose width muP scales."""
    name = name_for_target(str(cfg.model.net._target_))
    if name not in MODELS:
        raise UserValueError(
            f"width_transfer: model={name} has no width muP can scale; it sets the width of {', '.join(MODELS)}. "
            "Fix: model=mlp."
        )
    return name


def training_split(data_cfg: DictConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """(uint8 images [N, C, H, W], int64 labels [N]) of the data's training split, read once per process."""
    key = OmegaConf.to_yaml(data_cfg)
    if key not in _SPLITS:
        datamodule = instantiate(data_cfg)
        datamodule.prepare_data()
        datamodule.setup("fit")
        split = datamodule.train_set
        _SPLITS[key] = (split.images, split.labels)
    return _SPLITS[key]


def configure(cfg: DictConfig) -> DictConfig:
    """A copy of ``cfg`` with the model at ``cfg.width`` and muP's base width at ``cfg.base_width``."""
    cfg = cfg.copy()
    for override in width_overrides(model_name(cfg), int(cfg.width), cfg.model.net):
        key, value = override.split("=", 1)
        OmegaConf.update(cfg, key, yaml.safe_load(value), merge=False)
    if cfg.linear.get("mup") is not None:
        cfg.linear.mup.base_width = int(cfg.base_width)
    return cfg


def run_point(cfg: DictConfig) -> dict[str, Any]:
    """Train one point of the grid; returns (and writes into the job directory) its result."""
    steps, window = int(cfg.steps), int(cfg.loss_window)
    if not 1 <= window <= steps:
        raise UserValueError(
            f"loss_window={window}: expected 1 <= loss_window <= steps={steps}. Fix: loss_window={min(30, steps)}"
        )
    images, labels = training_split(cfg.data)
    cfg = configure(cfg)
    torch.manual_seed(int(cfg.seed))
    net = instantiate(cfg.model.net).train()
    optimizer = build_optimizer(net, instantiate(cfg.optimizer))
    generator = torch.Generator().manual_seed(int(cfg.seed))
    batch_size = int(cfg.data.batch_size)
    order = torch.empty(0, dtype=torch.int64)
    losses: list[float] = []
    for _ in range(steps):
        if len(order) < batch_size:  # a new epoch: a new seeded order
            order = torch.cat([order, torch.randperm(len(labels), generator=generator)])
        batch, order = order[:batch_size], order[batch_size:]
        loss = F.cross_entropy(net(to_float_images(images[batch])), labels[batch])
        losses.append(loss.item())
        if not math.isfinite(losses[-1]):
            break
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    diverged = len(losses) < steps or not all(math.isfinite(value) for value in losses)
    result = {
        "parametrization": "sp" if cfg.linear.get("mup") is None else "mup",
        "model": model_name(cfg),
        "width": int(cfg.width),
        "base_width": int(cfg.base_width),
        "lr": float(cfg.optimizer.lr),
        "seed": int(cfg.seed),
        "steps": steps,
        "loss_window": window,
        "loss": None if diverged else sum(losses[-window:]) / window,
        "diverged": diverged,
        "losses": [value if math.isfinite(value) else None for value in losses],
        "status": "diverged" if diverged else "finished",
    }
    result["monitor"] = {"metric": "train/loss", "mode": "min", "best": result["loss"]}
    write_text_atomically(f"{cfg.paths.output_dir}/metrics.json", json.dumps(result) + "\n")
    return result
