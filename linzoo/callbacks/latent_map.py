"""Autoencoder picture: the test set's latent codes in 2-D, coloured by class."""

from __future__ import annotations

from collections.abc import Sequence

import lightning as L
import torch
from matplotlib import colormaps
from matplotlib.figure import Figure

from linzoo.callbacks.common import announce, first_examples, inference, log_picture, picture_path
from linzoo.callbacks.image_files import new_figure, save_figure
from linzoo.common.errors import UserValueError
from linzoo.tasks.autoencoding import Autoencoding


def principal_components(z: torch.Tensor, k: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """z [N, D] -> (coordinates [N, k] on the top-k principal axes, explained variance share [k]).

    ``torch.pca_lowrank`` of the centred codes, z - mean = U S V^T, asked for all
    q = min(N, D) axes (so the randomized range finder is exact); coordinates =
    (z - mean) V[:, :k]. Each axis is signed so that its largest loading is positive
    (sklearn's ``svd_flip``), so the picture does not mirror from run to run. With
    D < k the missing axes are zeros.
    """
    z = z.double()
    centred = z - z.mean(dim=0)
    with torch.random.fork_rng(devices=[]):  # pca_lowrank draws a random matrix: leave the global RNG alone
        torch.manual_seed(0)
        _, singular, v = torch.pca_lowrank(z, q=min(z.shape), center=True, niter=2)
    v = v[:, :k]
    signs = torch.sign(v.gather(0, v.abs().argmax(dim=0, keepdim=True)))
    coordinates = centred @ (v * signs)
    share = singular[:k].square() / centred.square().sum().clamp_min(1e-12)
    if coordinates.shape[1] < k:
        coordinates = torch.nn.functional.pad(coordinates, (0, k - coordinates.shape[1]))
        share = torch.nn.functional.pad(share, (0, k - share.shape[0]))
    return coordinates.float(), share.float()


class LatentMap:
    """Writes ``latent_map.png`` when training ends (Autoencoding tasks only).

    Encodes up to ``num_points`` test images and scatters their codes: the code itself
    when ``latent_dim == 2``, else its first two principal components. One colour per
    class. ``width x height`` pixels; also logged to TensorBoard as ``pictures/latent_map``.
    """

    task = Autoencoding

    def __init__(
        self, *, num_points: int = 2000, filename: str = "latent_map.png", width: int = 700, height: int = 600
    ) -> None:
        if num_points < 2:
            raise UserValueError(f"num_points must be >= 2, got {num_points}.")
        self.num_points = num_points
        self.filename = filename
        self.width = width
        self.height = height

    def on_train_end(self, trainer: L.Trainer, pl_module: Autoencoding) -> None:
        if not trainer.is_global_zero:
            return
        examples = first_examples(trainer, self.num_points)
        if examples is None:
            return
        images, labels = examples
        with inference(trainer, pl_module):
            batch = trainer.precision_plugin.convert_input(images.to(pl_module.device))
            z = pl_module.net.encode(batch).float().cpu()
        class_names = getattr(trainer.datamodule, "class_names", None)
        figure = self.draw(z, labels, class_names)
        path = save_figure(figure, picture_path(trainer, self.filename))
        log_picture(trainer, "pictures/latent_map", figure)
        announce(path)

    def draw(self, z: torch.Tensor, labels: torch.Tensor, class_names: Sequence[str] | None = None) -> Figure:
        """The scatter plot of codes z [N, D] with labels [N], as a matplotlib Figure."""
        if z.shape[1] == 2:
            xy, title = z, "latent codes (2-d)"
            axes_names = ("z1", "z2")
        else:
            xy, share = principal_components(z)
            title = f"PCA of the {z.shape[1]}-d latent codes ({100 * share.sum():.0f}% of the variance)"
            axes_names = (f"PC1 ({100 * share[0]:.0f}%)", f"PC2 ({100 * share[1]:.0f}%)")
        figure = new_figure(self.width, self.height)
        ax = figure.add_subplot()
        palette = colormaps["tab10"]
        for label in sorted(set(labels.tolist())):
            mask = labels == label
            name = class_names[label] if class_names is not None and label < len(class_names) else str(label)
            ax.scatter(xy[mask, 0], xy[mask, 1], s=4, alpha=0.7, color=palette(label % 10), label=name)
        ax.set_title(f"{title}, {len(z)} test images")
        ax.set_xlabel(axes_names[0])
        ax.set_ylabel(axes_names[1])
        ax.legend(
            loc="upper left", bbox_to_anchor=(1.01, 1.0), markerscale=3, fontsize="small", frameon=False, title="class"
        )
        return figure
