"""scripts/predict.py: your own images (files, folders, tensors), preprocessed as in training."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import datasets

import linzoo
from helpers import ROOT, png_size
from linzoo.tasks import Autoencoding
from linzoo.tools.image_inputs import UnreadableImageWarning, preprocess, read_inputs
from linzoo.tools.predict import predict_checkpoint
from trained import train_run


@pytest.fixture(scope="module")
def mlp_run(fake_mnist_root, tmp_path_factory) -> Path:
    """An MLP trained on every fake training batch for 4 epochs: it knows the fake digits."""
    folder = tmp_path_factory.mktemp("predict")
    return train_run(folder / "mlp", fake_mnist_root, "mlp", "trainer.max_epochs=4", "trainer.limit_train_batches=1.0")


@pytest.fixture(scope="module")
def test_digits(fake_mnist_root) -> tuple[np.ndarray, np.ndarray]:
    """The first test digit of each class: uint8 [10, 28, 28] and their labels [10]."""
    split = datasets.MNIST(fake_mnist_root, train=False)
    images, labels = split.data.numpy(), split.targets.numpy()
    first = [int(np.flatnonzero(labels == digit)[0]) for digit in range(10)]
    return images[first], labels[first]


def paint_program_copy(digit: np.ndarray, path: Path) -> Path:
    """The digit as someone would draw it: black on white, 200x200, RGB."""
    Image.fromarray(255 - digit).resize((200, 200), Image.Resampling.BICUBIC).convert("RGB").save(path)
    return path


def test_a_resaved_black_on_white_digit_gets_the_class_of_the_original(mlp_run, test_digits, tmp_path) -> None:
    digits, labels = test_digits
    for index, digit in enumerate(digits):
        paint_program_copy(digit, tmp_path / f"digit{index}.png")
    names, images = read_inputs(tmp_path, image_size=28)
    originals = torch.from_numpy(digits).float().unsqueeze(1) / 255
    net = linzoo.load(mlp_run)
    with torch.no_grad():
        predicted_original = net(originals).argmax(dim=1)
        predicted_resaved = net(images).argmax(dim=1)
    assert names == [f"digit{index}.png" for index in range(10)]
    assert (predicted_original.numpy() == labels).sum() >= 8  # the model knows these digits
    assert torch.equal(predicted_resaved, predicted_original)


def test_preprocessing_undoes_the_paint_program(test_digits, tmp_path) -> None:
    digit = test_digits[0][3]
    path = paint_program_copy(digit, tmp_path / "three.jpg")
    original = torch.from_numpy(digit).float() / 255
    _, automatic = read_inputs(path, image_size=28, invert="auto")
    _, kept = read_inputs(path, image_size=28, invert="false")
    assert automatic.shape == (1, 1, 28, 28) and automatic.dtype == torch.float32
    assert (automatic[0, 0] - original).abs().mean() < 0.05
    assert (kept[0, 0] - original).abs().mean() > 0.5  # not inverted: far from what the model saw
    _, forced = read_inputs(path, image_size=28, invert="true")
    torch.testing.assert_close(forced, automatic)
    with pytest.raises(ValueError, match="invert='sometimes' is not one of auto, true, false"):
        read_inputs(path, image_size=28, invert="sometimes")


def test_a_wide_grey_image_is_padded_square_not_stretched(tmp_path) -> None:
    wide = torch.zeros(1, 1, 10, 40)
    wide[..., 3:7, 18:22] = 1.0
    assert preprocess(wide, image_size=28).shape == (1, 1, 28, 28)  # tensors are resized as given
    image = Image.fromarray((wide[0, 0].numpy() * 255).astype(np.uint8))
    image.save(tmp_path / "wide.png")
    _, images = read_inputs(tmp_path / "wide.png", image_size=28)
    rows = images[0, 0].sum(dim=1).nonzero().flatten()
    cols = images[0, 0].sum(dim=0).nonzero().flatten()
    assert rows.numel() <= 6 and cols.numel() <= 6  # the square blob stays about square


def test_a_folder_predicts_every_image_and_skips_one_that_cannot_be_decoded(mlp_run, test_digits, tmp_path) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    Image.fromarray(test_digits[0][7]).save(folder / "a_seven.png")
    paint_program_copy(test_digits[0][2], folder / "b_two.jpg")
    (folder / "c_broken.png").write_bytes(b"\x89PNG but not really")
    (folder / "notes.txt").write_text("not an image")
    with pytest.warns(UnreadableImageWarning, match="c_broken.png"):
        written = predict_checkpoint(ckpt_path=mlp_run, inputs=folder, run_dir=tmp_path / "run")
    assert written == tmp_path / "run" / "predictions.csv"
    rows = list(csv.DictReader(written.open()))
    assert [row["file"] for row in rows] == ["a_seven.png", "b_two.jpg"]
    assert [row["class"] for row in rows] == ["7", "2"]
    for row in rows:
        probabilities = [float(row[f"prob{k}"]) for k in (1, 2, 3)]
        assert probabilities == sorted(probabilities, reverse=True) and row["top1"] == row["class"]
    again = predict_checkpoint(ckpt_path=mlp_run, inputs=folder / "a_seven.png", run_dir=tmp_path / "run")
    assert again.name == "predictions-1.csv" and len(written.read_text().splitlines()) == 3  # nothing overwritten


def test_tensor_files_give_the_same_predictions_as_images(mlp_run, test_digits, tmp_path) -> None:
    digits = test_digits[0]
    torch.save(torch.from_numpy(digits), tmp_path / "digits.pt")
    np.save(tmp_path / "digits.npy", digits.astype(np.float32) / 255)
    from_pt = predict_checkpoint(ckpt_path=mlp_run, inputs=tmp_path / "digits.pt", run_dir=tmp_path / "pt")
    from_npy = predict_checkpoint(ckpt_path=mlp_run, inputs=tmp_path / "digits.npy", run_dir=tmp_path / "npy")
    classes = [[row["class"] for row in csv.DictReader(path.open())] for path in (from_pt, from_npy)]
    assert classes[0] == classes[1]
    with torch.no_grad():
        expected = linzoo.load(mlp_run)(torch.from_numpy(digits).float().unsqueeze(1) / 255).argmax(dim=1)
    assert classes[0] == [str(int(c)) for c in expected]
    np.save(tmp_path / "bad.npy", np.full((2, 28, 28), 3.0, dtype=np.float32))
    with pytest.raises(ValueError, match=r"floats in \[3, 3\]; give float images in \[0, 1\] or uint8"):
        read_inputs(tmp_path / "bad.npy", image_size=28)


def test_bad_inputs_are_clear_errors(mlp_run, tmp_path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="is a folder with no images"):
        predict_checkpoint(ckpt_path=mlp_run, inputs=tmp_path / "empty", run_dir=tmp_path / "run")
    (tmp_path / "only_broken").mkdir()
    (tmp_path / "only_broken" / "x.png").write_bytes(b"nope")
    with (
        pytest.warns(UnreadableImageWarning),
        pytest.raises(ValueError, match=r"x.png: it cannot be decoded as an image"),
    ):
        read_inputs(tmp_path / "only_broken", image_size=28)
    (tmp_path / "only_broken" / "y.png").write_bytes(b"nope")
    with pytest.warns(UnreadableImageWarning), pytest.raises(ValueError, match="could be decoded; nothing to predict"):
        read_inputs(tmp_path / "only_broken", image_size=28)
    (tmp_path / "table.csv").write_text("a,b")
    with pytest.raises(ValueError, match="unknown kind of file '.csv'"):
        read_inputs(tmp_path / "table.csv", image_size=28)


def test_an_autoencoder_writes_inputs_above_reconstructions(fake_mnist_root, test_digits, tmp_path) -> None:
    run = train_run(tmp_path / "ae", fake_mnist_root, "autoencoder")
    torch.save(torch.from_numpy(test_digits[0]), tmp_path / "digits.pt")
    written = predict_checkpoint(ckpt_path=run, inputs=tmp_path / "digits.pt", run_dir=tmp_path / "predict")
    assert written.name == "reconstructions.png"
    assert png_size(written) == (10 * (56 + 2) + 2, 2 * (56 + 2) + 2)  # 10 inputs, 2 rows, 28 px shown at 56
    task = Autoencoding.load_from_checkpoint(run)
    images = torch.from_numpy(test_digits[0]).float().unsqueeze(1) / 255
    reconstructions = task.predict_step((images, torch.zeros(10)), 0)
    assert reconstructions.shape == images.shape and 0 <= reconstructions.min() and reconstructions.max() <= 1


@pytest.mark.slow
def test_predict_script_from_the_command_line(mlp_run, test_digits, tmp_path) -> None:
    path = paint_program_copy(test_digits[0][5], tmp_path / "five.png")
    command = [
        sys.executable,
        "scripts/predict.py",
        f"ckpt_path={mlp_run}",
        f"inputs={path}",
        f"hydra.run.dir={tmp_path / 'run'}",
    ]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "file      class  top-3" in done.stdout and "five.png" in done.stdout
    assert (tmp_path / "run" / "predictions.csv").is_file()
    (tmp_path / "empty").mkdir()
    command[3:5] = [f"inputs={tmp_path / 'empty'}", f"hydra.run.dir={tmp_path / 'run_empty'}"]  # a new run dir
    failed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert failed.returncode != 0 and "is a folder with no images" in failed.stderr


# ----------------------------------------------------------------------- input that could be misread (issue 20.9)
def test_dark_ink_on_a_transparent_png_reads_as_the_same_digit_on_white(test_digits, tmp_path) -> None:
    digit = test_digits[0][3]
    paint_program_copy(digit, tmp_path / "white.png")
    rgba = np.zeros((200, 200, 4), dtype=np.uint8)  # black ink, opaque where the digit is, transparent elsewhere
    rgba[..., 3] = np.asarray(Image.fromarray(digit).resize((200, 200), Image.Resampling.BICUBIC))
    Image.fromarray(rgba, "RGBA").save(tmp_path / "transparent.png")
    _, on_white = read_inputs(tmp_path / "white.png", image_size=28)
    _, transparent = read_inputs(tmp_path / "transparent.png", image_size=28)
    assert transparent.std() > 0.9 * on_white.std() > 0  # not blank (as it was: alpha dropped, all black)
    assert (transparent - on_white).abs().mean() < 0.02
    assert (transparent[0, 0] - torch.from_numpy(digit).float() / 255).abs().mean() < 0.05
    white_ink = rgba.copy()
    white_ink[..., :3] = 255  # light ink on transparency: composited onto black, same result
    Image.fromarray(white_ink, "RGBA").save(tmp_path / "white_ink.png")
    _, light = read_inputs(tmp_path / "white_ink.png", image_size=28)
    assert (light - on_white).abs().mean() < 0.02


def test_every_frame_of_an_animated_gif_is_an_input(test_digits, tmp_path) -> None:
    frames = [Image.fromarray(test_digits[0][digit]) for digit in (1, 7, 4)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    names, images = read_inputs(tmp_path / "anim.gif", image_size=28)
    assert names == ["anim.gif[0]", "anim.gif[1]", "anim.gif[2]"]
    for image, digit in zip(images, (1, 7, 4)):
        assert (image[0] - torch.from_numpy(test_digits[0][digit]).float() / 255).abs().mean() < 0.02


def test_channels_last_numpy_images_are_transposed(test_digits, tmp_path) -> None:
    digits = test_digits[0]
    rgb = np.repeat(digits[3][..., None], 3, axis=-1)  # [28, 28, 3], as PIL/numpy hold a colour image
    np.save(tmp_path / "rgb.npy", rgb)
    names, images = read_inputs(tmp_path / "rgb.npy", image_size=28)
    assert names == ["rgb.npy[0]"] and images.shape == (1, 1, 28, 28)
    expected = torch.from_numpy(digits[3]).float() / 255
    assert (images[0, 0] - expected).abs().max() < 0.01
    np.save(tmp_path / "batch.npy", digits[:, :, :, None])  # [N, 28, 28, 1]
    names, images = read_inputs(tmp_path / "batch.npy", image_size=28)
    assert len(names) == 10 and images.shape == (10, 1, 28, 28)
    torch.testing.assert_close(images[:, 0], torch.from_numpy(digits).float() / 255)


def test_non_finite_pixels_are_refused_naming_the_file(tmp_path) -> None:
    """NaN or infinite pixels are refused, naming the file and how many, never answered as a confident class."""
    for bad in (np.nan, np.inf):
        images = np.full((2, 28, 28), 0.5, dtype=np.float32)
        images[1, 3, 4] = bad
        np.save(tmp_path / "bad.npy", images)
        with pytest.raises(ValueError, match=r"bad\.npy holds 1 NaN or infinite value"):
            read_inputs(tmp_path / "bad.npy", image_size=28)
    with pytest.raises(ValueError, match="NaN or infinite pixels"):
        preprocess(torch.full((1, 1, 28, 28), float("nan")), image_size=28)


# --------------------------------------------------------------------------- no crash, no hang (issue 20.15)
def test_a_decompression_bomb_in_a_folder_is_skipped(mlp_run, test_digits, tmp_path, monkeypatch) -> None:
    """Decompression-bomb PNGs in a folder are skipped with a warning each, and the other images are still predicted."""
    folder = tmp_path / "mine"
    folder.mkdir()
    Image.fromarray(test_digits[0][7]).save(folder / "a_seven.png")
    Image.new("L", (100, 100)).save(folder / "b_bomb.png")  # over the (lowered) limit: a warning-sized bomb
    Image.new("L", (300, 300)).save(folder / "c_bomb.png")  # over twice the limit: PIL's error
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 30 * 30)
    with pytest.warns(UnreadableImageWarning, match="decompression bomb") as caught:
        written = predict_checkpoint(ckpt_path=mlp_run, inputs=folder, run_dir=tmp_path / "run")
    assert {name for name in ("b_bomb.png", "c_bomb.png") if any(name in str(w.message) for w in caught)} == {
        "b_bomb.png",
        "c_bomb.png",
    }
    assert [row["file"] for row in csv.DictReader(written.open())] == ["a_seven.png"]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_a_named_pipe_is_skipped_not_waited_on(mlp_run, test_digits, tmp_path) -> None:
    """A FIFO named like an image is skipped in a folder (and refused when named alone), never opened and waited on forever."""
    folder = tmp_path / "mine"
    folder.mkdir()
    Image.fromarray(test_digits[0][7]).save(folder / "a_seven.png")
    os.mkfifo(folder / "pipe.png")
    with pytest.warns(UnreadableImageWarning, match="pipe.png: it is not a regular file"):
        names, _ = read_inputs(folder, image_size=28)
    assert names == ["a_seven.png"]
    with pytest.raises(ValueError, match="is not a regular file"):
        read_inputs(folder / "pipe.png", image_size=28)


def test_bad_options_and_empty_inputs_are_refused_before_the_model_loads(tmp_path) -> None:
    np.save(tmp_path / "digits.npy", np.zeros((2, 28, 28), dtype=np.uint8))
    missing = tmp_path / "no_such_run"  # loading it would fail: each refusal comes first
    for batch_size in (0, -5):
        with pytest.raises(ValueError, match=f"batch_size={batch_size}: expected a whole number >= 1"):
            predict_checkpoint(
                ckpt_path=missing, inputs=tmp_path / "digits.npy", run_dir=tmp_path, batch_size=batch_size
            )
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="device=cuda: this machine has no CUDA GPU"):
            predict_checkpoint(ckpt_path=missing, inputs=tmp_path / "digits.npy", run_dir=tmp_path, device="cuda")
    with pytest.raises(ValueError, match="device=gpu: not a device"):
        predict_checkpoint(ckpt_path=missing, inputs=tmp_path / "digits.npy", run_dir=tmp_path, device="gpu")
    np.save(tmp_path / "empty.npy", np.zeros((0, 28, 28), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"empty\.npy has shape \[0, 28, 28\]: it holds no images"):
        predict_checkpoint(ckpt_path=missing, inputs=tmp_path / "empty.npy", run_dir=tmp_path)


def test_a_file_named_like_a_formula_is_neutralised_in_the_csv(mlp_run, test_digits, tmp_path) -> None:
    """File names starting with = + - @ go into predictions.csv quote-prefixed, so a spreadsheet shows them as text and runs no formula; the CSV is written atomically."""
    folder = tmp_path / "mine"
    folder.mkdir()
    names = ['=HYPERLINK("evil.example","y").png', "+1.png", "-1.png", "@sum.png", "plain.png"]
    for name in names:
        Image.fromarray(test_digits[0][7]).save(folder / name)
    written = predict_checkpoint(ckpt_path=mlp_run, inputs=folder, run_dir=tmp_path / "run")
    cells = [row["file"] for row in csv.DictReader(written.open())]
    assert sorted(cells) == sorted(f"'{name}" if name[0] in "=+-@" else name for name in names)
    assert not any(cell.startswith(("=", "+", "-", "@")) for cell in cells)
    assert not list((tmp_path / "run").glob(".*.tmp"))  # written atomically, no temp file left


@pytest.mark.slow
@pytest.mark.parametrize(
    "override, message",
    [
        ("batch_size=0", "batch_size=0: expected a whole number >= 1"),
        ("batch_size=-5", "batch_size=-5: expected a whole number >= 1"),
        ("device=cuda", "device=cuda: this machine has no CUDA GPU"),
        ("inputs=EMPTY", "it holds no images"),
    ],
)
def test_predict_refusals_are_one_line_and_exit_2(tmp_path, override: str, message: str) -> None:
    if override == "device=cuda" and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    np.save(tmp_path / "digits.npy", np.zeros((2, 28, 28), dtype=np.uint8))
    np.save(tmp_path / "empty.npy", np.zeros((0, 28, 28), dtype=np.uint8))
    override = override.replace("EMPTY", str(tmp_path / "empty.npy"))
    command = [
        sys.executable,
        "scripts/predict.py",
        f"ckpt_path={tmp_path / 'no_such_run'}",
        f"inputs={tmp_path / 'digits.npy'}",
        override,
        f"hydra.run.dir={tmp_path / 'run'}",
    ]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr[-3000:]
    assert len(lines) == 1 and lines[0].startswith("Error:") and message in lines[0], done.stderr


# ------------------------------------------------------------------------ start-up (issue 24.5)
HEAVY = ("lightning", "torchmetrics", "torchvision", "matplotlib")


def heavy_modules_after(code: str) -> list[str]:
    """The modules of ``HEAVY`` that a fresh Python process has imported after running ``code``."""
    check = f"{code}\nimport json, sys\nprint(json.dumps(sorted(name for name in {HEAVY!r} if name in sys.modules)))\n"
    done = subprocess.run([sys.executable, "-c", check], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_predict_module_imports_no_training_stack() -> None:
    assert heavy_modules_after("import linzoo.tools.predict") == []


def test_a_plain_forward_from_the_command_line_imports_no_training_stack(mlp_run, test_digits, tmp_path) -> None:
    """The whole command (Hydra, the checkpoint, one PNG, the table, the CSV): torch, PIL and numpy only."""
    digits, _ = test_digits
    Image.fromarray(digits[0]).save(tmp_path / "digit.png")
    arguments = [f"ckpt_path={mlp_run}", f"inputs={tmp_path / 'digit.png'}", f"hydra.run.dir={tmp_path / 'run'}"]
    code = f"import sys\nsys.argv = ['predict', *{arguments!r}]\nfrom linzoo.run.cli import predict\npredict()"
    assert heavy_modules_after(code) == []
    assert (tmp_path / "run" / "predictions.csv").is_file()


def test_the_class_names_are_torchvisions() -> None:
    from linzoo.data.class_names import CLASS_NAMES

    assert CLASS_NAMES["fashion_mnist"] == tuple(datasets.FashionMNIST.classes)
    assert CLASS_NAMES["mnist"] == tuple(datasets.MNIST.classes[index][0] for index in range(10))


def test_predict_skips_hydras_mode_probe_unless_the_command_line_names_the_mode(monkeypatch) -> None:
    from hydra._internal.hydra import Hydra

    from linzoo.run.cli import skipping_mode_probe

    probe = Hydra.get_mode
    monkeypatch.setattr(sys, "argv", ["predict", "ckpt_path=x", "inputs=y"])
    with skipping_mode_probe():
        assert Hydra.get_mode is not probe and Hydra.get_mode(None, "predict", []) is None
    assert Hydra.get_mode is probe
    monkeypatch.setattr(sys, "argv", ["predict", "ckpt_path=x", "hydra.mode=MULTIRUN"])
    with skipping_mode_probe():
        assert Hydra.get_mode is probe
