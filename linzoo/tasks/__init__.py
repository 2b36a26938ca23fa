"""Lightning tasks: they receive built nets and optimizer factories, and know no Hydra."""

from linzoo.tasks.autoencoding import Autoencoding
from linzoo.tasks.base import Task
from linzoo.tasks.classifier import Classifier
from linzoo.tasks.language_modeling import LanguageModeling

__all__ = ["Autoencoding", "Classifier", "LanguageModeling", "Task"]
