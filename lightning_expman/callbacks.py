"""Public home of the Lightning callbacks: ``from lightning_expman.callbacks import EarlyStopping``.

Importing this module imports Lightning. The built-in callbacks also work as callbacks of a custom
:class:`~lightning_expman.pipeline.Pipeline` (the seed's ``on_start`` / ``on_epoch_end`` / ``on_end``);
:class:`PipelineCallback` is the base of your own (the seed's ``Callback``).

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
from .pipeline import PipelineCallback

__all__ = [
    "CALLBACKS",
    "CheckpointCallback",
    "EarlyStopping",
    "LevelHooks",
    "MetricsTracker",
    "PipelineCallback",
    "build_callback",
    "register_callback",
]
