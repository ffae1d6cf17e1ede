"""lightning_expman: an experiment manager for PyTorch Lightning.

Names that need Lightning (``ExpmanLogger``, ``ExpmanTrainer``, ``Pipeline``...) are imported
lazily on first access, so ``import lightning_expman`` and the ``expman`` CLI start fast.

Example:
    >>> import lightning as L
    >>> from lightning_expman import ExpmanLogger
    >>> trainer = L.Trainer(max_epochs=3, logger=ExpmanLogger(experiment="digits", trial="mlp"))
"""

from __future__ import annotations

import importlib
from typing import Any

from .enums import Level, Metric, RunStatus
from .errors import ConfigError, ConnectionError, DatabaseError, ExpmanError, QueryError

__version__ = "0.1.0"

_LAZY = {
    "ExpmanLogger": "lightning_expman.lightning.logger",
    "ExpmanTrainer": "lightning_expman.lightning.trainer",
    "LevelHooks": "lightning_expman.lightning.hooks",
    "Experiment": "lightning_expman.experiment",
    "Pipeline": "lightning_expman.pipeline",
    "PipelineFactory": "lightning_expman.pipeline",
    "PipelineCallback": "lightning_expman.pipeline",
    "YAMLSerializable": "lightning_expman.serializable",
    "Factory": "lightning_expman.serializable",
    "LightningPipeline": "lightning_expman.pipeline",
    "register_pipeline": "lightning_expman.pipeline",
    "Environment": "lightning_expman.workspace",
    "Tracker": "lightning_expman.tracking.base",
    "TrackerManager": "lightning_expman.tracking.base",
    "TrackScope": "lightning_expman.tracking.base",
    "register_tracker": "lightning_expman.tracking.registry",
    "DatabaseManager": "lightning_expman.db.manager",
    "Query": "lightning_expman.query",
    "ExperimentReporter": "lightning_expman.report",
    "insert_value": "lightning_expman.config.grid",
    "multiply": "lightning_expman.config.grid",
}

__all__ = [
    "ConfigError",
    "ConnectionError",
    "DatabaseError",
    "ExpmanError",
    "Level",
    "Metric",
    "QueryError",
    "RunStatus",
    "__version__",
    *sorted(_LAZY),
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'lightning_expman' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
