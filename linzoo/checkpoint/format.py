"""The keys of linzoo's checkpoint format (kept stable: old checkpoints name them)."""

CONFIG_KEY = "linzoo_config"  # checkpoint[CONFIG_KEY]: {"model": task config with "net", "data": ..., "precision": ...}
SAFETENSORS_CONFIG_KEY = "linzoo_config"  # JSON of the same build config, in a .safetensors file's metadata
NET_PREFIX = "net."  # the plain net's weights inside a task's state_dict
