"""Experiment trackers that need more than Lightning's logger class: MLflow."""

from __future__ import annotations

import importlib.util
import os
from typing import Any

from lightning.pytorch.loggers import MLFlowLogger

from linzoo.common.errors import UserModuleNotFoundError


def mlflow_logger(*, tracking_uri: str = "sqlite:///mlflow.db", **kwargs: Any) -> MLFlowLogger:
    """Lightning's ``MLFlowLogger`` (``kwargs`` are its arguments).

    The default store is MLflow's own default, ``sqlite:///mlflow.db`` (``./mlflow.db``,
    relative to the working directory; ``mlflow ui`` opens it with no flag). MLflow 3
    refuses a local file store (``file:./mlruns``, in maintenance mode) unless
    ``MLFLOW_ALLOW_FILE_STORE`` is set: for a ``file:`` URI asked for by name it is set here.
    """
    if importlib.util.find_spec("mlflow") is None:
        raise UserModuleNotFoundError(
            "logger=mlflow needs MLflow, which is not installed: pip install 'linzoo[mlflow]' (or mlflow-skinny)."
        )
    if tracking_uri.startswith("file:"):
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    return MLFlowLogger(tracking_uri=tracking_uri, **kwargs)
