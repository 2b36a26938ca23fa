"""Lightning's checkpoint writer, made atomic with linzoo's one writer."""

from __future__ import annotations

from typing import Any

from lightning.pytorch.plugins.io import TorchCheckpointIO

from linzoo.checkpoint.atomic import atomic_save

__all__ = ["AtomicCheckpointIO"]


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's ``TorchCheckpointIO`` with :func:`~linzoo.checkpoint.atomic.atomic_save` for local paths.

    Lightning 2.6 saves through fsspec, which on some setups goes through a temp file in
    ``$TMPDIR`` and then a copy that truncates the target first: a kill during the copy
    leaves a truncated ``last.ckpt``. Remote URLs (``s3://``...) keep Lightning's path.
    Pass it as ``Trainer(plugins=[AtomicCheckpointIO()])``; the run layer does.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        if storage_options is not None or "://" in str(path):
            super().save_checkpoint(checkpoint, path, storage_options=storage_options)
            return
        atomic_save(checkpoint, path)
