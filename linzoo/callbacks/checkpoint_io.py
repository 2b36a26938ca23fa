"""Lightning's checkpoint writer and reader: atomic with linzoo's one writer, safe with its one reader."""

from __future__ import annotations

from typing import Any

from lightning.pytorch.plugins.io import TorchCheckpointIO

from linzoo.checkpoint.atomic import atomic_save
from linzoo.checkpoint.files import load_weights_only

__all__ = ["AtomicCheckpointIO"]


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's ``TorchCheckpointIO`` with :func:`~linzoo.checkpoint.atomic.atomic_save` for local paths.

    Lightning 2.6 saves through fsspec, which on some setups goes through a temp file in
    ``$TMPDIR`` and then a copy that truncates the target first: a kill during the copy
    leaves a truncated ``last.ckpt``. Remote URLs (``s3://``...) keep Lightning's path.
    Pass it as ``Trainer(plugins=[AtomicCheckpointIO()])``; the run layer does.

    Reading (``trainer.fit(ckpt_path=...)`` on resume) goes through linzoo's one safe loader,
    ``torch.load(weights_only=True)`` with linzoo's allow-list, whatever ``weights_only`` Lightning asks for.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        if storage_options is not None or "://" in str(path):
            super().save_checkpoint(checkpoint, path, storage_options=storage_options)
            return
        atomic_save(checkpoint, path)

    def load_checkpoint(self, path: Any, map_location: Any = None, weights_only: bool | None = None) -> dict[str, Any]:
        if "://" in str(path):
            return super().load_checkpoint(path, map_location=map_location, weights_only=True)
        return load_weights_only(path, map_location=map_location if map_location is not None else "cpu")
