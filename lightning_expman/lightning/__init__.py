"""The Lightning integration: the drop-in logger, Trainer hooks -> levels, callbacks, ExpmanTrainer.

Importing this package imports Lightning (seconds): the rest of lightning_expman never does so
at import time.

Files:

* ``logger.py`` -- :class:`ExpmanLogger`: Lightning's conventions (name, version, folders,
  pickling) and the Logger API; its concerns live beside it as mixins: ``lifecycle.py`` (runs
  opened, settled, ended; atexit), ``routing.py`` (metric dicts -> BATCH / EPOCH / RESULTS),
  ``checkpoints.py`` (recorded checkpoints = files on disk), ``spawn.py`` (a run recorded in
  ``ddp_spawn`` workers handed back to the main process);
* ``hooks.py`` -- :class:`LevelHooks` (Trainer hooks -> levels) and the
  ``lightning.pytorch.callbacks_factory`` entry point that gives it to every Trainer;
* ``continuation.py`` -- run state in checkpoints, continuing a run from one; ``recipe.py`` -- what
  ``expman reproduce`` needs; ``context.py`` -- run context and hyperparameters;
* ``lightning_cli.py`` -- LightningCLI's resolved config and ``config.yaml`` kept with the run;
* ``callbacks.py`` -- EarlyStopping, CheckpointCallback, MetricsTracker; ``trainer.py`` --
  :class:`ExpmanTrainer`.

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
