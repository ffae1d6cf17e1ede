"""The seed-style pipeline: your own training loop around :class:`Pipeline`'s lifecycle.

Decorate the loop with :meth:`Pipeline.run_wrapper` and each epoch with
:meth:`Pipeline.epoch_wrapper`; values put in ``self.epoch_metrics`` / ``self.run_metrics`` are
tracked through ``env.tracker_manager``, a :class:`PipelineCallback` returning ``False`` (or
``StopIteration``) stops the run as STOPPED, an exception makes it FAILED, Ctrl-C ABORTED. Import
these names from :mod:`lightning_expman.pipeline` (see its docstring for an example).

Importing this module does not import torch or lightning.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from .enums import Level, RunStatus
from .tracking.base import status_for_exception

if TYPE_CHECKING:  # pragma: no cover
    from .workspace import Environment

__all__ = ["Pipeline", "PipelineCallback"]

log = logging.getLogger("lightning_expman.pipeline")


class PipelineCallback:
    """A callback of a custom (seed-style) pipeline; every hook is a no-op by default.

    Lightning pipelines use Lightning callbacks instead (``callbacks:`` in the settings).

    Example:
        >>> class StopAfter(PipelineCallback):
        ...     def __init__(self, epochs: int) -> None:
        ...         self.epochs = epochs
        ...     def on_epoch_end(self, epoch_idx, metrics):
        ...         return epoch_idx + 1 < self.epochs   # False stops the run (STOPPED)
    """

    def on_start(self) -> None:
        """Called when the run starts."""

    def on_epoch_end(self, epoch_idx: int, metrics: Mapping[Any, Any]) -> bool:
        """Called after each epoch with its metrics; return ``False`` to stop the run."""
        return True

    def on_end(self, metrics: Mapping[Any, Any]) -> None:
        """Called when the run ends (whatever its status) with the run metrics."""


class Pipeline:
    """Base class of pipelines: the seed's lifecycle around a user's training loop.

    Attributes:
        env: the run's :class:`~lightning_expman.workspace.Environment` (directories, logger,
            ``tracker_manager``).
        config: the run's settings (``seed`` is this run's seed).
        run_info: what the runner knows about this run (``repeat_idx``, ``seed``, ``config``,
            ``tags``, ``workdir``); set by :class:`~lightning_expman.experiment.Experiment`
            before :meth:`run`.
        epoch_metrics: filled by the epoch being run; tracked at EPOCH level and cleared by
            :meth:`epoch_wrapper`.
        run_metrics: final results; tracked at TRIAL_RUN level by :meth:`run_wrapper`.
        model: the model, for subclasses that keep one (``None`` until they do; the seed's
            examples pass ``self.model`` to ``run_epoch``).
        status: the final :class:`RunStatus` once :meth:`run` returned.
        error: the exception text of a FAILED/ABORTED run.

    Subclasses implement :meth:`run` (decorated with :meth:`run_wrapper`).
    """

    def __init__(self, env: Environment, config: Any = None) -> None:
        self.env = env
        self.config = config
        self.run_info: dict[str, Any] = {}
        self.callbacks: list[PipelineCallback] = []
        self.epoch_metrics: dict[Any, Any] = {}
        self.run_metrics: dict[Any, Any] = {}
        self.status: RunStatus | None = None
        self.error: str | None = None
        self.model: Any = None

    # -- API
    def register_callback(self, callback: Any) -> Any:
        """Add a callback and return it.

        Any object with the seed's hooks works: a :class:`PipelineCallback`, or the built-in
        :class:`~lightning_expman.callbacks.EarlyStopping` / ``CheckpointCallback`` /
        ``MetricsTracker`` (which are Lightning callbacks too). Missing hooks are skipped. A
        built-in callback created without ``env`` gets this pipeline's environment.
        """
        if getattr(callback, "env", _NO_ENV) is None:
            callback.env = self.env
        self.callbacks.append(callback)
        return callback

    def run(self, config: Any = None) -> RunStatus:
        """Execute the run and return its status. Subclasses implement it."""
        raise NotImplementedError(f"{type(self).__name__}.run() is not implemented")

    @property
    def tracker(self) -> Any:
        """The environment's tracker manager (``None`` when the environment has none)."""
        return getattr(self.env, "tracker_manager", None)

    # -- lifecycle used by the decorators
    def _on_run_start(self) -> None:
        self.status, self.error = RunStatus.RUNNING, None
        if self.tracker is not None:
            self.tracker.on_create(Level.PIPELINE, stage="fit")
            self.tracker.on_start(Level.PIPELINE)
        for callback in self.callbacks:
            _hook(callback, "on_start")()

    def _on_run_end(self, status: RunStatus) -> None:
        self.status = status
        tracker = self.tracker
        try:
            if tracker is not None and self.run_metrics:
                tracker.track_dict(self.run_metrics, level=Level.TRIAL_RUN)
            for callback in self.callbacks:
                _hook(callback, "on_end")(self.run_metrics)
        finally:
            if tracker is not None:
                tracker.on_end(Level.PIPELINE, status=status, error=self.error)

    @staticmethod
    def run_wrapper(fn: Callable[..., Any]) -> Callable[..., RunStatus]:
        """Decorate :meth:`run`: PIPELINE level, callbacks, run metrics and the final status.

        The wrapped method may return a :class:`RunStatus` (``None`` means COMPLETED).
        ``StopIteration`` (raised by :meth:`epoch_wrapper` when a callback returns ``False``)
        ends the run STOPPED; any other exception ends it FAILED (the text is kept in
        :attr:`error` and the run's log, and the status is returned, not raised); Ctrl-C ends it
        ABORTED and propagates so the runner stops.
        """

        @functools.wraps(fn)
        def wrapper(self: Pipeline, *args: Any, **kwargs: Any) -> RunStatus:
            try:
                self._on_run_start()  # a callback failing in on_start fails the run, like the body
                result = fn(self, *args, **kwargs)
            except BaseException as e:
                status = status_for_exception(e)
                if status is not RunStatus.STOPPED:
                    self.error = f"{type(e).__name__}: {e}"
                    _env_logger(self.env).error("run %s: %s", status.value, self.error, exc_info=True)
                self._on_run_end(status)
                if status is RunStatus.ABORTED:
                    raise
                return status
            status = RunStatus.COMPLETED if result is None else RunStatus.parse(result)
            self._on_run_end(status)
            return status

        return wrapper

    @staticmethod
    def epoch_wrapper(fn: Callable[..., Any]) -> Callable[..., Any]:
        """Decorate a method ``run_epoch(self, epoch_idx, ...)``: one EPOCH level per call.

        After the body, ``self.epoch_metrics`` is tracked at EPOCH level (untracked metrics such
        as ``Metric.NETWORK`` are dropped by the tracker manager), handed to every callback's
        ``on_epoch_end`` and cleared. A callback returning ``False`` raises ``StopIteration``
        after the epoch is closed, which :meth:`run_wrapper` turns into STOPPED.
        """

        @functools.wraps(fn)
        def wrapper(self: Pipeline, epoch_idx: int, *args: Any, **kwargs: Any) -> Any:
            tracker = self.tracker
            if tracker is not None:
                tracker.on_create(Level.EPOCH, epoch_idx=epoch_idx)
                tracker.on_start(Level.EPOCH)
            try:
                result = fn(self, epoch_idx, *args, **kwargs)
                if tracker is not None and self.epoch_metrics:
                    tracker.track_dict(self.epoch_metrics, step=epoch_idx, level=Level.EPOCH, epoch=epoch_idx)
                keep_going = all(
                    [
                        _hook(cb, "on_epoch_end", True)(epoch_idx, self.epoch_metrics) is not False
                        for cb in self.callbacks
                    ]
                )
            except BaseException as e:
                if tracker is not None:
                    tracker.on_end(Level.EPOCH, status=status_for_exception(e))
                raise
            finally:
                self.epoch_metrics.clear()
            if tracker is not None:
                tracker.on_end(Level.EPOCH)
            if not keep_going:
                raise StopIteration(f"stopped by a callback after epoch {epoch_idx}")
            return result

        return wrapper


def _env_logger(env: Any) -> logging.Logger:
    return getattr(env, "logger", None) or log


_NO_ENV = object()


def _hook(callback: Any, name: str, default: Any = None) -> Callable[..., Any]:
    """``callback.<name>``, or a no-op returning ``default`` for a callback without that hook."""
    method = getattr(callback, name, None)
    return method if callable(method) else (lambda *args: default)
