"""muP's width transfer: one point of scripts/width_transfer.py on fake MNIST, and docs/mup.md's
report (dev/reports/mup.py) on generated sweep results."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from conftest import _compose
from dev.reports import mup as report
from helpers import data_overrides
from linzoo.run.width_transfer import run_point

STEPS = ["steps=6", "loss_window=3", "data.batch_size=32"]


def point(fake_mnist_root: Path, run: Path, *overrides: str) -> dict:
    cfg = _compose("width_transfer", [*data_overrides(fake_mnist_root), "data.source=full", *STEPS, *overrides], run)
    return run_point(cfg)


def test_one_point_writes_its_loss_and_monitor(fake_mnist_root, tmp_path) -> None:
    result = point(fake_mnist_root, tmp_path / "a", "linear=mup", "width=64", "base_width=32", "optimizer.lr=0.001")
    written = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert written == result
    assert result["parametrization"] == "mup" and result["width"] == 64 and result["base_width"] == 32
    assert result["model"] == "mlp" and result["steps"] == 6 and len(result["losses"]) == 6
    assert result["loss"] == pytest.approx(sum(result["losses"][-3:]) / 3)
    assert result["monitor"] == {"metric": "train/loss", "mode": "min", "best": result["loss"]}
    assert not result["diverged"] and result["status"] == "finished"


def test_mup_at_the_base_width_is_sp_and_the_seed_decides(fake_mnist_root, tmp_path) -> None:
    """At m = 1 muP is SP bit for bit: the same losses at every step; another seed, other losses."""
    common = ("width=64", "base_width=64", "optimizer.lr=0.002", "seed=3")
    sp = point(fake_mnist_root, tmp_path / "sp", "linear=default", *common)
    mup = point(fake_mnist_root, tmp_path / "mup", "linear=mup", *common)
    assert sp["parametrization"] == "sp" and sp["losses"] == mup["losses"]
    other = point(fake_mnist_root, tmp_path / "other", "linear=default", *common[:-1], "seed=4")
    assert other["losses"] != sp["losses"]


def test_mup_at_another_width_is_not_sp(fake_mnist_root, tmp_path) -> None:
    common = ("width=128", "base_width=32", "optimizer.lr=0.002")
    sp = point(fake_mnist_root, tmp_path / "sp", "linear=default", *common)
    mup = point(fake_mnist_root, tmp_path / "mup", "linear=mup", *common)
    assert sp["losses"][0] != mup["losses"][0]  # the output multiplier 1/m already changes the first loss


def test_a_diverging_lr_is_marked_and_has_no_loss(fake_mnist_root, tmp_path) -> None:
    result = point(fake_mnist_root, tmp_path / "a", "width=64", "optimizer.lr=1e6", "optimizer=sgd")
    assert result["diverged"] and result["loss"] is None and result["status"] == "diverged"
    assert result["monitor"]["best"] is None


def test_a_loss_window_longer_than_the_run_is_refused(fake_mnist_root, tmp_path) -> None:
    with pytest.raises(Exception, match="loss_window=30: expected 1 <= loss_window <= steps=6"):
        point(fake_mnist_root, tmp_path / "a", "loss_window=30")


# ----------------------------------------------------------------------------- the report
def jobs(best: dict[str, dict[int, float]], grid: list[float]) -> list[dict]:
    """Fake jobs whose loss is smallest at ``best[parametrization][width]``, (lr distance)^2 away from it."""
    records = []
    for parametrization, widths in best.items():
        for width, best_lr in widths.items():
            for lr in grid:
                for seed in (0, 1):
                    loss = 0.3 + (math.log2(lr) - math.log2(best_lr)) ** 2 + 0.01 * seed
                    diverged = lr == grid[-1] and parametrization == "sp"
                    records.append(
                        {
                            "parametrization": parametrization,
                            "model": "mlp",
                            "width": width,
                            "base_width": 128,
                            "lr": lr,
                            "seed": seed,
                            "steps": 300,
                            "loss_window": 30,
                            "loss": None if diverged else loss,
                        }
                    )
    return records


GRID = [2.0**-k for k in range(12, 4, -1)]  # 2^-12 .. 2^-5


def test_best_lrs_and_their_shift_in_grid_steps() -> None:
    records = jobs({"sp": {128: 2**-7, 512: 2**-9, 2048: 2**-11}, "mup": {128: 2**-7, 512: 2**-7, 2048: 2**-8}}, GRID)
    best = report.best_lrs(report.mean_losses(records))
    assert best == {"sp": {128: 2**-7, 512: 2**-9, 2048: 2**-11}, "mup": {128: 2**-7, 512: 2**-7, 2048: 2**-8}}
    assert report.grid_shift(best["sp"], GRID) == 4 and report.grid_shift(best["mup"], GRID) == 1
    assert report.mean_losses(records)["sp"][128][GRID[-1]] == math.inf  # a diverged seed: never the best


def test_transfer_section_says_whether_the_goal_is_met(tmp_path) -> None:
    met = report.transfer_section(
        jobs({"sp": {128: 2**-7, 2048: 2**-10}, "mup": {128: 2**-7, 2048: 2**-8}}, GRID), tmp_path, "cmd"
    )
    assert (
        "- SP: from width 128 to 2048 the best lr moves 3 grid step(s) (factor 8); over all widths it spans 3 grid step(s)."
        in met
    )
    assert met[-1].endswith("**met**.") and "| 2048 | 2^-10 (0.000977) | 2^-8 (0.00391) |" in met
    assert (tmp_path / "width_transfer.png").stat().st_size > 10_000
    missed = report.transfer_section(jobs({"mup": {128: 2**-7, 2048: 2**-10}}, GRID), tmp_path, "cmd")
    assert missed[-1].endswith("**not met**.")


def test_role_table_comes_from_the_code() -> None:
    rows = {row.split(" | ")[0].strip("| `"): row for row in report.role_table()[2:]}
    assert rows["hidden"].split(" | ")[1:] == ["hidden", "/ m", "x1", "x1", "x m |"]
    assert rows["head"].split(" | ")[1:] == ["output", "x1", "x m", "x1", "x1 |"]
    assert rows["patch"].split(" | ")[1:] == ["input", "x1", "x m", "x1", "x m |"]
    assert rows["token_mix"].split(" | ")[1:] == ["fixed", "x1", "x1", "x1", "x1 |"]


def test_coord_table_flags_a_role_beyond_2x() -> None:
    result = {"sp": {"head": {64: 1.0, 1024: 9.0}}, "mup": {"head": {64: 1.0, 1024: 2.5}}}
    assert report.coord_table({"mlp": result})[2] == "| mlp | `head` | 9.00x | 2.50x | **no** |"


def test_the_config_grid_is_the_documented_one() -> None:
    """configs/width_transfer.yaml: SP and muP, widths 128..2048, lr 2^-13..2^-5 (one grid step = x2), two seeds."""
    from hydra import compose, initialize_config_dir

    from conftest import CONFIG_DIR
    from linzoo.run.schemas import register_configs

    register_configs()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("width_transfer", return_hydra_config=True)
    params = {key: str(value).split(",") for key, value in cfg.hydra.sweeper.params.items()}
    assert params["linear"] == ["default", "mup"] and params["seed"] == ["0", "1"]
    assert [int(w) for w in params["width"]] == [128, 256, 512, 1024, 2048]
    assert [round(math.log2(float(lr)), 3) for lr in params["optimizer.lr"]] == list(range(-13, -4))
    assert cfg.base_width == 128 and cfg.scheduler is None and cfg.model.net.dropout == 0.0


def test_role_stats_table_shows_the_last_step() -> None:
    rows = [
        {"step": "0", "role": "head", "weight_std": "0.1", "expected_std": "0.1", "activation_rms": "1",
         "grad_norm": "", "update_ratio": ""},
        {"step": "20", "role": "head", "weight_std": "0.12345", "expected_std": "0.1", "activation_rms": "2",
         "grad_norm": "0.5", "update_ratio": "0.01"},
    ]  # fmt: skip
    assert report.role_stats_table(rows)[2:] == ["| `head` | 0.123 | 0.1 | 2 | 0.5 | 0.01 |"]


def test_the_report_writes_the_page_from_a_sweep(tmp_path, monkeypatch) -> None:
    """scripts/mup_report.py end to end, on fake sweep results and a tiny coordinate check."""
    monkeypatch.setattr(report, "COORD_CHECKS", {"mlp": ([16, 64], [])})
    sweep = tmp_path / "sweep"
    for index, record in enumerate(jobs({"sp": {128: 2**-7, 2048: 2**-9}, "mup": {128: 2**-7, 2048: 2**-7}}, GRID)):
        (sweep / str(index)).mkdir(parents=True)
        (sweep / str(index) / "metrics.json").write_text(json.dumps(record))
    out = tmp_path / "docs" / "mup.md"
    assert report.main(["--sweep", str(sweep), "--out", str(out), "--no-role-stats"]) == 0
    page = out.read_text()
    for heading in ("## The rule, by role", "## Coordinate check", "## Width transfer"):
        assert heading in page
    assert "## Per-role statistics" not in page and "**met**." in page
    assert "| mlp | `head` |" in page and (tmp_path / "docs" / "mup" / "coord_check_mlp_mup.png").is_file()


def test_the_loss_window_is_read_or_found_from_the_losses() -> None:
    assert report.loss_window([{"loss_window": 7}]) == 7
    losses = [3.0, 2.0, 1.0, 0.5, 0.25]
    assert report.loss_window([{"loss": None}, {"losses": losses, "loss": (1.0 + 0.5 + 0.25) / 3}]) == 3
