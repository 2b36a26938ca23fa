"""linzoo.data: real on-disk formats, seeded splits, the offline sample, on-device batches."""

from __future__ import annotations

import os
import socket
import warnings
from pathlib import Path

import lightning as L
import pytest
import torch
import torchvision
from torch import nn

from linzoo.data import (
    DeviceBatches,
    ImageTensorDataset,
    MNISTDataModule,
    SampleFallbackWarning,
    debian,
    random_split_indices,
    resolve_root,
    stratified_split_indices,
    torchvision_files,
)
from linzoo.data.idx import OFFICIAL_MD5, OFFICIAL_SIZES, CorruptDataError, read_idx
from linzoo.data.sources import SAMPLE_SOURCE


def make(root: Path, **kwargs) -> MNISTDataModule:
    """A set-up data module that never touches the network."""
    datamodule = MNISTDataModule(root=root, download=False, **{"val_size": 200, **kwargs})
    datamodule.prepare_data()
    datamodule.setup("fit")
    return datamodule


def setup_recording_warnings(datamodule: MNISTDataModule) -> list[warnings.WarningMessage]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        datamodule.setup("fit")
    return [w for w in caught if issubclass(w.category, SampleFallbackWarning)]


@pytest.fixture
def no_debian_fashion(monkeypatch, tmp_path) -> None:
    """Hide a system-wide Debian Fashion-MNIST, so results do not depend on the machine."""
    monkeypatch.setattr(debian, "DEBIAN_FASHION_MNIST_DIR", tmp_path / "no-debian")


# ---------------------------------------------------------------- full data from files
@pytest.mark.parametrize(("dataset", "folder"), [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")])
def test_fake_files_load_through_torchvision(fake_mnist_root, dataset, folder) -> None:
    raw = getattr(torchvision.datasets, folder)(str(fake_mnist_root), train=True, download=False)
    assert tuple(raw.data.shape) == (1000, 28, 28) and raw.data.dtype == torch.uint8

    datamodule = make(fake_mnist_root, dataset=dataset, batch_size=64, eval_batch_size=150)
    assert datamodule.source == dataset
    assert datamodule.sizes == {"train": 800, "val": 200, "test": 200}
    assert (datamodule.num_classes, datamodule.image_shape, len(datamodule.class_names)) == (10, (1, 28, 28), 10)
    assert datamodule.train_set.images.dtype == torch.uint8  # stored compactly, converted per batch

    images, labels = next(iter(datamodule.train_dataloader()))
    assert images.shape == (64, 1, 28, 28) and images.dtype == torch.float32
    assert labels.shape == (64,) and labels.dtype == torch.int64
    assert 0.0 <= images.min() and images.max() <= 1.0 and images.max() > 0.5
    assert [len(y) for _, y in datamodule.val_dataloader()] == [150, 50]
    assert sum(len(y) for _, y in datamodule.train_dataloader()) == 800


def test_batches_match_the_files_and_workers_work(fake_mnist_root) -> None:
    raw = torchvision.datasets.MNIST(str(fake_mnist_root), train=False, download=False)
    datamodule = make(fake_mnist_root, eval_batch_size=64, num_workers=2)
    images = torch.cat([x for x, _ in datamodule.test_dataloader()])
    assert torch.equal(images, raw.data.unsqueeze(1).float() / 255)
    assert sum(len(y) for _, y in datamodule.train_dataloader()) == 800


def test_root_is_argument_then_linzoo_data_then_dot_data(fake_mnist_root, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("LINZOO_DATA", str(fake_mnist_root))
    assert resolve_root(None) == fake_mnist_root.resolve()
    assert resolve_root(tmp_path / "x") == (tmp_path / "x").resolve()
    assert make(None).source == "mnist"  # found through $LINZOO_DATA
    monkeypatch.delenv("LINZOO_DATA")
    monkeypatch.chdir(tmp_path)
    assert resolve_root(None) == (tmp_path / "data").resolve()


def test_split_is_seeded_repeatable_and_disjoint(fake_mnist_root) -> None:
    first, again, other = (make(fake_mnist_root, seed=seed) for seed in (0, 0, 1))
    assert torch.equal(first.val_set.images, again.val_set.images)
    assert not torch.equal(first.val_set.images, other.val_set.images)

    torch.manual_seed(123)  # the global RNG has no say
    train, val = random_split_indices(1000, [800, 200], seed=0)
    torch.manual_seed(456)
    assert all(torch.equal(a, b) for a, b in zip((train, val), random_split_indices(1000, [800, 200], seed=0)))
    assert torch.equal(torch.cat([train, val]).sort().values, torch.arange(1000))


def test_train_shuffling_is_seeded_and_differs_between_epochs(fake_mnist_root) -> None:
    def two_epochs(datamodule: MNISTDataModule) -> list[torch.Tensor]:
        loader = datamodule.train_dataloader()
        orders = []
        for epoch in range(2):
            loader.sampler.set_epoch(epoch)  # as Lightning does at every epoch start (and after a resume)
            orders.append(torch.cat([y for _, y in loader]))
        return orders

    first, second = two_epochs(make(fake_mnist_root, seed=3)), two_epochs(make(fake_mnist_root, seed=3))
    assert not torch.equal(first[0], first[1])
    assert all(torch.equal(a, b) for a, b in zip(first, second))


# ------------------------------------------------------------------ the offline sample
@pytest.fixture
def nothing_configured(monkeypatch, tmp_path) -> None:
    """A first run: no data.root, no $LINZOO_DATA, an empty working directory."""
    monkeypatch.delenv("LINZOO_DATA", raising=False)
    monkeypatch.chdir(tmp_path)


def test_missing_files_fall_back_to_the_sample_with_one_warning(nothing_configured) -> None:
    datamodule = MNISTDataModule(download=False)
    caught = setup_recording_warnings(datamodule)
    assert len(caught) == 1
    message = str(caught[0].message)
    assert "\n" not in message and "sample" in message and "LINZOO_DATA" in message and "data.root" in message
    assert datamodule.source == SAMPLE_SOURCE
    assert datamodule.sizes == {"train": 4000, "val": 500, "test": 500}
    for split, per_class in (("train", 400), ("val", 50), ("test", 50)):
        counts = torch.bincount(getattr(datamodule, f"{split}_set").labels, minlength=10)
        assert counts.tolist() == [per_class] * 10, split  # stratified
    images, labels = next(iter(datamodule.train_dataloader()))
    assert images.shape == (128, 1, 28, 28) and images.dtype == torch.float32 and labels.dtype == torch.int64


def test_failed_download_falls_back_fast_with_a_socket_timeout(monkeypatch, nothing_configured) -> None:
    calls = []

    def offline_download(self) -> None:  # what torchvision raises without network
        calls.append(socket.getdefaulttimeout())
        raise RuntimeError(
            "Error downloading train-images-idx3-ubyte.gz:\nTried mirror, got:\n<urlopen error offline>\n"
        )

    monkeypatch.setattr(torchvision.datasets.MNIST, "download", offline_download)
    datamodule = MNISTDataModule(download=True)
    datamodule.prepare_data()
    caught = setup_recording_warnings(datamodule)
    assert calls == [torchvision_files.DOWNLOAD_TIMEOUT_S]  # tried once, never hangs unbounded
    assert socket.getdefaulttimeout() is None  # restored
    assert len(caught) == 1 and "download failed: <urlopen error offline>" in str(caught[0].message)
    assert datamodule.source == SAMPLE_SOURCE


def test_sample_split_is_seeded(tmp_path) -> None:
    first, again, other = (make(tmp_path, source="sample", seed=seed) for seed in (0, 0, 1))
    assert torch.equal(first.test_set.images, again.test_set.images)
    assert not torch.equal(first.test_set.images, other.test_set.images)


def test_source_sample_is_used_on_purpose_without_a_warning(fake_mnist_root) -> None:
    datamodule = MNISTDataModule(root=fake_mnist_root, source="sample", download=False)
    assert setup_recording_warnings(datamodule) == []
    assert datamodule.source == SAMPLE_SOURCE and len(datamodule.train_set) == 4000


def test_stratified_split_keeps_class_proportions() -> None:
    labels = torch.tensor([0] * 60 + [1] * 30 + [2] * 10)
    parts = stratified_split_indices(labels, [50, 30, 20], seed=0)
    assert torch.equal(torch.cat(parts).sort().values, torch.arange(100))
    for part, size in zip(parts, [50, 30, 20]):
        expected = torch.tensor([60, 30, 10]) * size / 100
        assert (torch.bincount(labels[part], minlength=3) - expected).abs().max() <= 1


# --------------------------------------------------------------------- clear errors
def test_source_full_without_files_errors_clearly(tmp_path) -> None:
    datamodule = MNISTDataModule(root=tmp_path, source="full", download=False)
    with pytest.raises(FileNotFoundError, match="LINZOO_DATA or data.root") as error:
        datamodule.setup("fit")
    assert "MNIST/raw" in str(error.value) and "download=False" in str(error.value)
    assert "mnist_sample" in str(error.value)


def test_fashion_mnist_without_files_errors_with_the_fixes(tmp_path, no_debian_fashion) -> None:
    datamodule = MNISTDataModule(dataset="fashion_mnist", root=tmp_path, download=False)
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist") as error:
        datamodule.setup("fit")
    assert "FashionMNIST/raw" in str(error.value) and "LINZOO_DATA" in str(error.value)


def test_fashion_mnist_from_the_debian_folder(fake_mnist_writer, monkeypatch, tmp_path) -> None:
    debian_dir = fake_mnist_writer(tmp_path / "debian", dataset="FashionMNIST", layout="debian", seed=5)
    fake_mnist_writer(tmp_path / "root", dataset="FashionMNIST", seed=5)  # the same files, torchvision layout
    monkeypatch.setattr(debian, "DEBIAN_FASHION_MNIST_DIR", debian_dir)
    from_debian = make(tmp_path / "empty", dataset="fashion_mnist")
    from_root = make(tmp_path / "root", dataset="fashion_mnist")
    assert from_debian.source == "fashion_mnist" and from_debian.sizes == {"train": 800, "val": 200, "test": 200}
    for split in ("train", "val", "test"):
        assert torch.equal(getattr(from_debian, f"{split}_set").images, getattr(from_root, f"{split}_set").images)
        assert torch.equal(getattr(from_debian, f"{split}_set").labels, getattr(from_root, f"{split}_set").labels)


@pytest.mark.parametrize(("dataset", "folder"), [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")])
def test_gzipped_files_in_the_raw_folder_are_read(
    fake_mnist_writer, tmp_path, no_debian_fashion, dataset, folder
) -> None:
    """Debian's ``*.gz`` files copied into ``<root>/<Dataset>/raw`` read like the plain ones."""
    raw = fake_mnist_writer(tmp_path / "gz", dataset=folder, gzipped=True, seed=7)
    assert sorted(path.suffix for path in raw.iterdir()) == [".gz"] * 4
    fake_mnist_writer(tmp_path / "plain", dataset=folder, seed=7)
    from_gz = make(tmp_path / "gz", dataset=dataset, source="full")
    from_plain = make(tmp_path / "plain", dataset=dataset, source="full")
    assert from_gz.source == dataset and from_gz.sizes == {"train": 800, "val": 200, "test": 200}
    for split in ("train", "val", "test"):
        assert torch.equal(getattr(from_gz, f"{split}_set").images, getattr(from_plain, f"{split}_set").images)
        assert torch.equal(getattr(from_gz, f"{split}_set").labels, getattr(from_plain, f"{split}_set").labels)


def test_plain_and_gzipped_files_mix_and_the_plain_one_wins(fake_mnist_writer, tmp_path) -> None:
    raw = fake_mnist_writer(tmp_path, gzipped=True, seed=3)
    (raw / "t10k-labels-idx1-ubyte.gz").rename(raw / "t10k-labels-idx1-ubyte.gz.kept")
    assert not torchvision_files.has_files(tmp_path, torchvision.datasets.MNIST)
    fake_mnist_writer(tmp_path / "plain", seed=3)
    plain_labels = tmp_path / "plain" / "MNIST" / "raw" / "t10k-labels-idx1-ubyte"
    plain_labels.rename(raw / plain_labels.name)  # three .gz files and one plain one
    (raw / "train-images-idx3-ubyte").write_bytes(b"")  # beside its .gz: the plain file is the one read
    with pytest.raises(CorruptDataError, match=r"train-images-idx3-ubyte is truncated"):
        make(tmp_path, source="full")
    (raw / "train-images-idx3-ubyte").unlink()
    assert make(tmp_path, source="full").sizes == {"train": 800, "val": 200, "test": 200}


def test_plain_files_in_the_debian_folder_are_read(fake_mnist_writer, tmp_path) -> None:
    folder = fake_mnist_writer(tmp_path, dataset="FashionMNIST", seed=5)  # uncompressed files
    assert debian.has_debian_fashion_mnist(folder)
    train, test = debian.read_debian_fashion_mnist(folder)
    assert (len(train), len(test)) == (1000, 200)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"dataset": "cifar10"}, "data.dataset=cifar10: expected one of fashion_mnist, mnist"),
        ({"source": "maybe"}, "data.source=maybe: expected one of auto, full, sample"),
        ({"dataset": "fashion_mnist", "source": "sample"}, "no offline sample"),
        ({"batch_size": 0}, r"data.batch_size=0: expected an integer >= 1\. Fix: data.batch_size=128"),
        ({"val_size": 0}, "data.val_size=0: expected an integer >= 1"),
        ({"batch_size": "abc"}, "data.batch_size=abc: expected an integer >= 1"),
        ({"num_workers": -1}, "data.num_workers=-1: expected an integer >= 0"),
    ],
)
def test_bad_arguments_error_clearly(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        MNISTDataModule(**kwargs)


def test_val_size_too_large_errors_clearly(fake_mnist_root) -> None:
    with pytest.raises(ValueError, match="data.val_size below 1000"):
        make(fake_mnist_root, val_size=1000)


def test_dataloaders_before_setup_error_clearly() -> None:
    with pytest.raises(RuntimeError, match="setup"):
        MNISTDataModule().train_dataloader()


# ------------------------------------------------------------------ on-device batches
def numbered(n: int) -> ImageTensorDataset:
    """Labels 0..n-1, so a batch's labels name the examples it holds."""
    return ImageTensorDataset(torch.randint(0, 256, (n, 28, 28), dtype=torch.uint8), torch.arange(n))


@pytest.mark.parametrize(("drop_last", "length", "seen"), [(False, 11, 103), (True, 10, 100)])
def test_device_batches_yield_every_index_once_per_epoch(drop_last, length, seen) -> None:
    batches = DeviceBatches(numbered(103), batch_size=10, shuffle=True, drop_last=drop_last, seed=0)
    assert len(batches) == length
    epochs = []
    for _ in range(2):
        pieces = list(batches)
        assert len(pieces) == length
        labels = torch.cat([y for _, y in pieces])
        assert len(labels) == seen and len(labels.unique()) == seen
        epochs.append(labels)
    assert not torch.equal(epochs[0], epochs[1])  # a new order every epoch ...
    replay = DeviceBatches(numbered(103), batch_size=10, shuffle=True, drop_last=drop_last, seed=0)
    assert all(torch.equal(e, torch.cat([y for _, y in replay])) for e in epochs)  # ... repeatable from the seed
    if not drop_last:
        assert torch.equal(epochs[0].sort().values, torch.arange(103))


def test_device_batches_convert_like_the_dataloader() -> None:
    dataset = numbered(20)
    images, labels = next(iter(DeviceBatches(dataset, batch_size=20)))
    assert images.dtype == torch.float32 and images.shape == (20, 1, 28, 28)
    assert torch.equal(images, torch.stack([dataset[i][0] for i in range(20)])) and torch.equal(
        labels, torch.arange(20)
    )


def test_device_batches_shard_across_ranks() -> None:
    shards = [DeviceBatches(numbered(103), batch_size=8, shuffle=True, seed=0, rank=r, world_size=2) for r in (0, 1)]
    assert len(shards[0]) == len(shards[1]) == 7  # 52 examples each: padded to equal length
    labels = [torch.cat([y for _, y in shard]) for shard in shards]
    assert set(torch.cat(labels).tolist()) == set(range(103))


class TinyClassifier(L.LightningModule):
    """Just enough of a LightningModule to drive the data through fit, validate and test."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
        self.seen: dict[str, int] = {"train": 0, "val": 0, "test": 0}

    def step(self, batch, stage: str) -> torch.Tensor:
        images, labels = batch
        assert images.dtype == torch.float32 and images.shape[1:] == (1, 28, 28) and images.device == self.device
        self.seen[stage] += len(labels)
        loss = nn.functional.cross_entropy(self.net(images), labels)
        self.log(f"{stage}/loss", loss)
        return loss

    def on_train_start(self) -> None:
        self.train_loader = self.trainer.train_dataloader

    def training_step(self, batch, batch_idx):
        return self.step(batch, "train")

    def validation_step(self, batch, batch_idx):
        return self.step(batch, "val")

    def test_step(self, batch, batch_idx):
        return self.step(batch, "test")

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


@pytest.mark.parametrize("on_device", [False, True])
def test_trainer_fits_validates_and_tests(fake_mnist_root, tmp_path, on_device) -> None:
    datamodule = MNISTDataModule(
        root=fake_mnist_root, download=False, val_size=200, batch_size=100, eval_batch_size=100, on_device=on_device
    )
    model = TinyClassifier()
    trainer = L.Trainer(
        accelerator="cpu",
        max_epochs=2,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(model, datamodule=datamodule)
    assert "val/loss" in trainer.callback_metrics
    trainer.test(model, datamodule=datamodule, verbose=False)
    assert isinstance(model.train_loader, DeviceBatches) == on_device
    assert model.seen == {"train": 1600, "val": 400, "test": 200}
    assert "test/loss" in trainer.callback_metrics


# ---------------------------------------------------------------------- real MNIST
def real_mnist_root() -> Path | None:
    root = os.environ.get("LINZOO_DATA")
    return Path(root) if root and (Path(root) / "MNIST" / "raw").is_dir() else None


@pytest.mark.real_data
@pytest.mark.skipif(real_mnist_root() is None, reason="set LINZOO_DATA to a folder with MNIST/raw")
def test_full_mnist_has_the_official_sizes() -> None:
    datamodule = MNISTDataModule(download=False, source="full")  # root from $LINZOO_DATA
    datamodule.setup("fit")
    assert datamodule.source == "mnist"
    assert datamodule.sizes == {"train": 55000, "val": 5000, "test": 10000}
    assert torch.bincount(datamodule.test_set.labels).tolist()[:3] == [980, 1135, 1032]


def test_epoch_order_depends_on_seed_and_epoch_only() -> None:
    """What makes resume exact: epoch e's order, asked for again (a resumed run), is the same."""
    from linzoo.data.shuffle import EpochShuffle

    dataset = numbered(50)
    sampler = EpochShuffle(dataset, seed=3)
    orders = []
    for epoch in (0, 1, 2):
        sampler.set_epoch(epoch)
        orders.append(list(sampler))
    assert sorted(orders[0]) == list(range(50)) and orders[0] != orders[1] != orders[2]
    resumed = EpochShuffle(dataset, seed=3)
    resumed.set_epoch(1)
    assert list(resumed) == orders[1] and list(resumed) == orders[1]  # not advanced by iterating
    batches = DeviceBatches(dataset, batch_size=50, shuffle=True, seed=3, epoch=lambda: 1)
    assert next(iter(batches))[1].tolist() == orders[1]  # on-device batches follow the same orders


# ------------------------------------------------- a named root must hold the data
def test_a_named_root_without_mnist_is_an_error_not_the_sample(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("LINZOO_DATA", raising=False)
    with pytest.raises(FileNotFoundError) as error:
        make(tmp_path)
    message = str(error.value)
    assert message.startswith(f"data.root={tmp_path}: MNIST not found in {tmp_path}/MNIST/raw")
    assert "data.allow_sample_fallback=true" in message and "data=mnist_sample" in message


def test_linzoo_data_without_mnist_is_an_error_too(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("LINZOO_DATA", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=f"^LINZOO_DATA={tmp_path}: MNIST not found"):
        make(None)


def test_allow_sample_fallback_uses_the_sample_with_one_warning(tmp_path) -> None:
    datamodule = MNISTDataModule(root=tmp_path, download=False, allow_sample_fallback=True)
    assert len(setup_recording_warnings(datamodule)) == 1
    assert datamodule.source == SAMPLE_SOURCE


# ------------------------------------------------------------- damaged idx files
def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-100])


def _pad(path: Path) -> None:
    path.write_bytes(path.read_bytes() + b"\x00" * 7)


def _bad_magic(path: Path) -> None:
    path.write_bytes(b"\x00\x00\x0d\x03" + path.read_bytes()[4:])  # float32 instead of uint8


def _header_only(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:6])


def _label_11(path: Path) -> None:
    raw = bytearray(path.read_bytes())
    raw[8 + 5] = 11
    path.write_bytes(bytes(raw))


def _wrong_image_size(path: Path) -> None:
    import numpy as np

    from conftest import write_idx

    write_idx(path, np.zeros((1000, 14, 14), dtype=np.uint8))


def _fewer_labels(path: Path) -> None:
    import numpy as np

    from conftest import write_idx

    write_idx(path, np.zeros(999, dtype=np.uint8))


@pytest.mark.parametrize(
    ("file", "damage", "expected"),
    [
        (
            "train-images-idx3-ubyte",
            _truncate,
            r"train-images-idx3-ubyte is truncated: 783916 bytes, but its header announces \[1000, 28, 28\] \(784016 bytes\)",
        ),
        ("t10k-images-idx3-ubyte", _pad, "t10k-images-idx3-ubyte is longer than its header says"),
        (
            "train-labels-idx1-ubyte",
            _bad_magic,
            r"train-labels-idx1-ubyte has magic number 0x00000d03, expected 0x00000801",
        ),
        ("train-labels-idx1-ubyte", _header_only, "train-labels-idx1-ubyte is truncated inside its header"),
        ("t10k-labels-idx1-ubyte", _label_11, "t10k-labels-idx1-ubyte has label 11 at index 5; labels must be 0..9"),
        ("train-images-idx3-ubyte", _wrong_image_size, "holds images of 14x14 pixels, expected 28x28"),
        ("train-labels-idx1-ubyte", _fewer_labels, "holds 1000 images but .*train-labels-idx1-ubyte holds 999 labels"),
    ],
)
def test_a_damaged_idx_file_is_named_with_what_is_wrong(fake_mnist_writer, tmp_path, file, damage, expected) -> None:
    """A damaged MNIST file (a wrong magic number, a wrong size, cut short) is one error naming the file, what is wrong and the fix (delete it and download again)."""
    raw = fake_mnist_writer(tmp_path, num_train=1000, num_test=200)
    damage(raw / file)
    with pytest.raises(CorruptDataError, match=expected) as error:
        make(tmp_path)
    assert "Fix: delete the file and download it again" in str(error.value)


def test_an_official_size_file_must_have_the_official_md5(tmp_path) -> None:
    """A label file with the official name and size but another MD5 is refused (other labels are another task) unless checks are turned off; a re-encoded image file loads after one warning naming it."""
    import numpy as np

    from conftest import write_idx
    from linzoo.data.idx import ChecksumWarning

    path = write_idx(tmp_path / "train-labels-idx1-ubyte", np.arange(60000, dtype=np.uint8) % 10)
    assert path.stat().st_size == OFFICIAL_SIZES[path.name]
    with pytest.raises(
        CorruptDataError, match=f"has the official name and size but MD5 .*{OFFICIAL_MD5['MNIST'][path.name]}"
    ):
        read_idx(path, kind="labels")
    assert len(read_idx(path, kind="labels", verify_checksum=False)) == 60000  # on purpose
    assert len(read_idx(path.rename(tmp_path / "my-labels"), kind="labels")) == 60000  # not an official name
    # Images: a re-encoded copy (another MD5, sound structure) loads after one warning naming the file.
    images = write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((10000, 28, 28), dtype=np.uint8))
    with pytest.warns(ChecksumWarning, match=f"{images}.*not the official {OFFICIAL_MD5['MNIST'][images.name]}"):
        assert read_idx(images, kind="images").shape == (10000, 28, 28)


def test_a_damaged_gzip_file_is_named(tmp_path) -> None:
    """A .gz data file that is no gzip is one error naming the file."""
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    path.write_bytes(b"not gzip at all")
    with pytest.raises(CorruptDataError, match="train-labels-idx1-ubyte.gz is not a valid gzip file"):
        debian.read_idx_gz(path, kind="labels")


@pytest.mark.skipif(real_mnist_root() is None, reason="set LINZOO_DATA to a folder with MNIST/raw")
def test_the_official_md5s_match_a_known_good_test_set() -> None:
    import hashlib

    raw = Path(real_mnist_root()) / "MNIST" / "raw"
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", "train-labels-idx1-ubyte"):
        assert hashlib.md5((raw / name).read_bytes()).hexdigest() == OFFICIAL_MD5["MNIST"][name]


def test_a_pass_starts_after_the_batches_already_trained() -> None:
    """Mid-epoch resume: with 2 batches of epoch 1 done, the pass yields the rest of epoch 1's order."""
    from linzoo.data.shuffle import EpochShuffle

    dataset = numbered(50)
    sampler = EpochShuffle(dataset, seed=3, batch_size=10)
    sampler.set_epoch(1)
    whole = list(sampler)
    sampler.batches_done = lambda: 2
    assert list(sampler) == whole[20:]
    batches = DeviceBatches(dataset, batch_size=10, shuffle=True, seed=3, epoch=lambda: 1, batches_done=lambda: 2)
    assert torch.cat([y for _, y in batches]).tolist() == whole[20:]
