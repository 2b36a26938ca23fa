"""Draw digits from a trained pixel LM checkpoint into a PNG grid (used by scripts/sample.py)."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from linzoo.callbacks.image_files import save_image_grid
from linzoo.callbacks.samples import draw_samples
from linzoo.common.errors import UserFileExistsError, UserValueError
from linzoo.common.paths import fresh_path
from linzoo.tasks.language_modeling import LanguageModeling
from linzoo.tasks.loading import load_task
from linzoo.tools.destinations import check_writable

log = logging.getLogger(__name__)


def sample_checkpoint(
    *,
    ckpt_path: str | Path,
    num: int = 64,
    digit: int | None = None,
    temperature: float = 1.0,
    top_k: int | None = None,
    seed: int = 0,
    use_cache: bool = True,
    device: str = "auto",
    out: str | Path | None = None,
    run_dir: str | Path = ".",
) -> Path:
    """Rebuild the LM of ``ckpt_path``, draw ``num`` images and write them as one PNG grid.

    The grid goes to ``out`` (refused when that file exists: nothing is overwritten), or
    else to ``<run_dir>/samples.png`` (``samples_digit7.png`` for ``digit=7``; a free
    name ``samples-1.png``, ... when taken). Returns the path written.
    """
    path = output_path(out=out, run_dir=run_dir, digit=digit)
    task, _ = load_task(ckpt_path)
    if not isinstance(task, LanguageModeling):
        raise UserValueError(
            f"{ckpt_path} holds a {type(task).__name__} model, not a pixel language model; "
            "sample.py draws digits from checkpoints of model=lm runs."
        )
    task.to(resolve_device(device))
    images, nrow = draw_samples(
        task, num=num, digit=digit, temperature=temperature, top_k=top_k, seed=seed, use_cache=use_cache
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    save_image_grid(images, path, nrow=nrow)
    log.info("Wrote %d samples to %s", len(images), path)
    return path


def output_path(*, out: str | Path | None, run_dir: str | Path, digit: int | None) -> Path:
    """Where the grid goes: ``out`` (must be a new .png) or a free name in ``run_dir``."""
    if out is None:
        return fresh_path(Path(run_dir) / f"samples{'' if digit is None else f'_digit{digit}'}.png")
    path = Path(out)
    if path.suffix.lower() != ".png":
        raise UserValueError(f"out={out} must name a .png file, e.g. out=samples.png.")
    if path.exists():
        raise UserFileExistsError(f"{path} already exists and was left as it is; choose another out=... or remove it.")
    check_writable(path.parent, setting=f"out={out}")
    return path


def resolve_device(device: str) -> torch.device:
    """``auto``: CUDA when available, else CPU; otherwise the named device."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserValueError(f"device={device} needs a CUDA GPU; use device=cpu (or device=auto).")
    return torch.device(device)
