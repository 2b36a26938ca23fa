"""Experiment trackers that need more than Lightning's logger class: MLflow."""

from __future__ import annotations

import importlib.util
import os
from typing import Any

from lightning.pytorch.loggers import MLFlowLogger


def mlflow_logger(*, tracking_uri: str = "file:./mlruns", **kwargs: Any) -> MLFlowLogger:
    """Lightning's ``MLFlowLogger`` (``kwargs`` are its arguments).

    MLflow 3 refuses a local file store (``file:...``) unless ``MLFLOW_ALLOW_FILE_STORE``
    is set (that store is in maintenance mode, not removed): for the default ``./mlruns``
    it is set here. A database (``sqlite:///mlflow.db``) or a server URL needs nothing.
    """
    if importlib.util.find_spec("mlflow") is None:
        raise ModuleNotFoundError(
            "logger=mlflow needs MLflow, which is not installed: pip install 'linzoo[mlflow]' (or mlflow-skinny)."
        )
    if tracking_uri.startswith("file:"):
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    return MLFlowLogger(tracking_uri=tracking_uri, **kwargs)
