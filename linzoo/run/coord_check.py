"""muP coordinate check (Tensor Programs V, figure 5): per-role output size vs width, SP and muP.

    python scripts/coord_check.py model=mlp 'widths=[64,256,1024]' out=cc.json

For each parametrization (SP: ``linear=default``; muP: ``linear=mup`` with base_width = the
narrowest width) and each width, it builds the net and optimizer as train does (the configs
composed with Hydra, ``linzoo.tasks.param_groups.build_optimizer``), trains ``steps`` steps
(default 4) of cross-entropy on generated images and labels (per seed, batch 64) at a fixed
lr (``lr=``, default the config's optimizer.lr; a few times it shows SP's blow-up more
clearly: ``model=transformer lr=0.01``), and records each role's mean |output| in the forward of every step (hooks on the factory
Linears; a fused Q/K/V projection is split into its q, k, v blocks). Dropout is off.

Writes ``{"sp": {role: {width: value}}, "mup": {...}, "steps": N, "by_step": {...}}`` (value:
the last step's, averaged over ``seeds``) and one PNG per parametrization next to the JSON
(``<out>_sp.png``, ``<out>_mup.png``). Under muP every role should stay within ~2x across widths;
under SP the output (head) grows with width. Models: mlp, transformer, mixer.

Other ``key=value`` arguments are train.yaml overrides (``optimizer=sgd``, ``optimizer.lr=0.1``);
``linear.mup.*`` ones (``linear.mup.zero_readout=true``) reach the muP runs only.
Width: mlp ``hidden_dims`` (scaled together from the config's), transformer ``dim``,
mixer ``dim`` and ``channel_mlp_dim`` (token_mlp_dim stays).
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
import yaml
from hydra import compose, initialize_config_dir, initialize_config_module
from hydra.utils import instantiate
from torch import nn

from linzoo.common.errors import UserValueError
from linzoo.layers.linear import FactoryLinear
from linzoo.tasks.param_groups import build_optimizer

__all__ = ["RoleOutputs", "coord_check", "main"]

MODELS = ("mlp", "transformer", "mixer")
PARAMETRIZATIONS = ("sp", "mup")
OPTIONS = {
    "model": "mlp",
    "widths": [64, 256, 1024],
    "out": "coord_check.json",
    "steps": 4,
    "seeds": [0, 1],
    "lr": None,
}
BATCH_SIZE = 64


class RoleOutputs:
    """Forward hooks on every factory Linear of a net: mean |output| per role (q/k/v per block).

    ``values[role]`` holds one number per forward pass: the mean |y| over the role's layers.
    """

    def __init__(self, net: nn.Module) -> None:
        self.values: dict[str, list[float]] = defaultdict(list)
        self._pending: dict[str, list[float]] = defaultdict(list)
        self._handles = [
            module.register_forward_hook(self._hook) for module in net.modules() if isinstance(module, FactoryLinear)
        ]
        self._root = net.register_forward_hook(self._flush)

    def _hook(self, module: FactoryLinear, inputs: Any, output: torch.Tensor) -> None:
        output = output.detach()
        if module.sub_roles:
            for sub_role, block in zip(module.sub_roles, output.chunk(len(module.sub_roles), dim=-1)):
                self._pending[sub_role].append(block.abs().mean().item())
        else:
            self._pending[module.role].append(output.abs().mean().item())

    def _flush(self, *args: Any) -> None:
        for role, values in self._pending.items():
            self.values[role].append(sum(values) / len(values))
        self._pending.clear()

    def remove(self) -> None:
        for handle in [*self._handles, self._root]:
            handle.remove()


def width_overrides(model: str, width: int, net: Any) -> list[str]:
    """Overrides that set the model's width to ``width`` (the others scale with it)."""
    if model == "mlp":
        first = net.hidden_dims[0]
        dims = [max(1, round(d * width / first)) for d in net.hidden_dims]
        return [f"model.net.hidden_dims=[{','.join(map(str, dims))}]"]
    if model == "mixer":
        return [f"model.net.dim={width}", f"model.net.channel_mlp_dim={round(net.channel_mlp_dim * width / net.dim)}"]
    return [f"model.net.dim={width}"]


def _train_steps(cfg: Any, *, steps: int, seed: int) -> dict[str, list[float]]:
    torch.manual_seed(seed)
    task = instantiate(cfg.model)
    net = task.net.train()
    optimizer = build_optimizer(net, task.optimizer_factory)
    generator = torch.Generator().manual_seed(seed)
    images = torch.rand(steps, BATCH_SIZE, net.in_channels, net.image_size, net.image_size, generator=generator)
    labels = torch.randint(0, cfg.model.num_classes, (steps, BATCH_SIZE), generator=generator)
    recorder = RoleOutputs(net)
    try:
        for step in range(steps):
            loss = F.cross_entropy(net(images[step]), labels[step])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    finally:
        recorder.remove()
    return dict(recorder.values)


def coord_check(
    *,
    model: str = "mlp",
    widths: Sequence[int] = (64, 256, 1024),
    steps: int = 4,
    seeds: Sequence[int] = (0,),
    base_width: int | None = None,
    overrides: Sequence[str] = (),
    config_dir: str | None = None,
) -> dict[str, Any]:
    """The coordinate check's numbers: ``{"sp": {role: {width: v}}, "mup": ..., "steps": N, "by_step": ...}``."""
    from linzoo.run.config_path import CONFIG_PATH
    from linzoo.run.schemas import register_configs

    if model not in MODELS:
        raise UserValueError(
            f"coord_check: model={model} has no width muP can scale; it checks {', '.join(MODELS)}. Fix: model=mlp"
        )
    widths = sorted(int(w) for w in widths)
    if len(widths) < 2 or steps < 1:
        raise UserValueError(
            "coord_check needs at least two widths and steps >= 1, e.g. 'widths=[64,256,1024]' steps=4."
        )
    base = base_width or widths[0]
    register_configs()
    by_step: dict[str, dict[str, dict[int, list[float]]]] = {p: defaultdict(dict) for p in PARAMETRIZATIONS}
    where = config_dir or CONFIG_PATH
    if where.startswith("pkg://"):
        context = initialize_config_module(config_module=where.removeprefix("pkg://"), version_base="1.3")
    else:
        context = initialize_config_dir(config_dir=where, version_base="1.3")
    with context:
        mup_only = [o for o in overrides if o.lstrip("+~").startswith("linear.mup.")]
        common = [f"model={model}", "model.net.dropout=0.0", "scheduler=none"]
        common += [o for o in overrides if o not in mup_only]
        net_cfg = compose("train", overrides=common).model.net
        for parametrization in PARAMETRIZATIONS:
            linear = ["linear=default"]
            if parametrization == "mup":
                linear = ["linear=mup", f"linear.mup.base_width={base}", *mup_only]
            for width in widths:
                cfg = compose("train", overrides=[*common, *linear, *width_overrides(model, width, net_cfg)])
                runs = [_train_steps(cfg, steps=steps, seed=seed) for seed in seeds]
                for role in runs[0]:
                    per_step = [sum(run[role][t] for run in runs) / len(runs) for t in range(steps)]
                    by_step[parametrization][role][width] = per_step
    result: dict[str, Any] = {
        p: {role: {w: values[-1] for w, values in roles.items()} for role, roles in by_step[p].items()}
        for p in PARAMETRIZATIONS
    }
    result["steps"] = steps
    result["by_step"] = {p: dict(by_step[p]) for p in PARAMETRIZATIONS}
    return result


def plot(result: dict[str, Any], parametrization: str, path: Path) -> None:
    """One figure (one panel per step t): mean |output| vs width, log-log, a line per role."""
    from matplotlib.figure import Figure

    roles = result["by_step"][parametrization]
    steps = result["steps"]
    figure = Figure(figsize=(3.2 * steps, 3.2), layout="constrained")
    axes = figure.subplots(1, steps, sharey=True, squeeze=False)[0]
    for step, ax in enumerate(axes):
        for role, by_width in sorted(roles.items()):
            widths = sorted(by_width)
            ax.plot(widths, [by_width[w][step] for w in widths], marker="o", label=role)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_title(f"{parametrization.upper()} t={step + 1}")
        ax.set_xlabel("width")
    axes[0].set_ylabel("mean |output|")
    axes[-1].legend(fontsize="small")
    figure.savefig(path, dpi=100)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """``key=value`` arguments: model, widths, out, steps, seeds, lr, base_width; the rest go to train.yaml."""
    options: dict[str, Any] = dict(OPTIONS)
    options["base_width"] = None
    overrides = []
    for argument in sys.argv[1:] if argv is None else argv:
        key, _, value = argument.partition("=")
        if key in options:
            options[key] = yaml.safe_load(value)
        else:
            overrides.append(argument)
    seeds = options["seeds"] if isinstance(options["seeds"], list) else [options["seeds"]]
    if options["lr"] is not None:
        overrides.append(f"optimizer.lr={options['lr']}")
    result = coord_check(
        model=options["model"],
        widths=options["widths"],
        steps=int(options["steps"]),
        seeds=seeds,
        base_width=options["base_width"],
        overrides=overrides,
    )
    out = Path(options["out"])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    for parametrization in PARAMETRIZATIONS:
        plot(result, parametrization, out.with_name(f"{out.stem}_{parametrization}.png"))
    print(f"wrote {out} and {out.stem}_sp.png, {out.stem}_mup.png next to it")
    return result
