"""Augmentation: per-image independence, train-only, on the batch's device, reproducible, resumable."""

from __future__ import annotations

import re

import lightning as L
import pytest
import torch

from linzoo.data import MNISTDataModule
from linzoo.data.augment import BatchAugmenter, batch_generator, make_augmenter
from linzoo.tasks import Classifier

DEVICES = ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]
KINDS = ["affine", "crop"]


def digit_batch(batch_size: int = 8, device: str = "cpu") -> torch.Tensor:
    """float32 [B, 1, 28, 28]: the same off-centre bar in every image (no symmetry hides a transform)."""
    image = torch.zeros(1, 28, 28)
    image[0, 8:20, 11:14] = 1.0
    image[0, 8:11, 14:18] = 0.7
    return image.expand(batch_size, 1, 28, 28).contiguous().to(device)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kind", KINDS)
def test_identical_images_in_one_batch_get_different_transforms(kind: str, device: str) -> None:
    images = digit_batch(16, device)
    out = make_augmenter(kind)(images, generator=torch.Generator().manual_seed(0))
    assert out.shape == images.shape and out.dtype == images.dtype and out.device == images.device
    distinct = {tuple(image.flatten().tolist()) for image in out.cpu()}
    assert len(distinct) >= 12  # one shared transform would give 1; crop has 25 offsets for 16 images
    assert not torch.equal(out, images)


@pytest.mark.parametrize("device", DEVICES)
def test_crop_is_an_integer_shift_with_zero_padding(device: str) -> None:
    augmenter = BatchAugmenter("crop", padding=2)
    images = digit_batch(6, device)
    offsets = augmenter.crop_offsets(6, generator=torch.Generator().manual_seed(3))
    out = augmenter(images, generator=torch.Generator().manual_seed(3))
    for image, result, (dy, dx) in zip(images, out, offsets.tolist()):
        expected = torch.nn.functional.pad(image, [2, 2, 2, 2])[:, dy : dy + 28, dx : dx + 28]
        assert torch.equal(result, expected)
        assert result.sum() == image.sum()  # the bar lies well inside: nothing cut off


def test_affine_with_zero_ranges_is_the_identity() -> None:
    augmenter = BatchAugmenter("affine", degrees=0.0, translate=0.0, scale=(1.0, 1.0))
    images = torch.rand(4, 1, 28, 28)
    assert torch.allclose(augmenter(images, generator=torch.Generator()), images, atol=1e-5)


def test_affine_parameters_stay_in_their_ranges() -> None:
    augmenter = BatchAugmenter("affine", degrees=10.0, translate=0.1, scale=(0.9, 1.1))
    theta = augmenter.affine_matrices(2000, generator=torch.Generator().manual_seed(0))
    inverse_scale = theta[:, 0, :2].norm(dim=1)
    angle = torch.rad2deg(torch.atan2(theta[:, 1, 0], theta[:, 0, 0]))
    assert 1 / 1.1 - 1e-5 <= inverse_scale.min() and inverse_scale.max() <= 1 / 0.9 + 1e-5
    assert angle.abs().max() <= 10.0 + 1e-4 and angle.abs().max() > 9.0
    assert theta[:, :, 2].abs().max() <= 0.2 + 1e-6  # 10% of the size = 0.2 in [-1, 1] units


@pytest.mark.parametrize("kind", KINDS)
def test_same_batch_key_same_augmentation_and_new_key_new_one(kind: str) -> None:
    augmenter, images = make_augmenter(kind), digit_batch(8)
    first = augmenter(images, generator=batch_generator(seed=0, batch_index=5))
    again = augmenter(images, generator=batch_generator(seed=0, batch_index=5))
    assert torch.equal(first, again)
    for other in (
        batch_generator(seed=0, batch_index=6),
        batch_generator(seed=1, batch_index=5),
        batch_generator(seed=0, batch_index=5, rank=1),
    ):
        assert not torch.equal(first, augmenter(images, generator=other))


def test_unknown_augmentation_names_the_setting_and_the_choices() -> None:
    with pytest.raises(ValueError, match=r"data.augment='flip'.*\['none', 'affine', 'crop'\]"):
        make_augmenter("flip")
    assert make_augmenter("none") is None


def test_the_configured_ranges_reach_the_augmenter(compose_train) -> None:
    """data.affine_* and data.crop_padding compose, typed, and set the datamodule's augmenter."""
    from hydra.utils import instantiate

    cfg = compose_train(
        ["data.augment=affine", "data.affine_degrees=5", "data.affine_translate=0.05", "data.affine_scale=[0.95,1.05]"]
    )
    augmenter = instantiate(cfg.data).augmenter
    ranges = (augmenter.degrees, augmenter.translate, augmenter.scale)
    assert augmenter.kind == "affine" and ranges == (5.0, 0.05, (0.95, 1.05))
    theta = augmenter.affine_matrices(2000, generator=torch.Generator().manual_seed(0))
    angle = torch.rad2deg(torch.atan2(theta[:, 1, 0], theta[:, 0, 0]))
    assert 4.5 < angle.abs().max() <= 5.0 + 1e-4 and theta[:, :, 2].abs().max() <= 0.1 + 1e-6
    assert instantiate(compose_train(["data.augment=crop", "data.crop_padding=3"]).data).augmenter.padding == 3


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("data.affine_scale=[1.1,0.9]", r"affine_scale=\[1.1,0.9\]: expected \[low,high\].*Fix: data.affine_scale="),
        ("data.affine_translate=1.5", r"affine_translate=1.5: expected a fraction.*Fix: data.affine_translate=0.1"),
        ("data.affine_degrees=-3", r"affine_degrees=-3.0: expected a rotation range.*Fix: data.affine_degrees=10"),
        ("data.crop_padding=-1", r"crop_padding=-1: expected an integer >= 0.*Fix: data.crop_padding=2"),
    ],
)
def test_a_range_out_of_its_domain_names_the_key_and_a_fix(compose_train, override: str, message: str) -> None:
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    from linzoo.common.errors import ConfigError
    from linzoo.run.errors import user_message

    # Checked even when the chosen augmentation does not use the range: a typo fails at once.
    with pytest.raises(InstantiationException) as raised:
        instantiate(compose_train(["data.augment=none", override]).data)
    assert isinstance(raised.value.__cause__, ConfigError)
    assert re.search(message, user_message(raised.value))


class RecordBatches(L.Callback):
    """Keeps every training batch and the first validation batch the LightningModule received."""

    def __init__(self) -> None:
        self.train: list[torch.Tensor] = []
        self.val: torch.Tensor | None = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.train.append(batch[0].clone())

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
        if self.val is None and not trainer.sanity_checking:
            self.val = batch[0].clone()


class RecordSeeds:
    """Wraps an augmenter and records the seed of the generator of every call."""

    def __init__(self, augmenter: BatchAugmenter) -> None:
        self.augmenter, self.seeds = augmenter, []

    def __call__(self, images: torch.Tensor, *, generator: torch.Generator) -> torch.Tensor:
        self.seeds.append(generator.initial_seed())
        return self.augmenter(images, generator=generator)


def fit(
    root, *, augment: str = "crop", on_device: bool = True, max_epochs: int = 1, ckpt_path=None, default_root_dir=None
) -> tuple[MNISTDataModule, RecordBatches, L.Trainer]:
    """Two training batches of 32 per epoch and one validation batch of 50, a linear classifier."""
    L.seed_everything(0)
    datamodule = MNISTDataModule(
        root=root, download=False, val_size=200, batch_size=32, eval_batch_size=50, on_device=on_device, augment=augment
    )
    if datamodule.augmenter is not None:
        datamodule.augmenter = RecordSeeds(datamodule.augmenter)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))
    task = Classifier(net=net, optimizer=lambda params: torch.optim.SGD(params, lr=0.01))
    record = RecordBatches()
    trainer = L.Trainer(
        max_epochs=max_epochs,
        limit_train_batches=2,
        limit_val_batches=1,
        logger=False,
        enable_checkpointing=default_root_dir is not None,
        default_root_dir=default_root_dir,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[record],
        accelerator="cpu",
    )
    trainer.fit(task, datamodule=datamodule, ckpt_path=ckpt_path)
    return datamodule, record, trainer


@pytest.mark.parametrize("on_device", [True, False])
def test_only_training_batches_are_augmented(fake_mnist_root, on_device: bool) -> None:
    datamodule, record, _ = fit(fake_mnist_root, on_device=on_device)
    train_images = datamodule.train_set.images.float().div(255).flatten(1)
    # The training images seen differ from every stored training image (they were shifted) ...
    distance = torch.cdist(record.train[0].flatten(1), train_images).min(dim=1).values
    assert (distance > 0).float().mean() >= 0.8  # offset (2, 2) is the identity: 1 in 25
    # ... while the first validation batch is the first 50 validation images, untouched.
    assert torch.equal(record.val, datamodule.val_set.images[:50].float().div(255))


def test_augmented_training_is_reproducible_and_resumes_the_same_draws(fake_mnist_root, tmp_path) -> None:
    _, first, _ = fit(fake_mnist_root, max_epochs=2)
    datamodule, second, _ = fit(fake_mnist_root, max_epochs=2)
    assert all(torch.equal(a, b) for a, b in zip(first.train, second.train, strict=True))
    _, plain, _ = fit(fake_mnist_root, augment="none")
    assert not torch.equal(plain.train[0], first.train[0])
    seeds = datamodule.augmenter.seeds
    assert len(set(seeds)) == 4  # a new draw for each of the 2 x 2 batches
    # Stop after epoch 1, resume: epoch 2 draws with the keys of the uninterrupted run.
    _, _, stopped = fit(fake_mnist_root, max_epochs=1, default_root_dir=tmp_path)
    checkpoint = stopped.checkpoint_callback.last_model_path or stopped.checkpoint_callback.best_model_path
    resumed, _, _ = fit(fake_mnist_root, max_epochs=2, ckpt_path=checkpoint, default_root_dir=tmp_path / "resumed")
    assert resumed.augmenter.seeds == seeds[2:]


@pytest.mark.parametrize("on_device", [True, False])
def test_a_default_training_run_with_augmentation(compose_train, fake_mnist_root, tmp_path, on_device) -> None:
    """The default callbacks' model summary sends the task's example_input_array (one tensor)
    through the batch-transfer hooks while training: augmentation must leave it alone."""
    from helpers import SHORT, data_overrides, tiny
    from linzoo.run.train import train

    cfg = compose_train(
        [
            *tiny("mlp"),
            *data_overrides(fake_mnist_root),
            *SHORT,
            "data.augment=affine",
            f"data.on_device={str(on_device).lower()}",
            "print_config=false",
        ],
        output_dir=tmp_path / "run",
    )
    metrics = train(cfg)
    assert metrics["status"] == "finished" and 0 <= metrics["test/acc"] <= 1
