"""Reading the layout of a folder of images, one sub-folder per class (torchvision ``ImageFolder``'s).

    root/cat/001.png                    root/train/cat/001.png
    root/cat/any/depth/002.jpg    or    root/train/dog/003.png
    root/dog/003.png                    root/val/cat/...   root/test/cat/...   (val/, test/ optional)

- The classes are the sub-folders' names, sorted (class index k is the k-th name), as in
  ``torchvision.datasets.ImageFolder``; hidden folders and files (``.git``, ``.ipynb_checkpoints``)
  are ignored, and so are files right in ``root``.
- A class's images are the files under its folder, at any depth, whose suffix is an image's
  (:data:`linzoo.data.images.IMAGE_SUFFIXES`), sorted by path; other files are ignored.
- A root with a ``train/`` folder is split by its folders: ``train/``, ``val/`` and ``test/``
  each hold the class folders (every split the same classes); a missing ``val/`` or ``test/`` is
  taken from ``train/`` later (:mod:`linzoo.data.image_folder`).

Each mistake (no such folder, no classes, a single class, an empty class, split folders with
different classes, split folders mixed with class folders) is one :class:`UserValueError` line
that names the folder and the fix. Nothing here decodes an image.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from linzoo.common.errors import ConfigError, UserFileNotFoundError, UserValueError
from linzoo.data.images import IMAGE_SUFFIXES

__all__ = ["SPLIT_FOLDERS", "ClassFolders", "FolderLayout", "scan_image_folder"]

SPLIT_FOLDERS = ("train", "val", "test")
EXAMPLE = "data.root=<folder> holding one sub-folder of images per class (<folder>/cat/1.png, <folder>/dog/2.jpg)"


@dataclass(frozen=True)
class ClassFolders:
    """One folder of class folders: the class names, sorted, and each class's image files, sorted."""

    path: Path
    class_names: tuple[str, ...]
    files: tuple[tuple[Path, ...], ...]  # files[k]: the images of class k


@dataclass(frozen=True)
class FolderLayout:
    """A checked ``data.root``: ``splits`` maps ``"all"`` (no split folders) or ``"train"``
    (and ``"val"``, ``"test"`` where present) to its class folders, all with the same classes."""

    root: Path
    splits: dict[str, ClassFolders]

    @property
    def class_names(self) -> tuple[str, ...]:
        return next(iter(self.splits.values())).class_names


def scan_image_folder(root: str | os.PathLike[str] | None) -> FolderLayout:
    """The layout of ``root`` (class folders, or ``train/``, ``val/``, ``test/`` of class folders), checked."""
    if root is None or str(root) == "":
        raise ConfigError("data.root", root, "a folder with one sub-folder of images per class", EXAMPLE)
    path = Path(root).expanduser().resolve()
    if not path.exists():
        raise UserFileNotFoundError(f"data.root={root}: no such folder. Fix: {EXAMPLE}.")
    if not path.is_dir():
        raise UserValueError(f"data.root={root} is a file, not a folder. Fix: {EXAMPLE}.")
    folders = _sub_folders(path)
    split_folders = [name for name in SPLIT_FOLDERS if name in folders]
    if not split_folders:
        return FolderLayout(path, {"all": _class_folders(path, what=f"data.root={root}")})
    others = [name for name in folders if name not in SPLIT_FOLDERS]
    if others:
        raise UserValueError(
            f"data.root={root} mixes split folders ({', '.join(f'{n}/' for n in split_folders)}) with other "
            f"folders ({_listed(others)}). Fix: put the class folders inside train/ (and val/, test/), "
            "or remove the split folders to have the splits drawn from the class folders."
        )
    if "train" not in split_folders:
        raise UserValueError(
            f"data.root={root} has {', '.join(f'{n}/' for n in split_folders)} but no train/ folder. Fix: add "
            f"{path / 'train'} with one sub-folder of images per class."
        )
    splits = {name: _class_folders(path / name, what=f"data.root={root}: {name}/") for name in split_folders}
    _check_same_classes(splits, root=root)
    return FolderLayout(path, splits)


def _sub_folders(path: Path) -> list[str]:
    """The names of the visible sub-folders of ``path``, sorted (links to folders count)."""
    return sorted(entry.name for entry in os.scandir(path) if not entry.name.startswith(".") and entry.is_dir())


def _class_folders(path: Path, *, what: str) -> ClassFolders:
    names = _sub_folders(path)
    if not names:
        raise UserValueError(
            f"{what} holds no class folders (no sub-folders). Fix: put the images of each class in a "
            f"sub-folder named after it: {path / 'cat' / '1.png'}, {path / 'dog' / '2.png'}, ..."
        )
    if len(names) == 1:
        raise UserValueError(
            f"{what} holds one class folder ({names[0]}/); a classifier needs at least 2 classes. Fix: add a "
            f"sub-folder of images for each other class beside {path / names[0]}."
        )
    files = tuple(_image_files(path / name) for name in names)
    empty = [name for name, found in zip(names, files) if not found]
    if empty:
        raise UserValueError(
            f"{what}: class folder(s) {_listed(empty)} hold no images (looked for {', '.join(IMAGE_SUFFIXES)}). "
            "Fix: add images to them, or remove those folders."
        )
    return ClassFolders(path, tuple(names), files)


def _image_files(folder: Path) -> tuple[Path, ...]:
    """The image files under ``folder`` at any depth (hidden ones skipped), sorted; links followed, as torchvision."""
    found = []
    for parent, dirs, files in os.walk(folder, followlinks=True):
        dirs[:] = [name for name in dirs if not name.startswith(".")]
        found += [
            Path(parent) / name
            for name in files
            if not name.startswith(".") and Path(name).suffix.lower() in IMAGE_SUFFIXES
        ]
    return tuple(sorted(found))


def _check_same_classes(splits: dict[str, ClassFolders], *, root: str | os.PathLike[str]) -> None:
    train = set(splits["train"].class_names)
    for name, folders in splits.items():
        classes = set(folders.class_names)
        if classes == train:
            continue
        only_train, only_here = sorted(train - classes), sorted(classes - train)
        differences = []
        if only_train:
            differences.append(f"only in train/: {', '.join(only_train)}")
        if only_here:
            differences.append(f"only in {name}/: {', '.join(only_here)}")
        raise UserValueError(
            f"data.root={root}: train/ and {name}/ hold different classes ({'; '.join(differences)}). "
            "Fix: give every split folder the same class sub-folders."
        )


def _listed(names: list[str], *, shown: int = 5) -> str:
    listed = ", ".join(f"{name}/" for name in names[:shown])
    return listed + (f" and {len(names) - shown} more" if len(names) > shown else "")
