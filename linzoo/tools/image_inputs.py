"""Your own images as a model's input: files, folders and tensors, preprocessed as in training.

Training feeds a net float32 images [B, C, S, S] in [0, 1] (uint8 / 255, no mean/std
normalisation: see ``linzoo.data.tensor_dataset.to_float_images``), light digits on a dark
background. :func:`read_inputs` turns anything a user has into exactly that:

- an image file (PNG, JPEG, ...; any size, colour or grey): converted to grey (or RGB for a
  3-channel net), padded to a square with its border colour, resized to S x S (bilinear,
  antialiased when shrinking), divided by 255;
- a folder: every image file in it, sorted by name (files that cannot be decoded are skipped
  with a warning, the rest are read);
- a ``.pt`` / ``.npy`` tensor [H, W], [N, H, W] or [N, C, H, W], uint8 in 0..255 or float in [0, 1].

Files are decoded with PIL, not ``torchvision.io.decode_image``: that reads PNG, JPEG, GIF and
WebP but not BMP or TIFF, which predict accepts, and one decoder for all is simpler than two.
Resizing is ``F.interpolate`` (bilinear, antialiased), the same kernel ``transforms.v2.Resize`` runs on tensors.

``invert``: ``"auto"`` inverts an image whose border is light (mean > 0.5: a dark digit drawn on
white paper or in a paint program) to MNIST's light-on-dark; ``"true"`` inverts all, ``"false"`` none.
"""

from __future__ import annotations

import logging
import pickle
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from linzoo.common.errors import UserFileNotFoundError, UserValueError

log = logging.getLogger(__name__)

__all__ = ["IMAGE_SUFFIXES", "TENSOR_SUFFIXES", "UnreadableImageWarning", "preprocess", "read_inputs"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
TENSOR_SUFFIXES = (".pt", ".npy")
INVERT_CHOICES = ("auto", "true", "false")


class UnreadableImageWarning(UserWarning):
    """An input image could not be decoded; it was skipped."""


def read_inputs(
    path: str | Path, *, image_size: int, in_channels: int = 1, invert: str | bool = "auto"
) -> tuple[list[str], torch.Tensor]:
    """``(names, images float32 [N, in_channels, image_size, image_size] in [0, 1])`` of ``path``."""
    invert = _check_invert(invert)
    path = Path(path)
    if not path.exists():
        raise UserFileNotFoundError(
            f"inputs={path}: nothing there. Give an image file, a folder of images, or a .pt/.npy tensor."
        )
    if path.is_dir():
        files = sorted(file for file in path.iterdir() if file.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise UserValueError(
                f"inputs={path} is a folder with no images (looked for {', '.join(IMAGE_SUFFIXES)}); "
                "put PNG or JPEG files in it, or point inputs= at one image or a .pt/.npy tensor."
            )
        return _read_image_files(files, image_size=image_size, in_channels=in_channels, invert=invert)
    suffix = path.suffix.lower()
    if suffix in TENSOR_SUFFIXES:
        images = preprocess(_read_tensor(path), image_size=image_size, in_channels=in_channels, invert=invert)
        return [f"{path.name}[{index}]" for index in range(len(images))], images
    if suffix in IMAGE_SUFFIXES:
        return _read_image_files([path], image_size=image_size, in_channels=in_channels, invert=invert)
    raise UserValueError(
        f"inputs={path}: unknown kind of file {suffix!r}; expected an image ({', '.join(IMAGE_SUFFIXES)}), "
        f"a tensor ({', '.join(TENSOR_SUFFIXES)}) or a folder of images."
    )


def preprocess(
    images: torch.Tensor, *, image_size: int, in_channels: int = 1, invert: str | bool = "auto"
) -> torch.Tensor:
    """Images [N, C, H, W] (uint8 or float in [0, 1]) -> float32 [N, in_channels, S, S] in [0, 1], as trained."""
    invert = _check_invert(invert)
    if images.dtype == torch.uint8:
        images = images.float() / 255.0
    images = images.float()
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


def _check_invert(invert: str | bool) -> str:
    value = str(invert).lower()
    if value not in INVERT_CHOICES:
        raise UserValueError(f"invert={invert!r} is not one of {', '.join(INVERT_CHOICES)}.")
    return value


def _light_background(images: torch.Tensor) -> torch.Tensor:
    """bool [N]: the mean of the outermost ring of pixels is above 0.5 (dark ink on light paper)."""
    border = torch.cat([images[..., 0, :], images[..., -1, :], images[..., :, 0], images[..., :, -1]], dim=-1)
    return border.flatten(1).mean(dim=1) > 0.5


def _read_image_files(
    files: list[Path], *, image_size: int, in_channels: int, invert: str
) -> tuple[list[str], torch.Tensor]:
    names, images = [], []
    for file in files:
        try:
            images.append(_load_image(file, image_size=image_size, in_channels=in_channels))
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
            message = f"Skipped {file}: it cannot be decoded as an image ({type(error).__name__}: {error})."
            warnings.warn(message, UnreadableImageWarning, stacklevel=2)
            continue
        names.append(file.name)
    if not images:
        raise UserValueError(
            f"None of the {len(files)} image file(s) at {files[0].parent} could be decoded; nothing to predict."
        )
    return names, preprocess(torch.stack(images), image_size=image_size, in_channels=in_channels, invert=invert)


def _load_image(file: Path, *, image_size: int, in_channels: int) -> torch.Tensor:
    """One file -> uint8 [in_channels, S, S]: grey (or RGB), padded square with the border colour, resized."""
    with Image.open(file) as image:
        image.load()
        image = image.convert("L" if in_channels == 1 else "RGB")
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


def _read_tensor(path: Path) -> torch.Tensor:
    """A .pt/.npy file -> images [N, C, H, W] (uint8 or float)."""
    try:
        data = (
            torch.load(path, map_location="cpu", weights_only=True)
            if path.suffix == ".pt"
            else torch.from_numpy(np.load(path))
        )
    except (RuntimeError, ValueError, OSError, EOFError, pickle.UnpicklingError) as error:
        raise UserValueError(f"inputs={path} cannot be read as a tensor ({type(error).__name__}: {error}).") from error
    if not isinstance(data, torch.Tensor):
        raise UserValueError(
            f"inputs={path} holds a {type(data).__name__}, not a tensor of images [N, H, W] or [N, C, H, W]."
        )
    shape = list(data.shape)
    if data.dim() == 2:
        data = data[None, None]
    elif data.dim() == 3:
        data = data[:, None]
    elif data.dim() != 4:
        raise UserValueError(f"inputs={path} has shape {shape}; expected images [H, W], [N, H, W] or [N, C, H, W].")
    if data.is_floating_point():
        if data.numel() and (data.min() < 0 or data.max() > 1):
            raise UserValueError(
                f"inputs={path} holds floats in [{float(data.min()):.3g}, {float(data.max()):.3g}]; "
                "give float images in [0, 1] or uint8 in 0..255."
            )
    elif data.dtype != torch.uint8:
        raise UserValueError(f"inputs={path} has dtype {data.dtype}; give float images in [0, 1] or uint8 in 0..255.")
    return data
