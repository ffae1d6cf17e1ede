"""The log tracker: human-readable log files per level (and the console when verbose).

Where lines go: the ``workdir`` passed with ``on_create`` decides (``<workdir>/logs/``);
without one, ``<workspace>/logs/``:

* EXPERIMENT events -> ``experiment.log``
* TRIAL events -> ``trial.log``
* TRIAL_RUN, PIPELINE, EPOCH and BATCH events -> ``run.log``

Lines are written through stdlib logging (:mod:`lightning_expman.logfiles`): the same files as the
workspace's :class:`~lightning_expman.workspace.Environment` loggers, through the same handler and
in the same format, so a file both write reads in order::

    2026-11-22 13:05:01,027 INFO [small] TRIAL 'small' in /ws/digits/trials/small
    2026-11-22 13:05:01,031 INFO [small/run_1] TRIAL_RUN start repeat=1 seed=42
    2026-11-22 13:05:03,412 INFO [small/run_1] epoch 3: val_loss=0.2345 val_acc=0.91
    2026-11-22 13:05:09,850 INFO [small/run_1] TRIAL_RUN end status=COMPLETED

Each level's logger is opened by its first line and closed (flushed, its file let go) when the
level ends. With ``verbose=True`` every line except step (BATCH) lines is mirrored to stderr.

Example:
    >>> from lightning_expman.tracking.log import LogTracker
    >>> tracker = LogTracker(workspace="outputs", verbose=True)
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..enums import Level, RunStatus
from ..logfiles import LOG_FILES, close_logger, open_logger
from ..masking import mask_secrets
from .base import Tracker

__all__ = ["LogTracker"]

_SHOWN = {
    Level.EXPERIMENT: ("name",),
    Level.TRIAL: ("name",),
    Level.TRIAL_RUN: ("repeat_idx", "seed"),
    Level.PIPELINE: ("stage",),
}
_ALIASES = {"repeat_idx": "repeat", "epoch_idx": "epoch"}


def _close_all(loggers: dict[Level, logging.Logger]) -> None:
    for logger in loggers.values():
        close_logger(logger)
    loggers.clear()


def _fmt(value: Any) -> str:
    if value is None:
        return "nan"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _pairs(values: Mapping[str, Any]) -> str:
    return " ".join(f"{k}={_fmt(v)}" for k, v in values.items())


class LogTracker(Tracker):
    """Write one human-readable log file per level.

    Args:
        workspace: folder whose ``logs/`` holds the files when events carry no ``workdir``
            (default: ``expman_runs``).
        verbose: mirror lines (except per-step ones) to the console (stderr).

    Example:
        >>> manager = TrackerManager([LogTracker(workspace="outputs")])
        >>> with TrackScope(manager, Level.EXPERIMENT, name="digits"):
        ...     pass   # outputs/logs/experiment.log: "... INFO [digits] EXPERIMENT start name=digits"
    """

    def __init__(self, workspace: str | Path | None = None, verbose: bool = False) -> None:
        self.workspace = Path(workspace) if workspace is not None else Path("expman_runs")
        self.verbose = verbose
        self._paths: dict[Level, Path] = {}
        self._created: dict[Level, dict[str, Any]] = {}
        self._epoch: int | None = None
        self._epoch_metrics: dict[str, Any] = {}
        self._open()

    def _open(self) -> None:
        self._loggers: dict[Level, logging.Logger] = {}  # one per level whose file is open
        # A tracker dropped without close() still lets its files go.
        self._release = weakref.finalize(self, _close_all, self._loggers)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["_loggers"], state["_release"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._open()

    # ------------------------------------------------------------------ files

    def path(self, level: Level) -> Path | None:
        """The file that lines of ``level`` go to (``None`` before that level was created)."""
        owner = min(Level(level), Level.TRIAL_RUN)
        return self._paths.get(owner)

    def _label(self, owner: Level) -> str:
        """The writer's name shown on each line, as the workspace names its levels."""
        if owner is not Level.TRIAL_RUN:
            return str(self._created.get(owner, {}).get("name") or owner.name.lower())
        repeat = self._created.get(owner, {}).get("repeat_idx")
        run = f"run_{repeat}" if repeat is not None else "run"
        trial = self._created.get(Level.TRIAL, {}).get("name")
        return f"{trial}/{run}" if trial else run

    def _write(self, level: Level, text: str, console: bool = True) -> None:
        want = owner = min(Level(level), Level.TRIAL_RUN)
        while owner not in self._paths and owner > Level.EXPERIMENT:
            owner = Level(owner - 1)  # e.g. a run without a trial: nearest enclosing file
        if owner not in self._paths:  # nothing created yet: the level's file in the workspace
            owner = want
            self._paths[owner] = self.workspace / "logs" / LOG_FILES[owner]
        logger = self._loggers.get(owner)
        if logger is None:
            logger = open_logger(self._label(owner), self._paths[owner], console=self.verbose)
            self._loggers[owner] = logger
        logger.info("%s", text, extra={"console": console})  # masked by the handlers' filter

    def _close(self, level: Level) -> None:
        logger = self._loggers.pop(level, None)
        if logger is not None:
            close_logger(logger)

    # ------------------------------------------------------------------ lifecycle

    def on_create(self, level: Level, **kwargs: Any) -> None:
        level = Level(level)
        if level in LOG_FILES:
            base = Path(kwargs["workdir"]) if kwargs.get("workdir") else self.workspace
            new = base / "logs" / LOG_FILES[level]
            if self._paths.get(level) != new:
                self._close(level)
            self._paths[level] = new
        if level is Level.EPOCH:
            epoch = kwargs.get("epoch_idx", kwargs.get("epoch"))
            self._epoch = int(epoch) if epoch is not None else (0 if self._epoch is None else self._epoch + 1)
            self._epoch_metrics = {}
        self._created[level] = kwargs

    def on_start(self, level: Level, **kwargs: Any) -> None:
        level = Level(level)
        if level in (Level.EPOCH, Level.BATCH):
            return  # the epoch's line is written at its end, with its metrics
        created = self._created.get(level, {})
        shown = {_ALIASES.get(k, k): created[k] for k in _SHOWN.get(level, ()) if created.get(k) is not None}
        self._write(level, f"{level.name} start {_pairs(shown)}".rstrip())

    def on_end(self, level: Level, **kwargs: Any) -> None:
        level = Level(level)
        status = RunStatus.parse(kwargs.get("status") or RunStatus.COMPLETED)
        if level is Level.EPOCH:
            text = f"epoch {self._epoch}: {_pairs(self._epoch_metrics)}".rstrip(": ")
            if status is not RunStatus.COMPLETED:
                text += f" [{status.value}]"
            self._write(level, text)
            return
        if level is Level.BATCH:
            return
        text = f"{level.name} end status={status.value}"
        if kwargs.get("stop_epoch") is not None:
            text += f" stop_epoch={kwargs['stop_epoch']}"
        if kwargs.get("error"):
            text += f" error={' '.join(str(kwargs['error']).split())}"
        self._write(level, text)
        if level in LOG_FILES:
            self._close(level)

    # ------------------------------------------------------------------ metrics

    def track(
        self,
        metric: str,
        value: float | None,
        step: int | None = None,
        *,
        level: Level | None = None,
        epoch: int | None = None,
        per_label: Mapping[str, float] | None = None,
    ) -> None:
        """Log one value; per-label values are shown as ``name[label]=value``."""
        values: dict[str, Any] = {metric: value}
        if per_label:
            values.update({f"{metric}[{k}]": v for k, v in per_label.items()})
        self.track_dict(values, step, level=level, epoch=epoch)

    def track_dict(
        self,
        metrics: Mapping[str, float | None],
        step: int | None = None,
        *,
        level: Level | None = None,
        epoch: int | None = None,
    ) -> None:
        """BATCH values: one ``step N`` line; EPOCH values: collected for the epoch's line."""
        if level is Level.BATCH or (level is None and step is not None):
            where = f"step {step}" + (f" (epoch {self._epoch})" if self._epoch is not None else "")
            self._write(Level.BATCH, f"{where}: {_pairs(metrics)}", console=False)
        elif level is Level.EPOCH and (epoch is None or epoch == self._epoch):
            self._epoch_metrics.update(metrics)
        elif level is Level.EPOCH:
            self._write(Level.EPOCH, f"epoch {epoch}: {_pairs(metrics)}")
        elif level in (Level.TRIAL_RUN, Level.PIPELINE) or level is None:
            self._write(Level.TRIAL_RUN, f"results: {_pairs(metrics)}")
        else:
            self._write(Level(level), f"{Level(level).name.lower()} metrics: {_pairs(metrics)}")

    def log_params(self, params: Mapping[str, Any]) -> None:
        from ..db.values import flatten as flatten_params

        self._write(Level.TRIAL_RUN, f"params: {_pairs(flatten_params(mask_secrets(params)))}")

    def on_add_artifact(
        self, level: Level, artifact_path: str, artifact_type: str | None = None, **kwargs: Any
    ) -> None:
        level = Level(level)
        where = f" epoch={kwargs.get('epoch', self._epoch)}" if level is Level.EPOCH else ""
        self._write(level, f"artifact {artifact_type or 'file'} ({level.name}{where}): {artifact_path}")

    def on_checkpoint(
        self, network: Any, checkpoint_path: str, metrics: Mapping[str, float] | None = None, **kwargs: Any
    ) -> None:
        epoch = kwargs.get("epoch", self._epoch)
        best = " best" if kwargs.get("best") else ""
        shown = f" {_pairs(metrics)}" if metrics else ""
        self._write(Level.EPOCH, f"checkpoint epoch={epoch}{best}{shown}: {checkpoint_path}")

    def on_remove_artifact(
        self, level: Level, artifact_path: str, artifact_type: str | None = None, **kwargs: Any
    ) -> None:
        level = Level(level)
        epoch = kwargs.get("epoch")
        where = f" epoch={epoch}" if epoch is not None else ""
        self._write(
            level, f"artifact removed {artifact_type or 'file'} ({level.name}{where}): {artifact_path}"
        )

    # ------------------------------------------------------------------ flush / close

    def flush(self) -> None:
        for logger in self._loggers.values():
            for handler in logger.handlers:
                handler.flush()

    def close(self) -> None:
        """Flush and let go of every open file (the next line reopens its file in append mode)."""
        for level in list(self._loggers):
            self._close(level)
