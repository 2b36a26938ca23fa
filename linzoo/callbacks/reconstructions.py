"""Autoencoder picture: test originals above their reconstructions, at the end of training."""

from __future__ import annotations

import lightning as L
import torch

from linzoo.callbacks.common import announce, first_examples, inference, log_picture, picture_path
from linzoo.callbacks.image_files import save_image_grid
from linzoo.common.errors import UserValueError
from linzoo.tasks.autoencoding import Autoencoding


class ReconstructionGrid:
    """Writes ``reconstructions.png`` when training ends (Autoencoding tasks only).

    The first ``num_images`` test images, ``nrow`` a row: a row of originals, below it
    their reconstructions. A denoising task (``noise_std > 0``) gets a row of noisy
    inputs in between, and the reconstructions are of those noisy inputs. Also shown
    in TensorBoard (tag ``pictures/reconstructions``) when that logger is on.
    """

    task = Autoencoding

    def __init__(
        self, *, num_images: int = 32, nrow: int = 8, filename: str = "reconstructions.png", seed: int = 0
    ) -> None:
        if num_images < 1 or nrow < 1:
            raise UserValueError(f"num_images and nrow must be >= 1, got {num_images} and {nrow}.")
        self.num_images = num_images
        self.nrow = nrow
        self.filename = filename
        self.seed = seed

    def on_train_end(self, trainer: L.Trainer, pl_module: Autoencoding) -> None:
        if not trainer.is_global_zero:
            return
        examples = first_examples(trainer, self.num_images)
        if examples is None:
            return
        images = examples[0]
        nrow = min(self.nrow, len(images))
        images = images[: len(images) - len(images) % nrow]
        rows = [images]
        inputs = images
        if pl_module.noise_std > 0:
            noise = torch.randn(images.shape, generator=torch.Generator().manual_seed(self.seed))
            inputs = images + pl_module.noise_std * noise
            rows.append(inputs)
        with inference(trainer, pl_module):
            batch = trainer.precision_plugin.convert_input(inputs.to(pl_module.device))
            rows.append(pl_module(batch).float().cpu())
        # [rows, N, C, H, W] -> blocks of nrow: originals, (noisy,) reconstructions
        stacked = torch.stack(rows).unflatten(1, (-1, nrow))  # [R, N / nrow, nrow, C, H, W]
        grid = stacked.transpose(0, 1).flatten(0, 2)
        path = picture_path(trainer, self.filename)
        log_picture(trainer, "pictures/reconstructions", save_image_grid(grid, path, nrow=nrow))
        announce(path)
