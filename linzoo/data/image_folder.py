"""LightningDataModule for your own images: one sub-folder per class (``data=image_folder data.root=DIR``).

The layout follows torchvision's ``ImageFolder`` (:mod:`linzoo.data.class_folders`): the classes
are the sub-folders' names, sorted. Every image is read once, in :meth:`ImageFolderDataModule.setup`,
with predict's own preprocessing (:mod:`linzoo.data.images`: transparency composited, grey, or RGB
for ``in_channels=3``, padded square, resized to ``image_size``, ``invert``), and kept in memory as
uint8 ``[N, C, S, S]`` (784 bytes an image at 28x28 grey).

Splits: ``train/``, ``val/`` and ``test/`` folders where the root has them; a missing ``val/`` or
``test/`` (or all three, for a root of class folders) is drawn from the training images, seeded and
stratified by class, in the fractions ``val_fraction`` and ``test_fraction``.

A file that cannot be decoded (or is not a regular file, or is a decompression bomb) is skipped:
one :class:`UnreadableImageWarning` lists the skipped files, :meth:`describe` counts them, and the
split fingerprints record what was read. A class left with no images is an error.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.utilities.rank_zero import rank_zero_warn
from PIL import Image, UnidentifiedImageError

from linzoo.common.errors import ConfigError, UserValueError
from linzoo.data.augment import DEGREES, PADDING, SCALE, TRANSLATE
from linzoo.data.class_folders import ClassFolders, FolderLayout, scan_image_folder
from linzoo.data.identity import data_identity
from linzoo.data.images import INVERT_CHOICES, UnreadableImageWarning, is_regular_file, load_image, preprocess
from linzoo.data.in_memory import InMemoryDataModule
from linzoo.data.splits import stratified_split_indices
from linzoo.data.tensor_dataset import ImageTensorDataset

__all__ = ["DATASET", "ImageFolderDataModule"]

DATASET = "image_folder"
CHUNK = 4096  # images preprocessed at a time
UNDECODABLE = (UnidentifiedImageError, OSError, SyntaxError, ValueError)  # what PIL raises on a broken file


class ImageFolderDataModule(InMemoryDataModule):
    """Your images, from ``root`` (class folders, or ``train/``, ``val/``, ``test/`` of class folders);
    batches ``(float32 [B, in_channels, image_size, image_size] in [0, 1], int64 [B])``.

    ``image_size`` and ``in_channels`` (1: grey, 3: RGB) must be the model's: ``configs/data/image_folder.yaml``
    takes them from ``model.net``. ``invert`` (``auto``, ``true``, ``false``) is predict's: ``auto``
    turns an image with a light border (dark ink on light paper) into light-on-dark, as MNIST is.
    ``val_fraction`` and ``test_fraction`` of the training images make the missing splits.
    After :meth:`setup`: ``class_names`` (label k is ``class_names[k]``) and ``num_classes``.
    """

    def __init__(
        self,
        *,
        root: str | os.PathLike[str] | None = None,
        image_size: int = 28,
        in_channels: int = 1,
        invert: str = "auto",
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        batch_size: int = 64,
        eval_batch_size: int = 1000,
        num_workers: int = 0,
        pin_memory: bool = False,
        drop_last: bool = False,
        on_device: bool = False,
        seed: int = 0,
        augment: str = "none",
        affine_degrees: float = DEGREES,
        affine_translate: float = TRANSLATE,
        affine_scale: tuple[float, float] = SCALE,
        crop_padding: int = PADDING,
    ) -> None:
        super().__init__(
            batch_size=batch_size,
            eval_batch_size=eval_batch_size,
            num_workers=num_workers,
            pin_memory=pin_memory,
            drop_last=drop_last,
            on_device=on_device,
            seed=seed,
            augment=augment,
            affine_degrees=affine_degrees,
            affine_translate=affine_translate,
            affine_scale=affine_scale,
            crop_padding=crop_padding,
        )
        if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 4:
            raise ConfigError("data.image_size", image_size, "an integer >= 4, the model's", "data.image_size=28")
        if in_channels not in (1, 3):
            raise ConfigError("data.in_channels", in_channels, "1 (grey) or 3 (RGB), the model's", "data.in_channels=1")
        if str(invert).lower() not in INVERT_CHOICES:
            raise ConfigError("data.invert", invert, f"one of {', '.join(INVERT_CHOICES)}", "data.invert=auto")
        for name, value in {"val_fraction": val_fraction, "test_fraction": test_fraction}.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
                raise ConfigError(f"data.{name}", value, "a fraction between 0 and 1", f"data.{name}=0.1", number=True)
        if val_fraction + test_fraction >= 1:
            raise ConfigError(
                "data.val_fraction",
                val_fraction,
                f"a fraction that leaves training images beside data.test_fraction={test_fraction}",
                "data.val_fraction=0.1 data.test_fraction=0.1",
            )
        self.root = root
        self.image_size = image_size
        self.in_channels = in_channels
        self.invert = str(invert).lower()
        self.val_fraction = val_fraction
        self.test_fraction = test_fraction
        self.layout: FolderLayout | None = None
        self.source: str | None = None  # the folder setup() read
        self.skipped: list[Path] = []  # files that could not be decoded
        self._identity: dict[str, Any] | None = None

    # ----------------------------------------------------------------- loading
    @property
    def class_names(self) -> tuple[str, ...]:
        """The class folders' names, sorted: label k is ``class_names[k]``."""
        if self.layout is None:
            self.layout = scan_image_folder(self.root)
        return self.layout.class_names

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def setup(self, stage: str | None = None) -> None:
        """Read every image of the folder (once; every stage gets the same splits)."""
        if self.train_set is not None:
            return
        self.layout = scan_image_folder(self.root)
        self.skipped = []
        read = {name: self._read(folders) for name, folders in self.layout.splits.items()}
        if self.skipped:
            shown = ", ".join(str(path) for path in self.skipped[:10])
            more = f" and {len(self.skipped) - 10} more" if len(self.skipped) > 10 else ""
            rank_zero_warn(
                f"Skipped {len(self.skipped)} file(s) of data.root={self.root} that cannot be decoded as images: "
                f"{shown}{more}. Fix: delete or re-save them (the run trains on the rest).",
                category=UnreadableImageWarning,
            )
        train = read.pop("train") if "train" in read else read.pop("all")
        missing = [name for name in ("val", "test") if name not in read]
        self.train_set, drawn = self._draw(train, missing)
        read.update(drawn)
        self.val_set, self.test_set = read["val"], read["test"]
        self.source = str(self.layout.root)

    def _read(self, folders: ClassFolders) -> ImageTensorDataset:
        """Every image of ``folders``, preprocessed: uint8 [N, C, S, S] and labels int64 [N]."""
        images, labels = [], []
        for label, (name, files) in enumerate(zip(folders.class_names, folders.files)):
            count = 0
            for file in files:
                image = self._decode(file)
                if image is not None:
                    images.append(image)
                    count += 1
            if count == 0:
                raise UserValueError(
                    f"data.root={self.root}: none of the {len(files)} image file(s) of class {name} "
                    f"({folders.path / name}) can be decoded. Fix: replace them with readable images."
                )
            labels += [label] * count
        stacked = torch.stack(images)
        chunks = [
            preprocess(chunk, image_size=self.image_size, in_channels=self.in_channels, invert=self.invert)
            for chunk in stacked.split(CHUNK)
        ]
        as_bytes = (torch.cat(chunks) * 255).round().to(torch.uint8)
        return ImageTensorDataset(as_bytes, torch.tensor(labels, dtype=torch.int64))

    def _decode(self, file: Path) -> torch.Tensor | None:
        """uint8 [C, S, S] of the file's first frame, or None (and the file listed as skipped)."""
        if not is_regular_file(file):
            self.skipped.append(file)
            return None
        try:
            return load_image(file, image_size=self.image_size, in_channels=self.in_channels)[0]
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) + UNDECODABLE:
            self.skipped.append(file)
            return None

    def _draw(
        self, train: ImageTensorDataset, missing: list[str]
    ) -> tuple[ImageTensorDataset, dict[str, ImageTensorDataset]]:
        """The splits named in ``missing`` (``val``, ``test``) drawn from ``train``, seeded and stratified."""
        if not missing:
            return train, {}
        fractions = {"val": self.val_fraction, "test": self.test_fraction}
        sizes = {name: round(len(train) * fractions[name]) for name in missing}
        kept = len(train) - sum(sizes.values())
        for name, size in sizes.items():
            if size == 0 or kept == 0:
                raise ConfigError(
                    f"data.{name}_fraction",
                    fractions[name],
                    f"a fraction of the {len(train)} training images that leaves images for {name} and train",
                    f"add images, or a {name}/ folder beside train/, or raise data.{name}_fraction",
                )
        parts = stratified_split_indices(train.labels, [kept, *sizes.values()], seed=self.seed)
        return train.subset(parts[0]), {name: train.subset(part) for name, part in zip(sizes, parts[1:])}

    # ----------------------------------------------------------------- identity
    def identity(self) -> dict[str, Any]:
        """Which images :meth:`setup` read: dataset ``image_folder``, source (the folder), split seed,
        sizes, fingerprints and the class names (:mod:`linzoo.data.identity`)."""
        if self._identity is None:
            splits = {name: self._split(name) for name in ("train", "val", "test")}
            self._identity = data_identity(
                dataset=DATASET,
                source=str(self.source),
                split_seed=self.seed,
                val_size=None,
                splits=splits,
                class_names=list(self.class_names),
            )
        return self._identity

    def describe(self) -> str:
        """One line for people (after :meth:`setup`): ``"images from /x (3 classes: cat, dog, fox); train/val/test
        80/10/10 (val, test drawn from the class folders, seed 0)"``."""
        if self.layout is None or self.source is None:
            return f"images from {self.root} (not loaded yet)"
        names = self.class_names
        shown = ", ".join(names[:10]) + (f", ... ({len(names) - 10} more)" if len(names) > 10 else "")
        drawn = [name for name in ("val", "test") if name not in self.layout.splits]
        where = "train/" if "train" in self.layout.splits else "the class folders"
        how = f"; {', '.join(drawn)} drawn from {where}, seed {self.seed}" if drawn else ""
        sizes = self.sizes
        skipped = f"; {len(self.skipped)} unreadable file(s) skipped" if self.skipped else ""
        return (
            f"images from {self.source} ({len(names)} classes: {shown}); "
            f"train/val/test {sizes['train']:,}/{sizes['val']:,}/{sizes['test']:,}{how}{skipped}"
        )
