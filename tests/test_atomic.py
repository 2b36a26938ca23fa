"""The one atomic writer (linzoo/checkpoint/atomic.py): checkpoints, metrics.json, exports and
pictures appear whole or not at all, and a failed write leaves the previous file as it was."""

from __future__ import annotations

import pytest
import torch

from linzoo.callbacks.image_files import new_figure, save_figure, save_image_grid
from linzoo.checkpoint.atomic import atomic_path, atomic_write
from linzoo.tools import export


def test_a_failed_write_leaves_the_old_file_and_no_temp_file(tmp_path) -> None:
    """A write that fails halfway (ENOSPC) leaves the previous file as it was and no temp file; the next write replaces it whole."""
    target = tmp_path / "metrics.json"
    target.write_text("old")

    def half_then_fail(file) -> None:
        file.write(b'{"half": ')
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        atomic_write(target, half_then_fail)
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]
    atomic_write(target, lambda file: file.write(b"new"))
    assert target.read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]


def test_atomic_path_gives_writers_a_name_and_renames_only_on_success(tmp_path) -> None:
    """A writer that wants a file name gets a hidden temp path beside the target, which becomes the target only when the writer succeeds; a failed writer leaves nothing."""
    target = tmp_path / "model.onnx"
    with atomic_path(target) as temporary:
        assert temporary.parent == tmp_path and temporary.name.startswith(".model.onnx.")
        temporary.write_bytes(b"done")
        assert not target.exists()
    assert target.read_bytes() == b"done"
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "other.pt2") as temporary:
        temporary.write_bytes(b"trunc")
        raise RuntimeError("the exporter died")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]


def test_an_export_that_fails_leaves_no_truncated_file(tmp_path, monkeypatch) -> None:
    """An export that fails after writing part of its file leaves no file under the target's name, so the rerun is not blocked."""
    net = torch.nn.Linear(4, 2)

    def write_half(net, inputs, path, format, *, build_config, int8_modules=None):
        path.write_bytes(b"truncated")
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(export, "_write_and_compare", write_half)
    with pytest.raises(OSError):
        export.export_net(net, torch.zeros(2, 4), tmp_path / "model.onnx", "onnx", build_config={})
    assert list(tmp_path.iterdir()) == []  # the rerun is not blocked by a half file


def test_pictures_are_written_whole(tmp_path) -> None:
    grid = save_image_grid(torch.rand(4, 1, 8, 8), tmp_path / "grid.png", nrow=2)
    assert grid.dtype == torch.uint8 and (tmp_path / "grid.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    path = save_figure(new_figure(64, 48), tmp_path / "curves.png")
    assert path.read_bytes()[:4] == b"\x89PNG" and sorted(p.name for p in tmp_path.iterdir()) == [
        "curves.png",
        "grid.png",
    ]
