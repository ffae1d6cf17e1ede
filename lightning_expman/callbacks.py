"""Public home of the Lightning callbacks: ``from lightning_expman.callbacks import EarlyStopping``.

Importing this module imports Lightning.

Example:
    >>> from lightning_expman.callbacks import CheckpointCallback, EarlyStopping, MetricsTracker
    >>> callbacks = [EarlyStopping(monitor="val_loss", patience=5, min_delta_percent=1.0),
    ...              CheckpointCallback(interval=5), MetricsTracker()]
"""

from __future__ import annotations

from .lightning.callbacks import (
    CALLBACKS,
    CheckpointCallback,
    EarlyStopping,
    MetricsTracker,
    build_callback,
    register_callback,
)
from .lightning.hooks import LevelHooks

__all__ = [
    "CALLBACKS",
    "CheckpointCallback",
    "EarlyStopping",
    "LevelHooks",
    "MetricsTracker",
    "build_callback",
    "register_callback",
]
