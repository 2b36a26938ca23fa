"""Lightning callbacks: checkpointing/early stopping on the task's metric, and the run's pictures.

``Pictures`` is the one picture callback (PNG files in the run directory, rank zero, end
of fit/test); it hands its hooks to the drawers of the running task. The drawers need
no logger and also show their pictures in TensorBoard when that logger is on.
"""

from linzoo.callbacks.confusion import ConfusionMatrix
from linzoo.callbacks.curves import TrainingCurves
from linzoo.callbacks.ema import EMA
from linzoo.callbacks.latent_map import LatentMap
from linzoo.callbacks.monitor import EarlyStopping, ModelCheckpoint
from linzoo.callbacks.pictures import Pictures
from linzoo.callbacks.reconstructions import ReconstructionGrid
from linzoo.callbacks.role_stats import RoleStats
from linzoo.callbacks.samples import SampleGrid, draw_samples

__all__ = [
    "EMA",
    "ConfusionMatrix",
    "EarlyStopping",
    "LatentMap",
    "ModelCheckpoint",
    "Pictures",
    "ReconstructionGrid",
    "RoleStats",
    "SampleGrid",
    "TrainingCurves",
    "draw_samples",
]
