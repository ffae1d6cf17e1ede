"""The Lightning integration: the drop-in logger, Trainer hooks -> levels, callbacks, ExpmanTrainer.

Importing this package imports Lightning (seconds): the rest of lightning_expman never does so
at import time.

Example:
    >>> import lightning as L
    >>> from lightning_expman.lightning import ExpmanLogger
    >>> trainer = L.Trainer(logger=ExpmanLogger(experiment="digits", trial="mlp"))
"""

from __future__ import annotations

from .callbacks import (
    CALLBACKS,
    CheckpointCallback,
    EarlyStopping,
    MetricsTracker,
    build_callback,
    register_callback,
)
from .hooks import LevelHooks
from .logger import ExpmanLogger
from .trainer import ExpmanTrainer

__all__ = [
    "CALLBACKS",
    "CheckpointCallback",
    "EarlyStopping",
    "ExpmanLogger",
    "ExpmanTrainer",
    "LevelHooks",
    "MetricsTracker",
    "build_callback",
    "register_callback",
]
