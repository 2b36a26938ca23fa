"""Generation with the pixel LM: cache, seeds, class-conditional samples, scripts/sample.py."""

from __future__ import annotations

import functools
import json
import math
import os
import subprocess
import sys

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from helpers import ROOT, SHORT, data_overrides, png_size
from linzoo.callbacks import draw_samples
from linzoo.models import DecoderLM
from linzoo.run.train import train
from linzoo.tasks import LanguageModeling
from linzoo.tools.sample import sample_checkpoint

TINY_LM = ["model=lm", "model.image_size=7", "model.net.seq_len=49", "model.net.dim=16", "model.net.depth=1"]


def grid_size(num_images: int, nrow: int, side: int, padding: int = 2) -> tuple[int, int]:
    """Size of a save_image_grid PNG: images enlarged to at least 56 pixels (7x7 by 8)."""
    side *= math.ceil(56 / side)
    return nrow * (side + padding) + padding, math.ceil(num_images / nrow) * (side + padding) + padding


def tiny_lm_task(*, side: int = 4, levels: int = 2, conditional: bool = False, lr: float = 1e-2) -> LanguageModeling:
    torch.manual_seed(0)
    vocab = levels + 1 + (10 if conditional else 0)
    net = DecoderLM(vocab_size=vocab, seq_len=side * side, dim=32, depth=1, num_heads=2)
    optimizer = functools.partial(torch.optim.AdamW, lr=lr, weight_decay=0.0)
    return LanguageModeling(net=net, optimizer=optimizer, levels=levels, image_size=side, conditional=conditional)


@pytest.mark.parametrize("levels", [2, 16])
def test_task_samples_are_the_same_with_and_without_the_cache(levels: int) -> None:
    task = tiny_lm_task(side=5, levels=levels).eval()
    options = {"num": 6, "temperature": 1.3, "top_k": 8, "seed": 3}
    cached, _ = draw_samples(task, use_cache=True, **options)
    uncached, _ = draw_samples(task, use_cache=False, **options)
    assert cached.shape == (6, 1, 5, 5)
    assert torch.equal(cached, uncached)
    grey_levels = cached * (levels - 1)  # images hold token / (levels - 1)
    torch.testing.assert_close(grey_levels, grey_levels.round())
    assert 0 <= grey_levels.min() and grey_levels.max() <= levels - 1


def test_sampling_with_a_fixed_seed_is_repeatable() -> None:
    task = tiny_lm_task(side=5).eval()
    first, nrow = draw_samples(task, num=9, seed=1)
    again, _ = draw_samples(task, num=9, seed=1)
    other, _ = draw_samples(task, num=9, seed=2)
    assert nrow == 3 and torch.equal(first, again) and not torch.equal(first, other)
    greedy = [draw_samples(task, num=4, seed=s, top_k=1)[0] for s in (0, 1)]
    assert torch.equal(*greedy)  # top_k=1: the seed no longer matters
    with pytest.raises(ValueError, match="temperature"):
        draw_samples(task, num=2, temperature=0.0)
    with pytest.raises(ValueError, match="model.conditional=true"):
        draw_samples(task, num=2, digit=3)


def test_generate_may_fill_the_context_and_sample_one_more_token() -> None:
    model = DecoderLM(vocab_size=3, seq_len=9, dim=16, depth=1, num_heads=2).eval()
    out = model.generate(torch.full((2, 1), 2), 9, allowed_tokens=2, generator=torch.Generator().manual_seed(0))
    assert out.shape == (2, 10)  # the 9th input predicts the 10th token, which is never fed back
    with pytest.raises(ValueError, match="seq_len=9"):
        model.generate(torch.full((2, 1), 2), 10)


def column_images(num: int, *, noise: float = 0.05, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Binary 4x4 images of 4 classes: class c lights column c, plus 5% random pixels."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(num) % 4
    pixels = (torch.rand(num, 1, 4, 4, generator=generator) < noise).float()
    pixels[torch.arange(num), 0, :, labels] = 1.0
    return pixels, labels


@pytest.mark.slow  # 300 training steps: about 5 s on an idle 2-core CPU, much more on a busy one
def test_class_conditional_samples_show_the_requested_class(tmp_path) -> None:
    images, labels = column_images(512)
    task = tiny_lm_task(conditional=True, lr=3e-3)
    trainer = L.Trainer(
        max_steps=300,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    loader = DataLoader(
        TensorDataset(images, labels), batch_size=64, shuffle=True, generator=torch.Generator().manual_seed(0)
    )
    trainer.fit(task, train_dataloaders=loader)
    task.eval()
    for digit in range(4):
        samples, _ = draw_samples(task, num=25, digit=digit, seed=digit)
        # The "classifier": the brightest column. An LM that ignored the class token
        # would get about 25% of these right.
        predicted = samples[:, 0].sum(dim=1).argmax(dim=1)
        assert (predicted == digit).float().mean() >= 0.7, (digit, predicted.tolist())
    # digit=None on a conditional LM: one row per class (all 10 class tokens), ceil(20 / 10) = 2 a row.
    grid, nrow = draw_samples(task, num=20, seed=0)
    assert grid.shape == (20, 1, 4, 4) and nrow == 2


def test_conditional_lm_trains_from_the_configs_and_samples_from_its_checkpoint(
    compose_train, fake_mnist_root, tmp_path, capsys
) -> None:
    run = tmp_path / "run"
    metrics = train(
        compose_train([*TINY_LM, "model.conditional=true", *data_overrides(fake_mnist_root), *SHORT], output_dir=run)
    )
    # The literature's units: nats per image and bits per dimension, in metrics.json and the summary.
    saved = json.loads((run / "metrics.json").read_text())
    printed = capsys.readouterr().out
    for name in ("test/loss", "test/nll_nats", "test/bits_per_dim"):
        assert name in saved and f'"{name}"' in printed
    assert saved["test/bits_per_dim"] == pytest.approx(saved["test/nll_nats"] / (49 * math.log(2)), rel=1e-4)
    assert saved["test/nll_nats"] == pytest.approx(49 * saved["test/loss"], rel=1e-4)
    # The run's own samples.png: one row per digit, ceil(64 / 10) = 7 a row, 7x7 pixels each.
    assert png_size(run / "samples.png") == grid_size(70, 7, side=7)

    checkpoint = metrics["best_checkpoint"]
    out = tmp_path / "sevens.png"
    assert sample_checkpoint(ckpt_path=checkpoint, num=16, digit=7, out=out, device="cpu") == out
    assert png_size(out) == grid_size(16, 4, side=7)
    before = out.read_bytes()
    with pytest.raises(FileExistsError, match="out="):
        sample_checkpoint(ckpt_path=checkpoint, num=16, digit=7, out=out)
    assert out.read_bytes() == before
    # Default names in the run directory: a taken name gets a suffix.
    first = sample_checkpoint(ckpt_path=checkpoint, num=4, digit=7, run_dir=tmp_path / "s", top_k=1)
    second = sample_checkpoint(ckpt_path=checkpoint, num=4, digit=7, run_dir=tmp_path / "s", top_k=1)
    assert (first.name, second.name) == ("samples_digit7.png", "samples_digit7-1.png")
    assert first.read_bytes() == second.read_bytes()  # same seed, same picture
    with pytest.raises(ValueError, match=r"digit must be in 0\.\.9"):
        sample_checkpoint(ckpt_path=checkpoint, num=4, digit=12, run_dir=tmp_path / "s")


def test_sampling_refuses_a_checkpoint_that_is_not_an_lm(compose_train, fake_mnist_root, tmp_path) -> None:
    metrics = train(
        compose_train(
            [
                "model=mlp",
                "model.net.hidden_dims=[16]",
                *data_overrides(fake_mnist_root),
                *SHORT,
                "trainer.max_epochs=1",
            ],
            output_dir=tmp_path / "run",
        )
    )
    with pytest.raises(ValueError, match="model=lm"):
        sample_checkpoint(ckpt_path=metrics["best_checkpoint"], num=4, run_dir=tmp_path / "s")
    with pytest.raises(ValueError, match=r"\.png"):
        sample_checkpoint(ckpt_path=metrics["best_checkpoint"], num=4, out=tmp_path / "x.jpg")


@pytest.mark.slow
def test_sample_script_from_the_command_line(fake_mnist_root, tmp_path) -> None:
    env = {**os.environ, "LINZOO_DATA": str(fake_mnist_root)}
    run = tmp_path / "run"
    command = [
        sys.executable,
        "scripts/train.py",
        *TINY_LM,
        "data.download=false",
        "data.val_size=200",
        *SHORT,
        "trainer.max_epochs=1",
        f"hydra.run.dir={run}",
    ]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    sample = [
        sys.executable,
        "scripts/sample.py",
        f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}",
        "num=9",
        "temperature=0.8",
        "top_k=2",
        "seed=5",
        f"hydra.run.dir={tmp_path / 'sample'}",
    ]
    done = subprocess.run(sample, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"Samples: {tmp_path / 'sample' / 'samples.png'}" in done.stdout
    assert png_size(tmp_path / "sample" / "samples.png") == grid_size(9, 3, side=7)
