"""Folders of generated images for data=image_folder and its docs: one sub-folder per class, every
PIL mode and several sizes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

MODES = ["L", "RGB", "RGBA", "P"]  # grey, colour, colour with transparency, palette
SIZES = [(28, 28), (40, 24), (17, 33), (64, 64)]


def draw(label: int, index: int) -> np.ndarray:
    """A light shape on a dark background, uint8 [H, W] of one of SIZES: class 0 a bar across,
    class 1 a bar down, class 2 a square; positions jitter with ``index``, and a corner block
    of grey level 30 + 2 * index makes every image of a class another one."""
    height, width = SIZES[index % len(SIZES)]
    image = np.full((height, width), 20, dtype=np.uint8)
    image[:6, :6] = 30 + 2 * index
    shift = index % 3
    if label == 0:
        image[height // 2 - 2 + shift : height // 2 + 2 + shift, 2:-2] = 230
    elif label == 1:
        image[2:-2, width // 2 - 2 + shift : width // 2 + 2 + shift] = 230
    else:
        image[height // 4 + shift : 3 * height // 4, width // 4 : 3 * width // 4 - shift] = 230
    return image


def save(image: np.ndarray, path: Path, mode: str) -> Path:
    """``image`` (grey uint8) saved in ``mode``: PNG, or JPEG for RGB."""
    picture = Image.fromarray(image)
    if mode == "RGB":
        path = path.with_suffix(".jpg")
        picture.convert("RGB").save(path, quality=95)
    elif mode == "RGBA":
        rgba = picture.convert("RGBA")
        rgba.putalpha(255)
        rgba.save(path)
    else:
        picture.convert(mode).save(path)
    return path


def make_folder(root: Path, counts: dict[str, int]) -> Path:
    """``root/<class>/<i>.png|jpg`` for each class of ``counts`` (in the order given), all MODES and SIZES."""
    for label, (name, count) in enumerate(counts.items()):
        (root / name).mkdir(parents=True, exist_ok=True)
        for index in range(count):
            save(draw(label, index), root / name / f"{index:03d}.png", MODES[index % len(MODES)])
    return root
