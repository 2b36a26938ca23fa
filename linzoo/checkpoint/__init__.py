"""The checkpoint format: what linzoo writes, and the one place that reads it back.

A linzoo checkpoint is a Lightning checkpoint plus ``checkpoint[CONFIG_KEY] = {"model": ...,
"data": ..., "precision": ...}``, the resolved config that rebuilds the task with nothing else;
an exported ``.safetensors`` file holds the plain net's weights and the same config as JSON
metadata. Built on torch alone: nothing here imports Hydra or Lightning.

    format.py        the format's keys
    files.py         finding a checkpoint, and the one torch.load
    atomic.py        the one atomic writer (checkpoints, metrics.json, exports, pictures)
    safetensors.py   reading an exported .safetensors file
    nets.py          rebuilding the plain net from the model registry: linzoo.load, create_model(checkpoint_path=)
"""

from linzoo.checkpoint.atomic import atomic_save, atomic_write, remove_stale_temp_files, write_text_atomically
from linzoo.checkpoint.files import checkpoint_in, existing_checkpoint, read_checkpoint
from linzoo.checkpoint.format import CONFIG_KEY, NET_PREFIX, SAFETENSORS_CONFIG_KEY
from linzoo.checkpoint.nets import build_net, create_model_from_checkpoint, load, net_config_of, read_net, rebuild_net

__all__ = [
    "CONFIG_KEY",
    "NET_PREFIX",
    "SAFETENSORS_CONFIG_KEY",
    "atomic_save",
    "atomic_write",
    "build_net",
    "checkpoint_in",
    "create_model_from_checkpoint",
    "existing_checkpoint",
    "load",
    "net_config_of",
    "read_checkpoint",
    "read_net",
    "rebuild_net",
    "remove_stale_temp_files",
    "write_text_atomically",
]
