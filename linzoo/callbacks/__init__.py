"""Lightning callbacks that leave pictures in the run directory (PNG, rank zero, end of fit/test).

Each one acts only on the task it draws (others are left alone), needs no logger,
and also shows its picture in TensorBoard when that logger is on.
"""

from linzoo.callbacks.confusion import ConfusionMatrix
from linzoo.callbacks.curves import TrainingCurves
from linzoo.callbacks.ema import EMA
from linzoo.callbacks.latent_map import LatentMap
from linzoo.callbacks.reconstructions import ReconstructionGrid
from linzoo.callbacks.samples import SampleGrid, draw_samples

__all__ = ["EMA", "ConfusionMatrix", "LatentMap", "ReconstructionGrid", "SampleGrid", "TrainingCurves", "draw_samples"]
