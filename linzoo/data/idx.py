"""Reading MNIST-family idx files, checked: a damaged file is named with what is wrong.

The idx format (LeCun): a 4-byte magic number ``0x00 0x00 <type> <ndim>`` (type 0x08 is
uint8), then ``ndim`` big-endian int32 sizes, then the data, ``prod(sizes)`` bytes for
uint8. MNIST and Fashion-MNIST images are ``[N, 28, 28]`` (ndim 3), labels ``[N]``
(ndim 1) with values 0..9.

Checks, in order: the header is complete; the magic number says uint8 with the expected
number of dimensions; images are 28x28; the file holds exactly the bytes the header
announces (a truncated or padded file is refused); labels are 0..9; and, for a file with
an official name AND the official size, its MD5 equals the official release's
(:data:`OFFICIAL_MD5`). The size rule keeps checksums to files that claim to be the
release: generated test files and subsets have other sizes and are checked structurally.
A label file with another MD5 is refused (other labels are another task); an image file
with another MD5 but a sound structure gets one :class:`ChecksumWarning`, because faithful
re-encodings exist (e.g. MNIST rebuilt from a PNG copy, off by a grey level here and there).
"""

from __future__ import annotations

import gzip
import hashlib
import warnings
from pathlib import Path

import torch
from torch import Tensor

from linzoo.common.errors import UserValueError

__all__ = [
    "OFFICIAL_MD5",
    "OFFICIAL_SIZES",
    "ChecksumWarning",
    "CorruptDataError",
    "check_pair",
    "find_idx_file",
    "read_idx",
    "read_idx_bytes",
]

_UINT8 = 0x08
IMAGE_SIZE = (28, 28)
NUM_CLASSES = 10

# Bytes of the uncompressed official files (the same for MNIST and Fashion-MNIST).
OFFICIAL_SIZES: dict[str, int] = {
    "train-images-idx3-ubyte": 16 + 60000 * 28 * 28,
    "train-labels-idx1-ubyte": 8 + 60000,
    "t10k-images-idx3-ubyte": 16 + 10000 * 28 * 28,
    "t10k-labels-idx1-ubyte": 8 + 10000,
}

# MD5 of the uncompressed official files. torchvision lists the MD5s of the .gz archives
# (checked when it downloads them); these are of the files it extracts from them, as
# published in several public projects that pin the release (e.g. MNIST loaders' "extracted
# files" checksums). MNIST's test labels give the known class counts [980, 1135, ...].
OFFICIAL_MD5: dict[str, dict[str, str]] = {
    "MNIST": {
        "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
        "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
        "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
        "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
    },
    "FashionMNIST": {
        "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
        "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
        "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
        "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
    },
}

_FIX = "Fix: delete the file and download it again (data.download=true), or copy a good one from another machine"


class ChecksumWarning(UserWarning):
    """An image file with an official name and size whose MD5 is not the official one."""


class CorruptDataError(UserValueError):
    """An idx file that cannot be the data it is named after; the message names file and fault."""


def find_idx_file(folder: Path, name: str) -> Path | None:
    """``folder/name`` (e.g. ``train-images-idx3-ubyte``) if it is a file, else its gzipped
    ``folder/name.gz`` (as the official release, Debian's packages and torchvision's downloads
    ship it), else None. The plain file wins when both are there: it reads faster."""
    name = name.removesuffix(".gz")
    for path in (folder / name, folder / f"{name}.gz"):
        if path.is_file():
            return path
    return None


def read_idx(path: Path, *, kind: str, dataset: str = "MNIST", verify_checksum: bool = True) -> Tensor:
    """The uint8 tensor in the idx file ``path`` (``.gz``: gzipped): images ``[N, 28, 28]`` or labels ``[N]``.

    ``kind``: ``"images"`` or ``"labels"``. ``dataset``: ``"MNIST"`` or ``"FashionMNIST"``
    (selects the official checksums). Raises :class:`CorruptDataError` naming the file.
    """
    data = path.read_bytes()
    if path.suffix == ".gz":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as error:
            raise CorruptDataError(f"{path} is not a valid gzip file ({error}). {_FIX}.") from error
    name = path.name.removesuffix(".gz")
    if verify_checksum:
        _check_official_md5(path, data, name=name, dataset=dataset)
    return read_idx_bytes(data, source=path, kind=kind)


def read_idx_bytes(data: bytes, *, source: Path | str, kind: str) -> Tensor:
    """Parse and check idx bytes (see the module docstring); ``source`` names them in messages."""
    expected_ndim = 3 if kind == "images" else 1
    if len(data) < 4:
        raise CorruptDataError(f"{source} is truncated: {len(data)} bytes, not even an idx header. {_FIX}.")
    magic = int.from_bytes(data[:4], "big")
    dtype_code, ndim = (magic >> 8) & 0xFF, magic & 0xFF
    if magic >> 16 != 0 or dtype_code != _UINT8 or ndim != expected_ndim:
        wanted = 0x0800 | expected_ndim
        raise CorruptDataError(
            f"{source} has magic number {magic:#010x}, expected {wanted:#010x} (uint8 {kind}, "
            f"{expected_ndim} dimension{'s' if expected_ndim > 1 else ''}): not an MNIST {kind} idx file. {_FIX}."
        )
    header = 4 + 4 * ndim
    if len(data) < header:
        raise CorruptDataError(f"{source} is truncated inside its header ({len(data)} of {header} bytes). {_FIX}.")
    shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    if kind == "images" and tuple(shape[1:]) != IMAGE_SIZE:
        raise CorruptDataError(f"{source} holds images of {shape[1]}x{shape[2]} pixels, expected 28x28. {_FIX}.")
    expected_bytes = header + _product(shape)
    if len(data) != expected_bytes:
        what = "truncated" if len(data) < expected_bytes else "longer than its header says"
        raise CorruptDataError(
            f"{source} is {what}: {len(data)} bytes, but its header announces {shape} ({expected_bytes} bytes). {_FIX}."
        )
    tensor = torch.frombuffer(bytearray(data), dtype=torch.uint8, offset=header).view(shape)
    if kind == "labels" and len(tensor) and int(tensor.max()) >= NUM_CLASSES:
        bad = int((tensor >= NUM_CLASSES).nonzero()[0])
        raise CorruptDataError(
            f"{source} has label {int(tensor[bad])} at index {bad}; labels must be 0..{NUM_CLASSES - 1}. {_FIX}."
        )
    return tensor


def check_pair(images: Tensor, labels: Tensor, *, images_path: Path, labels_path: Path) -> None:
    """Images and labels of one split must be equally many."""
    if len(images) != len(labels):
        raise CorruptDataError(
            f"{images_path} holds {len(images)} images but {labels_path} holds {len(labels)} labels; "
            f"one of them is from another release or damaged. {_FIX}."
        )


def _check_official_md5(path: Path, data: bytes, *, name: str, dataset: str) -> None:
    official = OFFICIAL_MD5.get(dataset, {}).get(name)
    if official is None or len(data) != OFFICIAL_SIZES[name]:
        return
    actual = hashlib.md5(data).hexdigest()
    if actual == official:
        return
    if "labels" in name:
        raise CorruptDataError(
            f"{path} has the official name and size but MD5 {actual}, not the official {official}: "
            f"its labels are damaged or not the official {dataset} release. {_FIX}; or, to use this copy "
            "on purpose, data.verify_checksums=false."
        )
    warnings.warn(
        ChecksumWarning(
            f"{path} has the official name and size and a sound structure, but MD5 {actual}, not the official "
            f"{official}: a re-encoded copy or changed pixels, so results may differ slightly from published "
            f"ones. Replace it with the official {dataset} file, or set data.verify_checksums=false to skip this check."
        ),
        stacklevel=2,
    )


def _product(shape: list[int]) -> int:
    result = 1
    for size in shape:
        result *= size
    return result
