"""``ExpmanTrainer``: a ``lightning.Trainer`` that records itself.

Example:
    >>> from lightning_expman import ExpmanTrainer
    >>> from lightning_expman.callbacks import EarlyStopping
    >>> trainer = ExpmanTrainer(experiment="digits", trial="mlp", max_epochs=20,
    ...                         callbacks=[EarlyStopping(patience=3, min_delta_percent=1.0)])
    >>> trainer.fit(model, datamodule=dm)
    >>> trainer.run_id, trainer.status
    (7, <RunStatus.STOPPED: 'STOPPED'>)
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import Logger

from ..enums import RunStatus
from ..tracking.base import Tracker, TrackerManager
from .callbacks import build_callback
from .logger import ExpmanLogger

__all__ = ["ExpmanTrainer"]


class ExpmanTrainer(L.Trainer):
    """A Trainer with an :class:`ExpmanLogger` and the given callbacks attached.

    Args:
        experiment, trial, db, save_dir, trackers: as for :class:`ExpmanLogger`.
        tracker_manager, run_info: runner mode, as for :meth:`ExpmanLogger.for_runner` (``run_info``
            is used only with a ``tracker_manager``).
        callbacks: Lightning callbacks, or config specs for
            :func:`~lightning_expman.lightning.callbacks.build_callback` (``{"type": ...}``).
        logger: more Lightning loggers to run beside the ExpmanLogger (``False``/``None``: none).
        **trainer_kwargs: everything else ``lightning.Trainer`` takes (``max_epochs``...).

    Attributes:
        expman_logger: the ExpmanLogger.
        run_id: the database id of the last fit's trial run (``None`` before a fit).
        status: that run's :class:`RunStatus`.
    """

    def __init__(
        self,
        experiment: str = "default",
        trial: str = "default",
        db: str | None = None,
        save_dir: str | os.PathLike[str] = "expman_runs",
        trackers: Sequence[Mapping[str, Any] | Tracker] | None = None,
        *,
        callbacks: Iterable[Callback | Mapping[str, Any]] | Callback | None = None,
        tracker_manager: TrackerManager | None = None,
        run_info: Mapping[str, Any] | None = None,
        logger: Logger | Iterable[Logger] | bool | None = None,
        **trainer_kwargs: Any,
    ) -> None:
        names: dict[str, Any] = {"db": db, "save_dir": save_dir, "trackers": trackers}
        if tracker_manager is not None:
            self.expman_logger = ExpmanLogger.for_runner(
                tracker_manager, run_info, experiment=experiment, trial=trial, **names
            )
        else:
            self.expman_logger = ExpmanLogger(experiment, trial, **names)
        if isinstance(callbacks, Callback):
            callbacks = [callbacks]
        # LevelHooks comes with every Trainer (the callbacks_factory entry point, see hooks.py).
        built = [build_callback(cb) for cb in (callbacks or [])]
        loggers: list[Logger] = [self.expman_logger]
        if isinstance(logger, Logger):
            loggers.append(logger)
        elif logger not in (None, False, True) and isinstance(logger, Iterable):
            loggers += [lg for lg in logger if lg is not self.expman_logger]
        trainer_kwargs.setdefault("default_root_dir", os.fspath(save_dir))
        super().__init__(callbacks=built, logger=loggers, **trainer_kwargs)

    @property
    def run_id(self) -> int | None:
        """Database id of the last fit's trial run."""
        return self.expman_logger.run_id

    @property
    def status(self) -> RunStatus | None:
        """Status of the last fit's trial run (COMPLETED, STOPPED, FAILED, ABORTED)."""
        return self.expman_logger.status
