"""Command-line entry points (Hydra-aware): ``scripts/*.py`` and the console scripts call these.

python scripts/train.py model=transformer      train + validate + test
python scripts/eval.py ckpt_path=...           test a checkpoint
python scripts/sample.py ckpt_path=... num=64  draw digits from a pixel LM
python scripts/predict.py ckpt_path=... inputs=PATH   classify / reconstruct your own images
python scripts/export.py ckpt_path=... format=onnx    export the plain net (onnx, torchscript, .pt2, safetensors)
python scripts/width_transfer.py -m            muP's width transfer grid (docs/mup.md)
"""

from __future__ import annotations

import contextlib
import functools
import sys
from collections.abc import Callable, Iterator
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from linzoo.run.config_path import CONFIG_PATH
from linzoo.run.errors import exiting_on_user_error, naming_refused_writes, reporting_user_errors
from linzoo.run.log_files import quiet_log_files_on_refusal
from linzoo.run.run_dirs import release_run_claims, remove_refused_run
from linzoo.run.schemas import register_configs

register_configs()


@contextlib.contextmanager
def skipping_mode_probe() -> Iterator[None]:
    """Hydra 1.3 composes a command's config twice: once only to read ``hydra.mode``
    (``Hydra.get_mode``; None when unset), then to run. Inside, that first compose is skipped
    (a third of predict's time in Hydra), unless the command line names ``hydra.mode``: for
    commands whose configs never set it (predict, export)."""
    from hydra._internal.hydra import Hydra  # private: where Hydra probes the mode

    if any("hydra.mode" in argument for argument in sys.argv[1:]):
        yield
        return
    probe = Hydra.get_mode
    Hydra.get_mode = lambda self, config_name, overrides: None  # type: ignore[method-assign]
    try:
        yield
    finally:
        Hydra.get_mode = probe  # type: ignore[method-assign]


def command(
    config_name: str, *, lightning: bool = True, mode_probe: bool = True
) -> Callable[[Callable[[DictConfig], Any]], Callable[..., Any]]:
    """``hydra.main`` for a linzoo command (config ``configs/<config_name>.yaml``), where a user's
    mistake (bad value, misspelled key or option, missing or corrupt file) prints one message
    and exits 2, both when Hydra composes the config and while the command runs;
    ``HYDRA_FULL_ERROR=1`` shows the full traceback instead. A command so stopped leaves no
    run directory behind (a bad value is refused before Hydra creates one; a later refusal
    removes the one this command created, when it holds only Hydra's files: linzoo/run/run_dirs.py).
    The run directory's claim, taken before Hydra wrote anything, is released when the command
    ends, however it ends (a SIGKILL releases the lock with the process; its file then is a
    stale claim, which the next command on this host takes over). ``lightning=False``: the command
    never uses Lightning, so its logging is not tidied (which would import it: seconds of start-up);
    ``mode_probe=False``: its configs never set ``hydra.mode`` (:func:`skipping_mode_probe`)."""

    def decorate(task: Callable[[DictConfig], Any]) -> Callable[..., Any]:
        @functools.wraps(task)
        def task_exiting_on_user_error(cfg: DictConfig) -> Any:
            if lightning:
                from linzoo.run.console import tidy_lightning_logging  # imports Lightning: not before a command runs

                tidy_lightning_logging()
            quiet_log_files_on_refusal()
            with (
                exiting_on_user_error(cleanup=remove_refused_run),
                naming_refused_writes(run_dir=OmegaConf.select(cfg, "paths.output_dir")),
            ):
                return task(cfg)

        main = hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name=config_name)(
            task_exiting_on_user_error
        )

        @functools.wraps(main)
        def run(*args: Any, **kwargs: Any) -> Any:
            try:
                with reporting_user_errors(), contextlib.nullcontext() if mode_probe else skipping_mode_probe():
                    return main(*args, **kwargs)
            finally:
                release_run_claims()  # the run directory claimed by RunDirGuard (linzoo/run/run_dirs.py)

        return run

    return decorate


@command("train")
def train(cfg: DictConfig) -> float | None:
    """Returns the best value of the monitored metric: what sweepers optimise."""
    from linzoo.run.train import train as run_training

    return run_training(cfg)["monitor"]["best"]


def coord_check() -> Any:
    """``scripts/coord_check.py key=value ...``: not a Hydra app (it composes train.yaml once per width
    and parametrization), so user errors are reported here, in one line with exit status 2."""
    from linzoo.run.coord_check import main

    with reporting_user_errors():
        return main()


@command("width_transfer")
def width_transfer(cfg: DictConfig) -> float:
    """One point of muP's width transfer; returns its training loss (inf when it diverged)."""
    from linzoo.run.width_transfer import run_point

    loss = run_point(cfg)["loss"]
    return float("inf") if loss is None else loss


@command("eval")
def evaluate(cfg: DictConfig) -> Any:
    from linzoo.run.evaluate import evaluate as run_evaluation

    return run_evaluation(cfg)


@command("sample")
def sample(cfg: DictConfig) -> None:
    from linzoo.run.validation import check_sample_options
    from linzoo.tools.sample import sample_checkpoint

    check_sample_options(cfg)
    path = sample_checkpoint(
        ckpt_path=cfg.ckpt_path,
        num=cfg.num,
        digit=cfg.digit,
        temperature=cfg.temperature,
        top_k=cfg.top_k,
        seed=cfg.seed,
        use_cache=cfg.use_cache,
        device=cfg.device,
        out=cfg.out,
        run_dir=cfg.paths.output_dir,
    )
    print(f"Samples: {path}")


@command("predict", lightning=False, mode_probe=False)
def predict(cfg: DictConfig) -> None:
    from linzoo.tools.predict import predict_checkpoint

    path = predict_checkpoint(
        ckpt_path=cfg.ckpt_path,
        inputs=cfg.inputs,
        run_dir=cfg.paths.output_dir,
        invert=cfg.invert,
        top_k=cfg.top_k,
        batch_size=cfg.batch_size,
        device=cfg.device,
        backend=cfg.get("backend"),
        quantize=cfg.get("quantize"),
    )
    print(f"Predictions: {path}")


@command("export", mode_probe=False)
def export(cfg: DictConfig) -> None:
    from linzoo.tools.export import export_checkpoint

    export_checkpoint(
        ckpt_path=cfg.ckpt_path,
        format=cfg.format,
        out=cfg.out,
        quantize=cfg.get("quantize"),
        check_inputs=cfg.check_inputs,
        run_dir=cfg.paths.output_dir,
    )
