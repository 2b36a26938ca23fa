"""Writes checkpoints with the main-branch code (before issue 10) for tests/data/before_issue10/."""

import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, "tests")
from conftest import _compose, write_fake_mnist
from helpers import SHORT, data_overrides

from linzoo.run.train import train

root = Path("/tmp/house_oldckpt/data")
write_fake_mnist(root, dataset="MNIST", seed=0)
out = Path(sys.argv[1])
out.mkdir(parents=True, exist_ok=True)
expected = {}
for name, net in {
    "mlp": ["model=mlp", "model.net.hidden_dims=[8]"],
    "lm": [
        "model=lm",
        "model.image_size=7",
        "model.net.seq_len=49",
        "model.net.dim=8",
        "model.net.depth=1",
        "model.net.num_heads=2",
    ],
    "autoencoder": ["model=autoencoder", "model.net.hidden_dims=[8]", "model.net.latent_dim=2"],
}.items():
    run = Path(f"/tmp/house_oldckpt/run_{name}")
    shutil.rmtree(run, ignore_errors=True)
    cfg = _compose(
        "train", [*net, *data_overrides(root), *SHORT, "scheduler.warmup_steps=3", "callbacks=early_stopping"], run
    )
    metrics = train(cfg)
    shutil.copy(run / "checkpoints" / "last.ckpt", out / f"{name}.ckpt")
    expected[name] = {k: v for k, v in metrics.items() if k.startswith("test/")}
(out / "expected_test_metrics.json").write_text(json.dumps(expected, indent=2) + "\n")
print(expected)
