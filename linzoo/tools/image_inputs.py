"""Your own images as a model's input: files, folders and tensors, preprocessed as in training.

Training feeds a net float32 images [B, C, S, S] in [0, 1] (uint8 / 255, no mean/std
normalisation: see ``linzoo.data.tensor_dataset.to_float_images``), light digits on a dark
background. :func:`read_inputs` turns anything a user has into exactly that:

- an image file (PNG, JPEG, ...; any size, colour or grey): converted to grey (or RGB for a
  3-channel net), padded to a square with its border colour, resized to S x S (bilinear,
  antialiased when shrinking), divided by 255;
- a folder: every image file in it, sorted by name (files that cannot be decoded, decompression
  bombs (more pixels than PIL's ``Image.MAX_IMAGE_PIXELS``) and anything that is not a regular
  file, such as a named pipe, are skipped with a warning; the rest are read);
- a ``.pt`` / ``.npy`` tensor [H, W], [N, H, W] or [N, C, H, W], or channels-last [H, W, C] /
  [N, H, W, C] (C in 1, 3, 4 and H, W > 4: a numpy RGB image), uint8 in 0..255 or float in [0, 1];
  an empty tensor or one with NaN/inf pixels is refused.

Transparency: an image (or 4-channel tensor) with an alpha channel is composited onto a
background that contrasts with its opaque pixels, the ink: white under dark ink (then ``invert=auto``
makes it MNIST's light-on-dark), black under light ink. Animated images (GIF, APNG, WebP) and
multi-page TIFFs are not judged by their first frame: every frame is an input of its own, named
``file.gif[0]``, ``file.gif[1]``, ...

Decoding and preprocessing live in :mod:`linzoo.data.images`, shared with training on a folder
of images (``data=image_folder``), so predicted images are prepared exactly as training images.

``invert``: ``"auto"`` inverts an image whose border is light (mean > 0.5: a dark digit drawn on
white paper or in a paint program) to MNIST's light-on-dark; ``"true"`` inverts all, ``"false"`` none.
"""

from __future__ import annotations

import logging
import pickle
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from linzoo.common.errors import UserFileNotFoundError, UserValueError
from linzoo.data.images import (
    IMAGE_SUFFIXES,
    UnreadableImageWarning,
    check_invert,
    is_regular_file,
    load_image,
    preprocess,
)

log = logging.getLogger(__name__)

__all__ = [
    "IMAGE_SUFFIXES",
    "TENSOR_SUFFIXES",
    "RawInputs",
    "UnreadableImageWarning",
    "collect_inputs",
    "preprocess",
    "read_inputs",
]

TENSOR_SUFFIXES = (".pt", ".npy")


@dataclass(frozen=True)
class RawInputs:
    """What ``inputs=`` names, checked and read as far as it can be without the net: the image
    files to decode, or the tensor file's images [N, C, H, W] (uint8 or float)."""

    path: Path
    files: list[Path] | None = None
    tensor: torch.Tensor | None = None


def collect_inputs(path: str | Path, *, setting: str = "inputs") -> RawInputs:
    """Check ``path`` and read a tensor file (its shape, dtype, range and finiteness checked): all a
    user's mistake in ``inputs=`` (or the ``setting`` named) that can be found before the model is loaded."""
    path = Path(path)
    if not path.exists():
        raise UserFileNotFoundError(
            f"{setting}={path}: nothing there. Give an image file, a folder of images, or a .pt/.npy tensor."
        )
    if path.is_dir():
        files = sorted(file for file in path.iterdir() if file.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise UserValueError(
                f"{setting}={path} is a folder with no images (looked for {', '.join(IMAGE_SUFFIXES)}); "
                f"put PNG or JPEG files in it, or point {setting}= at one image or a .pt/.npy tensor."
            )
        return RawInputs(path, files=files)
    if not is_regular_file(path):
        raise UserValueError(
            f"{setting}={path} is not a regular file (a named pipe, a device or a socket); give an image file, "
            "a folder of images, or a .pt/.npy tensor."
        )
    suffix = path.suffix.lower()
    if suffix in TENSOR_SUFFIXES:
        return RawInputs(path, tensor=_read_tensor(path, setting))
    if suffix in IMAGE_SUFFIXES:
        return RawInputs(path, files=[path])
    raise UserValueError(
        f"{setting}={path}: unknown kind of file {suffix!r}; expected an image ({', '.join(IMAGE_SUFFIXES)}), "
        f"a tensor ({', '.join(TENSOR_SUFFIXES)}) or a folder of images."
    )


def read_inputs(
    path: str | Path | RawInputs, *, image_size: int, in_channels: int = 1, invert: str | bool = "auto"
) -> tuple[list[str], torch.Tensor]:
    """``(names, images float32 [N, in_channels, image_size, image_size] in [0, 1])`` of ``path``
    (or of what :func:`collect_inputs` made of it)."""
    invert = check_invert(invert)
    raw = path if isinstance(path, RawInputs) else collect_inputs(path)
    if raw.tensor is not None:
        images = preprocess(raw.tensor, image_size=image_size, in_channels=in_channels, invert=invert)
        return [f"{raw.path.name}[{index}]" for index in range(len(images))], images
    assert raw.files is not None
    return _read_image_files(raw.files, image_size=image_size, in_channels=in_channels, invert=invert)


def _read_image_files(
    files: list[Path], *, image_size: int, in_channels: int, invert: str
) -> tuple[list[str], torch.Tensor]:
    names, images, skipped = [], [], []
    for file in files:
        if not is_regular_file(file):
            message = f"Skipped {file}: it is not a regular file (a folder, a named pipe, a device or a socket)."
            skipped.append(message)
            warnings.warn(message, UnreadableImageWarning, stacklevel=2)
            continue
        try:
            frames = load_image(file, image_size=image_size, in_channels=in_channels)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
            message = f"Skipped {file}: it is too large to decode safely, a possible decompression bomb ({error})."
            skipped.append(message)
            warnings.warn(message, UnreadableImageWarning, stacklevel=2)
            continue
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
            message = f"Skipped {file}: it cannot be decoded as an image ({type(error).__name__}: {error})."
            skipped.append(message)
            warnings.warn(message, UnreadableImageWarning, stacklevel=2)
            continue
        images.extend(frames)
        names.extend([file.name] if len(frames) == 1 else [f"{file.name}[{index}]" for index in range(len(frames))])
    if not images:
        first = skipped[0].removeprefix("Skipped ")  # "<file>: <why>"
        if len(files) == 1:  # one file: its own reason, not a count
            raise UserValueError(f"{first} Nothing to predict.")
        raise UserValueError(
            f"None of the {len(files)} image files in {files[0].parent} could be decoded; nothing to predict "
            f"(the first: {first})"
        )
    return names, preprocess(torch.stack(images), image_size=image_size, in_channels=in_channels, invert=invert)


def _read_tensor(path: Path, setting: str = "inputs") -> torch.Tensor:
    """A .pt/.npy file -> images [N, C, H, W] (uint8 or float)."""
    try:
        data = (
            torch.load(path, map_location="cpu", weights_only=True)
            if path.suffix == ".pt"
            else torch.from_numpy(np.load(path))
        )
    except (RuntimeError, ValueError, OSError, EOFError, pickle.UnpicklingError) as error:
        raise UserValueError(
            f"{setting}={path} cannot be read as a tensor ({type(error).__name__}: {error})."
        ) from error
    if not isinstance(data, torch.Tensor):
        raise UserValueError(
            f"{setting}={path} holds a {type(data).__name__}, not a tensor of images [N, H, W] or [N, C, H, W]."
        )
    shape = list(data.shape)
    if data.numel() == 0:
        raise UserValueError(f"{setting}={path} has shape {shape}: it holds no images; nothing to predict.")
    if data.is_floating_point() and not bool(torch.isfinite(data).all()):
        bad = int((~torch.isfinite(data)).sum())
        raise UserValueError(
            f"{setting}={path} holds {bad} NaN or infinite value(s); give finite float images in [0, 1] or uint8 in 0..255."
        )
    if _channels_last(data):  # [H, W, C] / [N, H, W, C], as numpy and PIL hold colour images
        data = data.movedim(-1, -3)
        if data.dim() == 3:
            data = data[None]
    if data.dim() == 2:
        data = data[None, None]
    elif data.dim() == 3:
        data = data[:, None]
    elif data.dim() != 4:
        raise UserValueError(f"{setting}={path} has shape {shape}; expected images [H, W], [N, H, W] or [N, C, H, W].")
    if data.is_floating_point():
        if data.numel() and (data.min() < 0 or data.max() > 1):
            raise UserValueError(
                f"{setting}={path} holds floats in [{float(data.min()):.3g}, {float(data.max()):.3g}]; "
                "give float images in [0, 1] or uint8 in 0..255."
            )
    elif data.dtype != torch.uint8:
        raise UserValueError(
            f"{setting}={path} has dtype {data.dtype}; give float images in [0, 1] or uint8 in 0..255."
        )
    return data


def _channels_last(data: torch.Tensor) -> bool:
    """[H, W, C] or [N, H, W, C] with C in 1, 3, 4 and H, W > 4 (a [N, C, H, W] batch has C <= 4 at dim 1)."""
    if data.dim() not in (3, 4) or data.shape[-1] not in (1, 3, 4):
        return False
    height, width = data.shape[-3], data.shape[-2]
    return height > 4 and width > 4
