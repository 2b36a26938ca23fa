"""Language-model picture: a grid of sampled digits, at the end of training."""

from __future__ import annotations

import math

import lightning as L
import torch

from linzoo.callbacks.common import announce, inference, log_picture, picture_path
from linzoo.callbacks.image_files import save_image_grid
from linzoo.common.errors import UserValueError
from linzoo.tasks.language_modeling import LanguageModeling


def draw_samples(
    task: LanguageModeling,
    *,
    num: int,
    digit: int | None = None,
    temperature: float = 1.0,
    top_k: int | None = None,
    seed: int = 0,
    use_cache: bool = True,
) -> tuple[torch.Tensor, int]:
    """Sample images [N, 1, S, S] in [0, 1] from ``task`` and the row length of their grid.

    ``num`` images in rows of ceil(sqrt(num)); but a class-conditional LM with
    ``digit=None`` draws one row per class, ceil(num / num_classes) images each.
    The same ``seed`` on the same device gives the same images.
    """
    if num < 1:
        raise UserValueError(f"num must be at least 1, got {num}.")
    options = {
        "temperature": temperature,
        "top_k": top_k,
        "generator": torch.Generator(device=task.device).manual_seed(seed),
        "use_cache": use_cache,
    }
    if task.conditional and digit is None:
        per_class = math.ceil(num / task.num_classes)
        rows = [task.sample(per_class, digit=label, **options) for label in range(task.num_classes)]
        return torch.cat(rows), per_class
    return task.sample(num, digit=digit, **options), math.ceil(math.sqrt(num))


class SampleGrid:
    """Writes ``samples.png`` when training ends (LanguageModeling tasks only).

    ``num`` samples with the fixed ``seed`` (one row per digit for a class-conditional
    LM), drawn with the key/value cache; also in TensorBoard as ``pictures/samples``.
    """

    task = LanguageModeling

    def __init__(
        self, *, num: int = 64, seed: int = 0, temperature: float = 1.0, filename: str = "samples.png"
    ) -> None:
        self.num = num
        self.seed = seed
        self.temperature = temperature
        self.filename = filename

    def on_train_end(self, trainer: L.Trainer, pl_module: LanguageModeling) -> None:
        if not trainer.is_global_zero:
            return
        with inference(trainer, pl_module):
            images, nrow = draw_samples(pl_module, num=self.num, seed=self.seed, temperature=self.temperature)
        path = picture_path(trainer, self.filename)
        log_picture(trainer, "pictures/samples", save_image_grid(images, path, nrow=nrow))
        announce(path)
