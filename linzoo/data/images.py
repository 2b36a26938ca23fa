"""Images as a net's input, preprocessed one way for training and prediction alike.

Training on a folder of images (:mod:`linzoo.data.image_folder`) and predicting on your own
images (:mod:`linzoo.tools.image_inputs`) both go through :func:`load_image` then
:func:`preprocess`, so a net sees its inputs at prediction exactly as it saw them in training:

- a file (PNG, JPEG, BMP, GIF, WebP, TIFF, PPM/PGM; any size, grey, RGB, RGBA or palette) is decoded
  with PIL; transparency is composited onto a background that contrasts with the opaque ink
  (white under dark ink, black under light ink); then it is converted to grey (ITU-R 601 luma,
  PIL's ``convert("L")``) or RGB for a 3-channel net, padded to a square with its border colour
  and resized to S x S (bilinear): uint8 ``[C, S, S]``;
- :func:`preprocess` scales to [0, 1] (no mean/std normalisation) and inverts where ``invert``
  says (``"auto"``: an image whose outer ring of pixels averages above 0.5, dark ink on light
  paper, becomes MNIST's light-on-dark).

Files are decoded with PIL, not ``torchvision.io.decode_image``: that reads PNG, JPEG, GIF and
WebP but not BMP or TIFF, and one decoder for all is simpler than two. Resizing a tensor is
``F.interpolate`` (bilinear, antialiased), the kernel ``transforms.v2.Resize`` runs on tensors.
"""

from __future__ import annotations

import os
import stat
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageSequence

from linzoo.common.errors import UserValueError

__all__ = [
    "IMAGE_SUFFIXES",
    "INVERT_CHOICES",
    "UnreadableImageWarning",
    "check_invert",
    "is_regular_file",
    "load_image",
    "preprocess",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")
INVERT_CHOICES = ("auto", "true", "false")


class UnreadableImageWarning(UserWarning):
    """An image file could not be decoded; it was skipped."""


def load_image(file: str | Path, *, image_size: int, in_channels: int) -> list[torch.Tensor]:
    """One file -> its frames (one, unless animated or multi-page), each uint8 [in_channels, S, S]:
    transparency composited onto a background contrasting with the ink, grey (or RGB), padded
    square with the border colour, resized. A decompression bomb raises (PIL's warning too)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with Image.open(file) as image:
            image.load()
            frames = [_flatten(frame, in_channels) for frame in ImageSequence.Iterator(image)]
    return [_square_and_resize(frame, image_size=image_size, in_channels=in_channels) for frame in frames]


def is_regular_file(path: Path) -> bool:
    """A regular file (following links): never open a FIFO, a device or a socket, which can block forever."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def preprocess(
    images: torch.Tensor, *, image_size: int, in_channels: int = 1, invert: str | bool = "auto"
) -> torch.Tensor:
    """Images [N, C, H, W] (uint8 or float in [0, 1]) -> float32 [N, in_channels, S, S] in [0, 1], as trained."""
    invert = check_invert(invert)
    if images.dim() != 4 or len(images) == 0:
        raise UserValueError(f"Images of shape {list(images.shape)}: expected a non-empty batch [N, C, H, W].")
    if images.is_floating_point() and not bool(torch.isfinite(images).all()):
        raise UserValueError("Images with NaN or infinite pixels cannot be predicted; give finite values in [0, 1].")
    if images.dtype == torch.uint8:
        images = images.float() / 255.0
    images = images.float()
    if images.shape[1] == 4:  # RGBA: the alpha composited onto a background contrasting with the ink
        images = _composite_alpha(images[:, :3], images[:, 3:])
    if images.shape[1] != in_channels:
        if images.shape[1] == 3 and in_channels == 1:  # ITU-R 601 luma, as PIL's convert("L")
            images = (images * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
        elif images.shape[1] == 1:
            images = images.expand(-1, in_channels, -1, -1)
        else:
            raise UserValueError(f"Images with {images.shape[1]} channels cannot feed a net with {in_channels}.")
    if tuple(images.shape[-2:]) != (image_size, image_size):
        images = F.interpolate(
            images, size=(image_size, image_size), mode="bilinear", antialias=True, align_corners=False
        )
    images = images.clamp(0, 1)
    flip = _light_background(images) if invert == "auto" else torch.full((len(images),), invert == "true")
    return torch.where(flip.view(-1, 1, 1, 1), 1 - images, images).contiguous()


def check_invert(invert: str | bool) -> str:
    value = str(invert).lower()
    if value not in INVERT_CHOICES:
        raise UserValueError(f"invert={invert!r} is not one of {', '.join(INVERT_CHOICES)}.")
    return value


def _light_background(images: torch.Tensor) -> torch.Tensor:
    """bool [N]: the mean of the outermost ring of pixels is above 0.5 (dark ink on light paper)."""
    border = torch.cat([images[..., 0, :], images[..., -1, :], images[..., :, 0], images[..., :, -1]], dim=-1)
    return border.flatten(1).mean(dim=1) > 0.5


def _composite_alpha(rgb: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """float [N, 3, H, W] over a background: white under dark ink (the opaque pixels), black under light."""
    luma = (rgb * torch.tensor([0.299, 0.587, 0.114], dtype=rgb.dtype).view(1, 3, 1, 1)).sum(1, keepdim=True)
    ink = (luma * alpha).flatten(1).sum(1) / alpha.flatten(1).sum(1).clamp_min(1e-6)
    background = (ink < 0.5).to(rgb.dtype).view(-1, 1, 1, 1)
    return rgb * alpha + background * (1 - alpha)


def _flatten(frame: Image.Image, in_channels: int) -> Image.Image:
    """A frame as L (or RGB), its transparency (if any) composited as :func:`_composite_alpha` does."""
    mode = "L" if in_channels == 1 else "RGB"
    if frame.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in frame.info:
        rgba = np.asarray(frame.convert("RGBA"), dtype=np.float32) / 255
        if rgba[..., 3].min() < 1:
            rgb = torch.from_numpy(rgba[..., :3].transpose(2, 0, 1).copy())[None]
            alpha = torch.from_numpy(rgba[..., 3].copy())[None, None]
            flat = (_composite_alpha(rgb, alpha)[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
            return Image.fromarray(flat, "RGB").convert(mode)
    return frame.convert(mode)


def _square_and_resize(image: Image.Image, *, image_size: int, in_channels: int) -> torch.Tensor:
    width, height = image.size
    if width != height:
        array = np.asarray(image)
        ring = np.concatenate([array[0], array[-1], array[:, 0], array[:, -1]])
        fill = tuple(int(v) for v in np.median(ring.reshape(len(ring), -1), axis=0))
        square = Image.new(image.mode, (max(width, height),) * 2, fill if in_channels != 1 else fill[0])
        square.paste(image, ((max(width, height) - width) // 2, (max(width, height) - height) // 2))
        image = square
    image = image.resize((image_size, image_size), Image.Resampling.BILINEAR)
    array = np.asarray(image, dtype=np.uint8)
    array = array[None] if array.ndim == 2 else array.transpose(2, 0, 1)
    return torch.from_numpy(array.copy())
