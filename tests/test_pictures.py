"""Pictures every run leaves: PNGs of the promised size, with the CSV logger, TensorBoard or no logger."""

from __future__ import annotations

import json
import logging
import math
from types import SimpleNamespace

import pytest
import torch

from helpers import SHORT, data_overrides, png_size
from linzoo.callbacks import ConfusionMatrix
from linzoo.callbacks.curves import curve_metric, read_epoch_metrics
from linzoo.callbacks.latent_map import principal_components
from linzoo.common.paths import fresh_path
from linzoo.run.evaluate import evaluate
from linzoo.run.train import train
from linzoo.tasks import Autoencoding, Classifier, LanguageModeling

TINY_MLP = ["model=mlp", "model.net.hidden_dims=[32]"]
TINY_AE = ["model=autoencoder", "model.net.hidden_dims=[32]", "model.net.latent_dim=8"]
CURVES_SIZE = (1000, 400)
LATENT_MAP_SIZE = (700, 600)
CONFUSION_SIZE = (700, 600)


def grid_size(num_images: int, nrow: int, side: int = 28, padding: int = 2) -> tuple[int, int]:
    """Size of a save_image_grid PNG: images enlarged to at least 56 pixels (28x28 digits by 2)."""
    side *= math.ceil(56 / side)
    rows = math.ceil(num_images / nrow)
    return nrow * (side + padding) + padding, rows * (side + padding) + padding


def test_classifier_run_leaves_confusion_matrix_misclassified_and_curves(
    compose_train, compose_eval, fake_mnist_root, tmp_path
) -> None:
    run = tmp_path / "run"
    metrics = train(compose_train([*TINY_MLP, *data_overrides(fake_mnist_root), *SHORT], output_dir=run))
    assert png_size(run / "curves.png") == CURVES_SIZE
    assert png_size(run / "confusion_matrix.png") == CONFUSION_SIZE
    wrong = round((1 - metrics["test/acc"]) * 200)  # 200 fake test images
    assert wrong > 0, "the 8-step MLP should still make mistakes"
    shown = min(wrong, 36)
    columns, (cell_w, cell_h) = 6, ConfusionMatrix.CELL
    expected = (columns * cell_w, math.ceil(shown / columns) * cell_h + ConfusionMatrix.HEADER)
    assert png_size(run / "misclassified.png") == expected
    assert not (run / "reconstructions.png").exists() and not (run / "samples.png").exists()

    # eval.py draws the confusion matrix too, in its own run directory.
    evaluate(compose_eval([f"ckpt_path={metrics['best_checkpoint']}"], output_dir=tmp_path / "eval"))
    assert png_size(tmp_path / "eval" / "confusion_matrix.png") == CONFUSION_SIZE


@pytest.mark.parametrize("noise_std", [0.0, 0.3])
def test_autoencoder_run_with_csv_logger_alone(
    compose_train, fake_mnist_root, tmp_path, capsys, noise_std: float
) -> None:
    run = tmp_path / "run"
    train(
        compose_train(
            [*TINY_AE, *data_overrides(fake_mnist_root), *SHORT, "logger=csv", f"model.noise_std={noise_std}"],
            output_dir=run,
        )
    )
    # 32 test images, 8 a row: originals above reconstructions (+ a noisy row when denoising).
    rows_per_block = 3 if noise_std else 2
    assert png_size(run / "reconstructions.png") == grid_size(32 * rows_per_block, 8)
    assert png_size(run / "latent_map.png") == LATENT_MAP_SIZE
    assert png_size(run / "curves.png") == CURVES_SIZE
    assert not (run / "confusion_matrix.png").exists()
    # The literature's units, next to the per-pixel loss: in metrics.json and in the summary.
    saved = json.loads((run / "metrics.json").read_text())
    printed = capsys.readouterr().out
    for name in ("test/loss", "test/sse_per_image", "test/bce_per_image"):
        assert name in saved and f'"{name}"' in printed
    assert saved["test/bce_per_image"] == pytest.approx(784 * saved["test/loss"], rel=1e-4)


def test_pictures_reach_tensorboard_and_curves_need_the_csv_log(
    compose_train, fake_mnist_root, tmp_path, caplog
) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    with caplog.at_level(logging.INFO, logger="linzoo"):
        train(compose_train([*TINY_AE, *data_overrides(fake_mnist_root), *SHORT, "logger=tensorboard"], output_dir=run))
    assert not (run / "curves.png").exists()
    assert sum("No CSV logger" in record.getMessage() for record in caplog.records) == 1
    assert (run / "reconstructions.png").is_file() and (run / "latent_map.png").is_file()
    events = EventAccumulator(str(run / "tensorboard"), size_guidance={"images": 0}).Reload()
    assert {"pictures/reconstructions", "pictures/latent_map"} <= set(events.Tags()["images"])
    image = events.Images("pictures/reconstructions")[-1]
    assert (image.width, image.height) == grid_size(64, 8)
    figure = events.Images("pictures/latent_map")[-1]  # add_figure renders it at the PNG's size
    assert (figure.width, figure.height) == LATENT_MAP_SIZE


def test_fast_dev_run_still_draws_without_logs(compose_train, fake_mnist_root, tmp_path) -> None:
    run = tmp_path / "run"
    train(compose_train([*TINY_AE, *data_overrides(fake_mnist_root), "debug=fast_dev_run"], output_dir=run))
    assert (run / "reconstructions.png").is_file()
    assert not (run / "curves.png").exists()  # fast_dev_run writes no CSV log


def test_confusion_matrix_counts_every_test_batch() -> None:
    callback = ConfusionMatrix(max_images=3)
    module = SimpleNamespace(num_classes=3, device=torch.device("cpu"))
    batches = [
        (torch.zeros(4, 1, 28, 28), torch.tensor([0, 1, 2, 2]), torch.tensor([0, 2, 2, 1])),
        (torch.ones(2, 1, 28, 28), torch.tensor([1, 0]), torch.tensor([1, 1])),
    ]
    callback.on_test_epoch_start(None, module)
    for index, (images, labels, predictions) in enumerate(batches):
        callback.on_test_batch_end(None, module, {"preds": predictions}, (images, labels), index)
    expected = torch.tensor([[1, 1, 0], [0, 1, 1], [0, 1, 1]])
    assert torch.equal(callback.counts, expected)
    assert torch.cat(callback.wrong_pairs).tolist() == [[1, 2], [2, 1], [0, 1]]  # the first 3 mistakes
    callback.on_test_batch_end(None, module, None, batches[0][:2], 2)  # tasks that return no preds: ignored
    assert torch.equal(callback.counts, expected)


def test_confusion_matrix_counts_equal_the_former_bincount() -> None:
    """torchmetrics' counts against the hand-made formula it replaced: bincount of true * K + predicted."""
    generator = torch.Generator().manual_seed(0)
    labels, predictions = torch.randint(0, 10, (2, 1000), generator=generator)
    callback = ConfusionMatrix()
    callback.on_test_epoch_start(None, SimpleNamespace(num_classes=10, device=torch.device("cpu")))
    for start in range(0, 1000, 300):
        batch = (torch.zeros(len(labels[start : start + 300]), 1, 2, 2), labels[start : start + 300])
        callback.on_test_batch_end(None, None, {"preds": predictions[start : start + 300]}, batch, 0)
    former = torch.bincount(labels * 10 + predictions, minlength=100).view(10, 10)
    assert torch.equal(callback.counts, former)


def test_principal_components_find_the_widest_axes() -> None:
    generator = torch.Generator().manual_seed(0)
    z = torch.randn(2000, 3, generator=generator) * torch.tensor([0.1, 3.0, 1.0])
    coordinates, share = principal_components(z)
    assert coordinates.shape == (2000, 2)
    assert abs(torch.corrcoef(torch.stack([coordinates[:, 0], z[:, 1]]))[0, 1]) > 0.99
    assert abs(torch.corrcoef(torch.stack([coordinates[:, 1], z[:, 2]]))[0, 1]) > 0.99
    assert share.tolist() == pytest.approx([9 / 10.01, 1 / 10.01], abs=0.02)
    one_d, _ = principal_components(torch.randn(50, 1, generator=generator))
    assert one_d.shape == (50, 2) and bool((one_d[:, 1] == 0).all())


def test_principal_components_equal_the_former_svd_up_to_sign() -> None:
    """torch.pca_lowrank against the SVD it replaced: same coordinates (up to each axis' sign), same shares."""
    generator = torch.Generator().manual_seed(1)
    z = torch.randn(500, 8, generator=generator) * torch.linspace(0.1, 3.0, 8)
    centred = z.double() - z.double().mean(dim=0)
    _, singular, vh = torch.linalg.svd(centred, full_matrices=False)
    former = (centred @ vh[:2].T).float()
    coordinates, share = principal_components(z)
    torch.testing.assert_close(coordinates.abs(), former.abs(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(share, (singular[:2].square() / singular.square().sum()).float())
    torch.testing.assert_close(principal_components(z)[0], coordinates, rtol=0, atol=0)  # signs are fixed


def test_curves_read_the_last_value_of_each_epoch(tmp_path) -> None:
    log = tmp_path / "metrics.csv"
    log.write_text(
        "epoch,lr-AdamW,step,train/loss,val/acc,val/loss\n"
        "0,0.1,0,,,\n"
        "0,,9,,0.5,1.5\n"
        "0,,9,2.0,,\n"
        "1,,19,,0.7,1.0\n"
        "1,,19,1.2,,\n"
    )
    table = read_epoch_metrics(log)
    assert table["train/loss"] == {0: 2.0, 1: 1.2}
    assert table["val/acc"] == {0: 0.5, 1: 0.7}
    # The second panel shows the metric the task declares: never the loss again.
    assert curve_metric(Classifier, list(table)) == "val/acc"
    assert curve_metric(Autoencoding, ["val/loss", "val/bce_per_image", "val/sse_per_image"]) == "val/sse_per_image"
    assert curve_metric(LanguageModeling, ["val/loss", "val/nll_nats", "val/acc"]) == "val/nll_nats"


def test_pictures_never_overwrite_a_file(tmp_path) -> None:
    (tmp_path / "curves.png").write_bytes(b"mine")
    (tmp_path / "curves-1.png").write_bytes(b"mine too")
    assert fresh_path(tmp_path / "curves.png") == tmp_path / "curves-2.png"
    assert fresh_path(tmp_path / "new.png") == tmp_path / "new.png"


class _RecordingNet(torch.nn.Module):
    """encode() records its input and returns a constant code; decode_logits() ignores it."""

    def __init__(self) -> None:
        super().__init__()
        self.logits = torch.nn.Parameter(torch.linspace(-3, 3, 16).view(1, 1, 4, 4))
        self.inputs: list[torch.Tensor] = []

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        self.inputs.append(images.clone())
        return torch.zeros(len(images), 2)

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        return self.logits.expand(len(z), 1, 4, 4)


@pytest.mark.filterwarnings("ignore:.*self.log.*")
def test_denoising_adds_noise_to_the_training_input_only() -> None:
    net = _RecordingNet()
    task = Autoencoding(net=net, optimizer=torch.optim.SGD, noise_std=0.5)
    images = torch.rand(8, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    train_loss = task.step((images, torch.zeros(8)), "train")
    val_loss = task.step((images, torch.zeros(8)), "val")
    noisy_input, clean_input = net.inputs
    assert (noisy_input - images).std() == pytest.approx(0.5, rel=0.3)  # the net saw noise while training
    assert torch.equal(clean_input, images)  # and clean images otherwise
    # The output ignores its input, so equal losses mean the target was the clean image both times.
    assert train_loss.item() == pytest.approx(val_loss.item(), abs=1e-7)
    with pytest.raises(ValueError, match="noise_std"):
        Autoencoding(net=net, optimizer=torch.optim.SGD, noise_std=-0.1)


def test_confusion_matrix_of_a_head_wider_than_the_data_names_the_extra_classes_by_index() -> None:
    """model.num_classes=12 on MNIST (10 class names): the picture is drawn, classes 10 and 11 by index."""
    counts = torch.eye(12, dtype=torch.int64) * 5
    figure = ConfusionMatrix.draw_matrix(counts, [f"digit {k}" for k in range(10)])
    labels = [label.get_text() for label in figure.axes[0].get_xticklabels()]
    assert labels[:2] == ["digit 0", "digit 1"] and labels[-2:] == ["10", "11"]
