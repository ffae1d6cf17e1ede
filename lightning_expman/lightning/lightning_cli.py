"""LightningCLI with ``trainer.logger: {class_path: lightning_expman.ExpmanLogger, ...}``.

Three things make a stock ``LightningCLI`` run record like ``expman run`` does, every time:

* **The resolved config is the run's config.** The CLI's ``SaveConfigCallback`` holds the parsed
  config; the TRIAL_RUN opened for the stage stores it (``parser.dump``: every default resolved,
  ``class_path``/``init_args`` as given) as its ``config``, where a plain drop-in fit stores the
  module's hyperparameters.
* **``config.yaml`` lives with the run.** Lightning's ``trainer.log_dir`` is a logger's
  ``save_dir`` unless the logger is a TensorBoard or CSV logger, so ``SaveConfigCallback`` writes
  ``<save_dir>/config.yaml`` and refuses the next run ("expected .../config.yaml to NOT exist").
  When the ExpmanLogger is the trainer's first logger, the file is moved into the run's folder
  (``log_dir/config.yaml``, ``config-2.yaml`` for a second fit of one logger) and recorded as an
  artifact of the run (type ``config``): every run keeps its own, and the next run starts clean.
* **Nothing of Lightning's own leaks.** ``_instantiator`` and ``_class_path``, which Lightning
  adds to hyperparameters under the CLI, are dropped from the stored hyperparameters
  (:func:`~lightning_expman.lightning.context.user_hparams`), and the runner's arguments are not
  constructor arguments (:meth:`ExpmanLogger.for_runner`), so ``--print_config`` shows only
  what a user sets.

Example (``config.yaml``)::

    trainer:
      max_epochs: 5
      logger:
        class_path: lightning_expman.ExpmanLogger
        init_args: {experiment: digits, trial: mlp}
"""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import Any

__all__ = ["cli_config", "save_config_callbacks", "take_config_file"]

log = logging.getLogger(__name__)


def save_config_callbacks(trainer: Any) -> list[Any]:
    """The LightningCLI ``SaveConfigCallback`` instances among ``trainer.callbacks``."""
    # Not imported = no LightningCLI in this process: nothing to look for, nothing to import.
    cli = sys.modules.get("lightning.pytorch.cli")
    if trainer is None or cli is None:
        return []
    return [cb for cb in trainer.callbacks if isinstance(cb, cli.SaveConfigCallback)]


def cli_config(trainer: Any) -> dict[str, Any] | None:
    """The resolved LightningCLI config of ``trainer``'s run (secrets masked), or ``None``."""
    from .context import safe_params

    for cb in save_config_callbacks(trainer):
        try:
            config = json.loads(cb.parser.dump(cb.config, skip_none=False, format="json"))
        except Exception as e:  # the record is a convenience: never fail a fit for it
            log.warning("ExpmanLogger: could not read the LightningCLI config: %s", e)
            continue
        return safe_params(config)
    return None


def take_config_file(logger: Any, trainer: Any) -> str | None:
    """Move the ``config.yaml`` SaveConfigCallback wrote in ``save_dir`` into the run's folder.

    Only when ``logger`` is ``trainer``'s first logger (then Lightning's ``trainer.log_dir`` is
    ``logger.save_dir``) and the file is there. Returns the new path (to record as an artifact).
    """
    if trainer is None or not trainer.loggers or trainer.loggers[0] is not logger:
        return None
    for cb in save_config_callbacks(trainer):
        if not getattr(cb, "save_to_log_dir", True):
            continue
        source = os.path.join(logger.save_dir, cb.config_filename)
        if not os.path.isfile(source):
            continue
        stem, suffix = os.path.splitext(cb.config_filename)
        target, n = os.path.join(logger.log_dir, cb.config_filename), 1
        while os.path.exists(target):
            n += 1
            target = os.path.join(logger.log_dir, f"{stem}-{n}{suffix}")
        os.makedirs(logger.log_dir, exist_ok=True)
        os.replace(source, target)
        return target
    return None
