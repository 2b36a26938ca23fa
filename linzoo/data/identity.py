"""Which data a run read: recorded in every checkpoint and ``metrics.json``, compared before eval and resume.

The identity of a data module after ``setup()`` is plain data (it goes into a checkpoint)::

    {"dataset": "mnist", "source": "mnist", "split_seed": 0, "val_size": 5000,
     "sizes": {"train": 55000, "val": 5000, "test": 10000},
     "fingerprints": {"train": "9f0c...", "val": "41aa...", "test": "be77..."}}

A split's fingerprint is the first 16 hex digits of SHA-256 over its images (uint8, in order)
and labels (int64): it changes when the files, the source, the split seed or the validation
size change what the split holds, and with nothing else (gzip or plain files, another folder
with the same files). Hashing full MNIST (55 MB) takes about 0.1 s.
"""

from __future__ import annotations

import hashlib
from typing import Any

from linzoo.data.tensor_dataset import ImageTensorDataset

__all__ = ["SPLITS", "data_identity", "describe_identity", "identity_differences", "split_fingerprint"]

SPLITS = ("train", "val", "test")
SETTINGS = ("dataset", "source", "split_seed", "val_size")  # what a user sets; the fingerprints are what they read


def split_fingerprint(split: ImageTensorDataset) -> str:
    """SHA-256 of ``images`` (uint8 ``[N, 1, H, W]``) then ``labels`` (int64 ``[N]``), 16 hex digits."""
    digest = hashlib.sha256()
    digest.update(split.images.contiguous().cpu().numpy().tobytes())
    digest.update(split.labels.contiguous().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


def data_identity(
    *,
    dataset: str,
    source: str,
    split_seed: int,
    val_size: int | None,
    splits: dict[str, ImageTensorDataset],
    class_names: list[str] | None = None,
) -> dict[str, Any]:
    """The identity record of loaded data; ``val_size`` None where the split sizes are fixed (the sample).
    ``class_names`` (label k is ``class_names[k]``) is recorded where the data names its classes
    (``data=image_folder``: its folder names); predict prints them."""
    identity = {
        "dataset": dataset,
        "source": source,
        "split_seed": split_seed,
        "val_size": val_size,
        "sizes": {name: len(splits[name]) for name in SPLITS},
        "fingerprints": {name: split_fingerprint(splits[name]) for name in SPLITS},
    }
    if class_names is not None:
        identity["class_names"] = list(class_names)
    return identity


def describe_identity(identity: dict[str, Any]) -> str:
    """One clause for people: ``"mnist (source mnist, split seed 0, test 10,000 images, test fingerprint be77...)"``."""
    sizes, fingerprints = identity.get("sizes", {}), identity.get("fingerprints", {})
    return (
        f"{identity.get('dataset')} (source {identity.get('source')}, split seed {identity.get('split_seed')}, "
        f"test {sizes.get('test', 0):,} images, test fingerprint {fingerprints.get('test')})"
    )


def identity_differences(recorded: dict[str, Any], now: dict[str, Any], *, splits: tuple[str, ...]) -> list[str]:
    """What differs between the data a checkpoint recorded and the data loaded now, for people;
    empty when every split in ``splits`` holds the same images and labels.

    The settings that differ are named (``"split_seed: 0 -> 1"``); when none does, the files do.
    Other class names (a renamed class folder) differ whatever the images: a label means another class.
    """
    recorded_names, now_names = recorded.get("class_names"), now.get("class_names")
    if recorded_names is not None and now_names is not None and recorded_names != now_names:
        return [f"class_names: {recorded_names} -> {now_names} (label k means another class)"]
    recorded_prints, now_prints = recorded.get("fingerprints", {}), now.get("fingerprints", {})
    changed = [name for name in splits if recorded_prints.get(name) != now_prints.get(name)]
    if not changed:
        return []
    settings = [
        f"{key}: {recorded.get(key)!r} -> {now.get(key)!r}" for key in SETTINGS if recorded.get(key) != now.get(key)
    ]
    if settings:
        return settings
    return [
        f"the {name} split holds other images (fingerprint {recorded_prints.get(name)} -> {now_prints.get(name)})"
        for name in changed
    ]
