"""Training-time augmentation of a whole image batch, with independent random parameters per image.

``data.augment`` picks one of :data:`AUGMENTATIONS`:

- ``none``: images pass through unchanged.
- ``affine``: each image gets its own rotation (uniform in +-``degrees``), scale
  (uniform in ``scale``) and translation (uniform in +-``translate`` of the image size;
  ``data.affine_degrees``, ``data.affine_scale``, ``data.affine_translate``, default 10, [0.9, 1.1], 0.1),
  applied by one batched ``F.affine_grid`` + ``F.grid_sample`` (bilinear, zeros outside).
- ``crop``: random crop with zero padding: each image is shifted by its own integer
  offsets ``(dy, dx)`` in ``-padding..padding`` (pad by ``padding``, crop back to H x W;
  ``data.crop_padding``, default 2).

Why not torchvision.transforms.v2 or kornia: v2 draws ONE parameter set per call, so a
batch tensor gets a single shared transform (the known trap); per-image use means a
Python loop over the batch. kornia.augmentation draws per-image parameters but is a new
dependency (kornia + kornia-rs) for what is one affine_grid/grid_sample call here, and
draws from the global RNG. Here the parameters come from a ``torch.Generator`` the
caller passes, on the CPU (a few numbers per image), then move to the batch's device:
the same seed gives the same augmentation on CPU and GPU, and the pixel work runs on
the device where the batch lives.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from linzoo.common.errors import ConfigError, UserValueError

__all__ = ["AUGMENTATIONS", "BatchAugmenter", "batch_generator", "check_ranges", "make_augmenter"]

AUGMENTATIONS = ("none", "affine", "crop")
# Default ranges (data.affine_degrees, data.affine_translate, data.affine_scale, data.crop_padding).
DEGREES, TRANSLATE, SCALE, PADDING = 10.0, 0.1, (0.9, 1.1), 2


def check_ranges(*, degrees: float, translate: float, scale: Sequence[float], padding: int) -> None:
    """Raise :class:`ConfigError` (a ValueError) naming the ``data.*`` key when a range is out of its domain."""
    scale_ok = len(scale) == 2 and 0 < scale[0] <= scale[1]
    checks = [
        ("affine_degrees", degrees, 0 <= degrees <= 180, "a rotation range in degrees, 0..180", "10"),
        ("affine_translate", translate, 0 <= translate < 1, "a fraction of the image size in [0, 1)", "0.1"),
        ("affine_scale", list(scale), scale_ok, "[low,high] with 0 < low <= high", "[0.9,1.1]"),
        ("crop_padding", padding, isinstance(padding, int) and padding >= 0, "an integer >= 0 (pixels)", "2"),
    ]
    for key, value, ok, expected, example in checks:
        if not ok:
            raise ConfigError(f"data.{key}", value, expected, f"data.{key}={example}")


class BatchAugmenter:
    """``augmenter(images, generator=g) -> images``: float ``[B, C, H, W]`` in, same shape, dtype and device out.

    ``kind`` is ``"affine"`` or ``"crop"`` (see the module docstring for the formulas).
    """

    def __init__(
        self,
        kind: str,
        *,
        degrees: float = DEGREES,
        translate: float = TRANSLATE,
        scale: tuple[float, float] = SCALE,
        padding: int = PADDING,
    ) -> None:
        if kind not in AUGMENTATIONS[1:]:
            raise UserValueError(f"BatchAugmenter kind must be one of {list(AUGMENTATIONS[1:])}, got {kind!r}.")
        check_ranges(degrees=degrees, translate=translate, scale=scale, padding=padding)
        self.kind = kind
        self.degrees = float(degrees)
        self.translate = float(translate)
        self.scale = (float(scale[0]), float(scale[1]))
        self.padding = padding

    def __repr__(self) -> str:
        if self.kind == "crop":
            return f"BatchAugmenter('crop', padding={self.padding})"
        return f"BatchAugmenter('affine', degrees={self.degrees}, translate={self.translate}, scale={self.scale})"

    def __call__(self, images: Tensor, *, generator: torch.Generator) -> Tensor:
        if images.dim() != 4:
            raise UserValueError(f"augmentation expects images [B, C, H, W], got shape {tuple(images.shape)}.")
        if self.kind == "affine":
            return self.affine(images, generator=generator)
        return self.crop(images, generator=generator)

    def affine_matrices(self, batch_size: int, *, generator: torch.Generator) -> Tensor:
        """float32 ``[B, 2, 3]`` (CPU): per image ``theta = [[s cos a, -s sin a, tx], [s sin a, s cos a, ty]]``.

        ``theta`` maps output coordinates to input coordinates in ``affine_grid``'s
        normalised [-1, 1] frame, so ``tx = 2 * shift / size``.
        """
        uniform = torch.rand(batch_size, 4, generator=generator)
        angle = torch.deg2rad((2 * uniform[:, 0] - 1) * self.degrees)
        low, high = self.scale
        inverse_scale = 1.0 / (low + (high - low) * uniform[:, 1])  # the grid samples the input
        shift = (2 * uniform[:, 2:] - 1) * self.translate * 2  # fraction of the size -> [-1, 1] units
        cos, sin = torch.cos(angle) * inverse_scale, torch.sin(angle) * inverse_scale
        return torch.stack(
            [torch.stack([cos, -sin, shift[:, 0]], dim=1), torch.stack([sin, cos, shift[:, 1]], dim=1)], dim=1
        )

    def affine(self, images: Tensor, *, generator: torch.Generator) -> Tensor:
        theta = self.affine_matrices(images.shape[0], generator=generator).to(images.device, images.dtype)
        grid = F.affine_grid(theta, list(images.shape), align_corners=False)
        return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    def crop_offsets(self, batch_size: int, *, generator: torch.Generator) -> Tensor:
        """int64 ``[B, 2]`` (CPU): per image ``(dy, dx)`` in ``0..2 * padding``, the crop's corner in the padded image."""
        return torch.randint(0, 2 * self.padding + 1, (batch_size, 2), generator=generator)

    def crop(self, images: Tensor, *, generator: torch.Generator) -> Tensor:
        batch, channels, height, width = images.shape
        offsets = self.crop_offsets(batch, generator=generator).to(images.device)
        padded = F.pad(images, [self.padding] * 4).flatten(2)  # zeros (MNIST's background): [B, C, H' * W']
        padded_width = width + 2 * self.padding
        rows = offsets[:, :1] + torch.arange(height, device=images.device)  # [B, H]
        cols = offsets[:, 1:] + torch.arange(width, device=images.device)  # [B, W]
        flat = (rows[:, :, None] * padded_width + cols[:, None, :]).flatten(1)  # [B, H * W] into the padded image
        return padded.gather(2, flat[:, None, :].expand(batch, channels, -1)).view(batch, channels, height, width)


def make_augmenter(
    augment: str,
    *,
    degrees: float = DEGREES,
    translate: float = TRANSLATE,
    scale: Sequence[float] = SCALE,
    padding: int = PADDING,
) -> BatchAugmenter | None:
    """The augmenter that ``data.augment=<augment>`` names, with its ranges; None for ``"none"``.

    Ranges that the chosen kind does not use are still checked (a typo fails at once).
    """
    if augment not in AUGMENTATIONS:
        raise UserValueError(
            f"data.augment={augment!r} is not an augmentation; choose one of {list(AUGMENTATIONS)} "
            "(e.g. data.augment=affine)."
        )
    if augment == "none":
        check_ranges(
            degrees=degrees, translate=translate, scale=scale, padding=padding
        )  # BatchAugmenter checks its own
        return None
    return BatchAugmenter(augment, degrees=degrees, translate=translate, scale=tuple(scale), padding=padding)


def batch_generator(*, seed: int, batch_index: int, rank: int = 0) -> torch.Generator:
    """A CPU generator for one training batch, seeded from ``(seed, rank, batch_index)``.

    Keying the draws by the batch's index over the whole fit (not by a running
    generator) makes them reproducible and needs no saved state: a run resumed from
    a checkpoint at batch ``k`` draws what the uninterrupted run drew at batch ``k``.
    """
    key = (seed * 1_000_003 + rank) * 2_147_483_647 + batch_index
    return torch.Generator().manual_seed(key % (2**63 - 1))
