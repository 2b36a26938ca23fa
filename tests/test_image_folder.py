"""data=image_folder: your own images, one sub-folder per class, read with predict's preprocessing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from helpers import ROOT, SHORT, same_metric, tiny
from image_folders import draw, make_folder, save
from linzoo.checkpoint.files import read_checkpoint
from linzoo.common.errors import UserError
from linzoo.data import ImageFolderDataModule
from linzoo.data.identity import identity_differences
from linzoo.data.images import UnreadableImageWarning
from linzoo.data.rebuild import build_datamodule
from linzoo.run.evaluate import evaluate
from linzoo.run.schemas import register_configs
from linzoo.run.train import train
from linzoo.tools.image_inputs import read_inputs
from linzoo.tools.predict import predict_checkpoint


def loaded(root: Path, **kwargs) -> ImageFolderDataModule:
    datamodule = ImageFolderDataModule(root=str(root), **kwargs)
    datamodule.setup("fit")
    return datamodule


def all_images(datamodule: ImageFolderDataModule) -> torch.Tensor:
    """uint8 [N, C, S, S]: the train, val and test images together."""
    return torch.cat([datamodule._split(name).images for name in ("train", "val", "test")])


def per_class(split) -> list[int]:
    return torch.bincount(split.labels, minlength=3).tolist()


# ----------------------------------------------------------------------------- layout and preprocessing
def test_classes_are_the_sorted_sub_folders_and_only_images_count(tmp_path) -> None:
    make_folder(tmp_path, {"zebra": 10, "ant": 10, "moth": 10})
    (tmp_path / "ant" / "deeper").mkdir()
    save(draw(0, 1), tmp_path / "ant" / "deeper" / "nested.png", "L")  # any depth, as torchvision
    (tmp_path / "ant" / "notes.txt").write_text("not an image")
    (tmp_path / "README.md").write_text("files in the root are ignored")
    (tmp_path / ".ipynb_checkpoints").mkdir()  # hidden folders are no class
    datamodule = loaded(tmp_path)
    assert datamodule.class_names == ("ant", "moth", "zebra")
    assert datamodule.num_classes == 3
    assert sum(datamodule.sizes.values()) == 31
    assert per_class(datamodule.train_set) == [9, 8, 8]  # 11, 10, 10 images less one each for val and test


def test_images_get_predicts_preprocessing_whatever_their_mode_and_size(tmp_path) -> None:
    """Grey, RGB JPEG, RGBA and palette files of four sizes: each training image equals what predict
    makes of the same file (one code path: linzoo.data.images)."""
    make_folder(tmp_path / "data", {"a": 8, "b": 8})
    for in_channels, image_size in [(1, 28), (3, 16)]:
        datamodule = ImageFolderDataModule(
            root=str(tmp_path / "data"), image_size=image_size, in_channels=in_channels, val_fraction=0.25
        )
        datamodule.setup()
        everything = datamodule.layout.splits["all"]
        files = [file for class_files in everything.files for file in class_files]
        _, predicted = read_inputs(tmp_path / "data" / "a", image_size=image_size, in_channels=in_channels)
        assert predicted.shape == (8, in_channels, image_size, image_size)
        images = all_images(datamodule)
        assert images.shape == (16, in_channels, image_size, image_size) and images.dtype == torch.uint8
        for file in files[:8]:
            _, one = read_inputs(file, image_size=image_size, in_channels=in_channels)
            matches = (images.float() / 255 - one).abs().flatten(1).amax(1) < 1e-6
            assert bool(matches.any()), f"{file.name} is not in the data as predict reads it"


def test_dark_ink_on_light_paper_is_inverted_as_predict_does(tmp_path) -> None:
    make_folder(tmp_path, {"a": 5, "b": 5})
    save(255 - draw(0, 0), tmp_path / "a" / "paper.png", "L")  # dark bar on white
    auto, never = (all_images(loaded(tmp_path, invert=invert)) for invert in ("auto", "false"))
    assert auto.float().mean() < never.float().mean()  # the white paper became dark


# ----------------------------------------------------------------------------- splits
def test_fractions_give_seeded_stratified_disjoint_splits(tmp_path) -> None:
    make_folder(tmp_path, {"a": 20, "b": 20, "c": 20})
    first = loaded(tmp_path, val_fraction=0.1, test_fraction=0.2)
    assert first.sizes == {"train": 42, "val": 6, "test": 12}
    assert per_class(first.val_set) == [2, 2, 2] and per_class(first.test_set) == [4, 4, 4]
    again = loaded(tmp_path, val_fraction=0.1, test_fraction=0.2)
    assert again.identity() == first.identity()
    other = loaded(tmp_path, val_fraction=0.1, test_fraction=0.2, seed=1)
    assert other.identity()["fingerprints"]["test"] != first.identity()["fingerprints"]["test"]
    rows = {
        tuple(image.flatten().tolist()) for split in ("train", "val", "test") for image in first._split(split).images
    }
    assert len(rows) == 60  # every image in exactly one split


def test_train_val_test_folders_are_the_splits(tmp_path) -> None:
    make_folder(tmp_path / "train", {"a": 8, "b": 8, "c": 8})
    make_folder(tmp_path / "val", {"a": 2, "b": 2, "c": 2})
    make_folder(tmp_path / "test", {"a": 3, "b": 3, "c": 3})
    datamodule = loaded(tmp_path)
    assert datamodule.sizes == {"train": 24, "val": 6, "test": 9}
    assert per_class(datamodule.test_set) == [3, 3, 3]
    assert "val, test drawn" not in datamodule.describe()


def test_a_missing_val_folder_is_drawn_from_train(tmp_path) -> None:
    make_folder(tmp_path / "train", {"a": 10, "b": 10})
    make_folder(tmp_path / "test", {"a": 3, "b": 3})
    datamodule = loaded(tmp_path, val_fraction=0.2)
    assert datamodule.sizes == {"train": 16, "val": 4, "test": 6}
    assert "val drawn from train/, seed 0" in datamodule.describe()


# ----------------------------------------------------------------------------- bad folders
def bad_folder(root: Path, kind: str) -> Path:
    """A folder with one mistake of ``kind``."""
    if kind == "missing":
        return root / "nothing_here"
    if kind == "a file":
        (root / "file.png").write_bytes(b"x")
        return root / "file.png"
    if kind == "no classes":
        save(draw(0, 0), root / "loose.png", "L")
    elif kind == "one class":
        make_folder(root, {"cat": 3})
    elif kind == "an empty class":
        make_folder(root, {"cat": 3, "dog": 3})
        (root / "fox").mkdir()
        (root / "fox" / "notes.txt").write_text("no images")
    elif kind == "no readable image in a class":
        make_folder(root, {"cat": 3})
        (root / "dog").mkdir()
        (root / "dog" / "broken.png").write_bytes(b"not a png")
    elif kind == "split folders with class folders":
        make_folder(root / "train", {"cat": 3, "dog": 3})
        make_folder(root, {"fox": 3})
    elif kind == "val without train":
        make_folder(root / "val", {"cat": 3, "dog": 3})
    elif kind == "other classes in val":
        make_folder(root / "train", {"cat": 3, "dog": 3})
        make_folder(root / "val", {"cat": 3, "cow": 3})
    elif kind == "too few images for the fractions":
        make_folder(root, {"cat": 2, "dog": 2})
    return root


BAD_FOLDERS = {
    "missing": "no such folder",
    "a file": "is a file, not a folder",
    "no classes": "holds no class folders",
    "one class": "holds one class folder (cat/); a classifier needs at least 2 classes",
    "an empty class": "class folder(s) fox/ hold no images",
    "no readable image in a class": "none of the 1 image file(s) of class dog",
    "split folders with class folders": "mixes split folders (train/) with other folders (fox/)",
    "val without train": "has val/ but no train/ folder",
    "other classes in val": "train/ and val/ hold different classes (only in train/: dog; only in val/: cow)",
    "too few images for the fractions": "data.val_fraction=0.1: expected a fraction of the 4 training images",
}


@pytest.mark.parametrize("kind", list(BAD_FOLDERS))
def test_a_bad_folder_is_one_line_naming_the_fix(tmp_path, kind) -> None:
    root = bad_folder(tmp_path, kind)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnreadableImageWarning)
        with pytest.raises(UserError) as caught:
            loaded(root)
    message = str(caught.value)
    assert BAD_FOLDERS[kind] in message
    assert "Fix:" in message and "\n" not in message


def test_no_root_and_bad_settings_are_refused_when_built() -> None:
    with pytest.raises(UserError, match=r"data\.root=null: expected a folder with one sub-folder"):
        ImageFolderDataModule().setup()
    with pytest.raises(UserError, match="data.in_channels=2"):
        ImageFolderDataModule(root=".", in_channels=2)
    with pytest.raises(UserError, match="data.val_fraction=1.5"):
        ImageFolderDataModule(root=".", val_fraction=1.5)
    with pytest.raises(UserError, match="data.val_fraction=0.5: expected a fraction that leaves training images"):
        ImageFolderDataModule(root=".", val_fraction=0.5, test_fraction=0.5)
    with pytest.raises(UserError, match="data.invert=maybe"):
        ImageFolderDataModule(root=".", invert="maybe")


def test_unreadable_files_are_skipped_with_one_warning_listing_them(tmp_path) -> None:
    make_folder(tmp_path, {"a": 10, "b": 10})
    (tmp_path / "a" / "truncated.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (tmp_path / "b" / "text.jpg").write_text("not a jpeg")
    with pytest.warns(UnreadableImageWarning) as caught:
        datamodule = loaded(tmp_path)
    assert len(caught) == 1
    assert "Skipped 2 file(s)" in str(caught[0].message)
    assert "truncated.png" in str(caught[0].message) and "text.jpg" in str(caught[0].message)
    assert sum(datamodule.sizes.values()) == 20
    assert "2 unreadable file(s) skipped" in datamodule.describe()


# ----------------------------------------------------------------------------- identity and rebuild
def test_identity_records_the_folder_seed_and_class_names(tmp_path) -> None:
    make_folder(tmp_path / "pets", {"cat": 10, "dog": 10})
    identity = loaded(tmp_path / "pets").identity()
    assert identity["dataset"] == "image_folder"
    assert identity["source"] == str((tmp_path / "pets").resolve())
    assert identity["split_seed"] == 0 and identity["class_names"] == ["cat", "dog"]
    (tmp_path / "pets" / "dog").rename(tmp_path / "pets" / "wolf")  # same images, other meaning
    renamed = loaded(tmp_path / "pets").identity()
    assert renamed["fingerprints"] == identity["fingerprints"]
    differences = identity_differences(identity, renamed, splits=("test",))
    assert differences and "class_names" in differences[0]


def test_a_saved_image_folder_config_rebuilds_from_linzoos_allow_list(tmp_path) -> None:
    make_folder(tmp_path, {"a": 10, "b": 10})
    saved = {"_target_": "linzoo.data.ImageFolderDataModule", "root": str(tmp_path), "image_size": 16}
    datamodule = build_datamodule(saved, download=False, num_workers=0)  # export's overrides: download ignored
    datamodule.setup("test")
    assert isinstance(datamodule, ImageFolderDataModule) and datamodule.test_set.images.shape[-1] == 16


# ----------------------------------------------------------------------------- end to end
def train_on_folder(folder: Path, run: Path, *overrides: str) -> dict:
    """Train a tiny CNN briefly (SHORT) on ``folder`` into ``run``; returns its metrics."""
    register_configs()
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[
                *tiny("cnn"),
                "data=image_folder",
                f"data.root={folder}",
                *SHORT,
                *overrides,
                f"paths.output_dir={run}",
            ],
        )
    return train(cfg)


@pytest.fixture(scope="module")
def folder_run(tmp_path_factory) -> tuple[Path, Path, dict]:
    """A tiny CNN trained briefly on a generated folder of 3 classes (SHORT): (folder, run dir, metrics)."""
    base = tmp_path_factory.mktemp("image_folder")
    folder = make_folder(base / "shapes", {"bar_across": 24, "bar_down": 24, "square": 24})
    return folder, base / "run", train_on_folder(folder, base / "run")


def test_training_on_a_folder_sizes_the_head_and_keeps_the_class_names(folder_run) -> None:
    _, run, metrics = folder_run
    assert metrics["data"]["dataset"] == "image_folder"
    assert metrics["data"]["class_names"] == ["bar_across", "bar_down", "square"]
    assert json.loads((run / "metrics.json").read_text())["data"]["sizes"] == {"train": 58, "val": 7, "test": 7}
    build_config = read_checkpoint(run / "checkpoints" / "last.ckpt")["linzoo_config"]
    assert build_config["model"]["num_classes"] == 3 and build_config["model"]["net"]["num_classes"] == 3
    assert build_config["data_identity"]["class_names"] == ["bar_across", "bar_down", "square"]
    assert build_config["data"]["_target_"] == "linzoo.data.ImageFolderDataModule"


def test_eval_rebuilds_the_folder_data_and_gives_the_runs_test_metrics(folder_run, compose_eval, tmp_path) -> None:
    _, run, metrics = folder_run
    checkpoint = json.loads((run / "metrics.json").read_text())["best_checkpoint"]
    evaluated = evaluate(compose_eval([f"ckpt_path={checkpoint}"], output_dir=tmp_path / "eval"))
    assert evaluated["same_data_as_checkpoint"] is True
    assert evaluated["test/acc"] == same_metric(metrics["test/acc"])


def test_eval_takes_a_moved_folder_and_refuses_renamed_classes(folder_run, compose_eval, tmp_path) -> None:
    folder, run, _ = folder_run
    checkpoint = json.loads((run / "metrics.json").read_text())["best_checkpoint"]
    moved = shutil.copytree(folder, tmp_path / "moved")
    evaluated = evaluate(compose_eval([f"ckpt_path={checkpoint}", f"data.root={moved}"], output_dir=tmp_path / "a"))
    assert evaluated["same_data_as_checkpoint"] is True and evaluated["data"]["source"] == str(moved)
    (moved / "square").rename(moved / "circle")  # same images, another name: label 2 means another class
    with pytest.raises(UserError, match=r"class_names: \['bar_across', 'bar_down', 'square'\] -> .*'circle'"):
        evaluate(compose_eval([f"ckpt_path={checkpoint}", f"data.root={moved}"], output_dir=tmp_path / "b"))


def test_predict_prints_the_class_names(folder_run, tmp_path, capsys) -> None:
    folder, run, _ = folder_run
    written = predict_checkpoint(ckpt_path=run, inputs=folder / "square", run_dir=tmp_path / "predict")
    table = capsys.readouterr().out
    assert table.splitlines()[0].split()[:2] == ["file", "class"]
    names = {"bar_across", "bar_down", "square"}
    assert {line.split()[1] for line in table.splitlines()[1:]} <= names
    row = written.read_text().splitlines()[1].split(",")  # file,class,top1,prob1,top2,prob2,top3,prob3
    assert {row[1], row[2], row[4], row[6]} <= names


def test_predict_reads_images_with_the_runs_invert_setting(folder_run, tmp_path, capsys) -> None:
    """A model trained with data.invert=false predicts without inverting, unless told otherwise."""
    folder, _, _ = folder_run
    run = tmp_path / "never_inverted"
    train_on_folder(folder, run, "data.invert=false", "trainer.max_epochs=1")
    capsys.readouterr()  # the training's own output
    (tmp_path / "paper").mkdir()
    save(255 - draw(2, 0), tmp_path / "paper" / "square_on_white.png", "L")  # inverted by auto only

    def table(**kwargs) -> str:
        predict_checkpoint(ckpt_path=run, inputs=tmp_path / "paper", run_dir=tmp_path / "predict", **kwargs)
        return capsys.readouterr().out

    assert table() == table(invert="false")
    assert table() != table(invert="auto")


@pytest.mark.slow  # a subprocess: Hydra's command line is where an explicit override is known
def test_a_num_classes_other_than_the_folders_is_refused_on_the_command_line(folder_run, tmp_path) -> None:
    folder, _, _ = folder_run
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "train.py"),
            "model=cnn",
            "data=image_folder",
            f"data.root={folder}",
            "model.num_classes=5",
            f"hydra.run.dir={tmp_path / 'run'}",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        timeout=300,
    )
    assert result.returncode == 2, result.stderr
    assert "model.num_classes=5: expected 3, the 3 class folders of data.root=" in result.stderr
    assert "Fix: drop model.num_classes=" in result.stderr
    assert not (tmp_path / "run").exists()
