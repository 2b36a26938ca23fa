"""Same data, or an explicit choice (issue 20, point 8): every checkpoint records the identity of its
data; eval and resume refuse other data unless ``allow_other_data=true``, and ``metrics.json`` says
what was used."""

from __future__ import annotations

import gzip
import json
import shutil

import pytest
import torch

from helpers import SHORT, TINY, data_overrides
from linzoo.checkpoint import CONFIG_KEY, read_checkpoint
from linzoo.data.identity import identity_differences, split_fingerprint
from linzoo.data.mnist import MNISTDataModule
from linzoo.data.tensor_dataset import ImageTensorDataset
from linzoo.run.evaluate import evaluate
from linzoo.run.same_data import OtherDataError
from linzoo.run.train import train


def _identity(**changes):
    identity = {
        "dataset": "mnist",
        "source": "mnist",
        "split_seed": 0,
        "val_size": 200,
        "sizes": {"train": 800, "val": 200, "test": 200},
        "fingerprints": {"train": "a", "val": "b", "test": "c"},
    }
    return {**identity, **changes}


def test_differences_name_the_settings_else_the_files() -> None:
    recorded = _identity()
    assert identity_differences(recorded, _identity(), splits=("train", "val", "test")) == []
    other_seed = _identity(split_seed=1, fingerprints={"train": "x", "val": "y", "test": "c"})
    assert identity_differences(recorded, other_seed, splits=("test",)) == []  # the test split is the same
    assert identity_differences(recorded, other_seed, splits=("train", "val", "test")) == ["split_seed: 0 -> 1"]
    other_files = _identity(fingerprints={"train": "a", "val": "b", "test": "z"})
    assert identity_differences(recorded, other_files, splits=("test",)) == [
        "the test split holds other images (fingerprint c -> z)"
    ]


def test_a_fingerprint_reads_the_images_and_labels_and_nothing_else() -> None:
    images = torch.randint(0, 256, (10, 1, 28, 28), dtype=torch.uint8)
    labels = torch.arange(10)
    split = ImageTensorDataset(images, labels)
    assert split_fingerprint(split) == split_fingerprint(ImageTensorDataset(images.clone(), labels.clone()))
    changed = images.clone()
    changed[3, 0, 5, 5] ^= 1
    assert split_fingerprint(ImageTensorDataset(changed, labels)) != split_fingerprint(split)
    assert split_fingerprint(ImageTensorDataset(images, labels.roll(1))) != split_fingerprint(split)


def test_gzip_or_plain_files_in_another_folder_are_the_same_data(fake_mnist_root, tmp_path) -> None:
    """The identity is the data read, not the path or the compression: moving the files is no change."""
    plain = tmp_path / "plain"
    shutil.copytree(fake_mnist_root / "MNIST", plain / "MNIST")
    for file in (plain / "MNIST" / "raw").glob("*.gz"):
        file.with_suffix("").write_bytes(gzip.decompress(file.read_bytes()))
        file.unlink()
    identities = []
    for root in (fake_mnist_root, plain):
        data = MNISTDataModule(root=root, download=False, val_size=200)
        data.setup("fit")
        identities.append(data.identity())
    assert identities[0] == identities[1]
    assert identities[0]["sizes"] == {"train": 800, "val": 200, "test": 200}


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, fake_mnist_root):
    """A tiny mlp trained on the fake MNIST: (run directory, its best checkpoint)."""
    from conftest import _compose

    run = tmp_path_factory.mktemp("same_data") / "run"
    cfg = _compose("train", ["model=mlp", *TINY["mlp"], *data_overrides(fake_mnist_root), *SHORT], run)
    metrics = train(cfg)
    return run, metrics


def test_every_checkpoint_and_metrics_json_record_the_data(trained_run) -> None:
    run, metrics = trained_run
    for checkpoint in (run / "checkpoints").glob("*.ckpt"):
        identity = read_checkpoint(checkpoint)[CONFIG_KEY]["data_identity"]
        assert identity["dataset"] == "mnist" and identity["split_seed"] == 0
        assert set(identity["fingerprints"]) == {"train", "val", "test"}
    assert json.loads((run / "metrics.json").read_text())["data"] == identity == metrics["data"]


def test_eval_on_another_dataset_is_refused_unless_allowed(trained_run, compose_eval, tmp_path) -> None:
    """An MNIST model scored on Fashion-MNIST (the same data.root holds both) is refused, then allowed on purpose."""
    checkpoint = trained_run[1]["weights"]
    with pytest.raises(OtherDataError, match=r"dataset: 'mnist' -> 'fashion_mnist'.*allow_other_data=true"):
        evaluate(compose_eval([f"ckpt_path={checkpoint}", "data.dataset=fashion_mnist"], output_dir=tmp_path / "a"))
    assert not (tmp_path / "a" / "metrics.json").exists()
    metrics = evaluate(
        compose_eval(
            [f"ckpt_path={checkpoint}", "data.dataset=fashion_mnist", "allow_other_data=true"],
            output_dir=tmp_path / "b",
        )
    )
    saved = json.loads((tmp_path / "b" / "metrics.json").read_text())
    assert saved["same_data_as_checkpoint"] is False and metrics["data"]["dataset"] == saved["data"]["dataset"]
    assert saved["data"]["dataset"] == "fashion_mnist"


def test_eval_with_another_split_seed_of_full_data_tests_the_same_images(trained_run, compose_eval, tmp_path) -> None:
    """The official test set does not depend on the split seed: same data, no refusal."""
    metrics = evaluate(compose_eval([f"ckpt_path={trained_run[1]['weights']}", "data.seed=1"], output_dir=tmp_path))
    assert metrics["same_data_as_checkpoint"] is True


def test_eval_on_the_sample_with_another_seed_is_refused(compose_train, compose_eval, tmp_path) -> None:
    """On the 5,000-digit sample the split seed picks the test images: seed 1 would test on training images."""
    cfg = compose_train(["model=mlp", *TINY["mlp"], "data=mnist_sample", *SHORT], output_dir=tmp_path / "run")
    checkpoint = train(cfg)["weights"]
    with pytest.raises(OtherDataError, match=r"split_seed: 0 -> 1"):
        evaluate(compose_eval([f"ckpt_path={checkpoint}", "data.seed=1"], output_dir=tmp_path / "eval"))
    assert evaluate(compose_eval([f"ckpt_path={checkpoint}"], output_dir=tmp_path / "same"))["same_data_as_checkpoint"]


def test_resume_on_other_files_is_refused_unless_allowed(
    trained_run, compose_train, fake_mnist_root, fake_mnist_writer, tmp_path
) -> None:
    """data.root may move, but a resume on other files (same names, other digits) is refused."""
    other = tmp_path / "other"
    fake_mnist_writer(other, dataset="MNIST", seed=7)
    checkpoint = trained_run[0] / "checkpoints" / "last.ckpt"
    common = ["model=mlp", *TINY["mlp"], *data_overrides(other), *SHORT, "trainer.max_epochs=3"]
    with pytest.raises(OtherDataError, match=r"the train split holds other images"):
        train(compose_train([*common, f"ckpt_path={checkpoint}"], output_dir=tmp_path / "refused"))
    assert not (tmp_path / "refused").exists()
    resumed = train(
        compose_train([*common, f"ckpt_path={checkpoint}", "allow_other_data=true"], output_dir=tmp_path / "allowed")
    )
    assert resumed["same_data_as_checkpoint"] is False and resumed["epochs"] == 3


def test_resume_after_the_data_folder_disappears_does_not_finish_on_the_sample(
    compose_train, fake_mnist_root, tmp_path, monkeypatch
) -> None:
    """Trained with LINZOO_DATA set; resumed without it, data=mnist falls back to the sample: refused."""
    monkeypatch.setenv("LINZOO_DATA", str(fake_mnist_root))
    common = ["model=mlp", *TINY["mlp"], "data=mnist", "data.download=false", "data.val_size=200", *SHORT]
    train(compose_train(common, output_dir=tmp_path / "first"))
    monkeypatch.delenv("LINZOO_DATA")
    checkpoint = tmp_path / "first" / "checkpoints" / "last.ckpt"
    with pytest.raises(OtherDataError, match=r"source: 'mnist' -> 'mnist_sample"):
        train(
            compose_train([*common, "trainer.max_epochs=3", f"ckpt_path={checkpoint}"], output_dir=tmp_path / "second")
        )
