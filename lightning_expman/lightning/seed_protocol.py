"""The seed's pipeline-callback protocol on the built-in Lightning callbacks.

A seed-style :class:`~lightning_expman.pipeline.Pipeline` calls ``on_start()``, then
``on_epoch_end(epoch_idx, metrics) -> bool`` after every epoch (``False`` stops the run STOPPED) and
``on_end(run_metrics)``. The mixins here give :class:`~lightning_expman.callbacks.EarlyStopping`,
:class:`~lightning_expman.callbacks.CheckpointCallback` and
:class:`~lightning_expman.callbacks.MetricsTracker` those three methods, so one object works both in
``Trainer(callbacks=[...])`` and in ``pipeline.register_callback(...)``. Each reuses its Lightning
half's logic (EarlyStopping's stopping criteria with ``min_delta_percent``, the CSV writer) rather
than a second implementation. Lightning never calls these names (``on_epoch_end`` was removed from
Lightning's Callback in 2.0), so the two protocols do not collide.

Seed mode needs the environment (artifact folder, logger, ``tracker_manager``): pass ``env`` to the
constructor as the seed does, or let :meth:`Pipeline.register_callback` hand the pipeline's.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

import torch

from ..enums import Level, Metric, metric_name
from ..tracking.base import normalize_metric

__all__ = ["SeedCheckpoint", "SeedEarlyStopping", "SeedMetricsTracker", "split_env"]

log = logging.getLogger(__name__)


def split_env(first: Any, env: Any, what: str) -> tuple[Any, Any]:
    """Tell the seed's environment-first call (``EarlyStopping(env, patience=5)``) from a first
    argument of the Lightning spelling; returns ``(first_or_None, env)``.

    Raises:
        TypeError: an environment given both positionally and as ``env=``.
    """
    if first is None or isinstance(first, (str, os.PathLike, int, float)):
        return first, env
    if env is not None:
        raise TypeError(f"{what}: the environment was given twice (positionally and as env=)")
    return None, first


def _logger(cb: Any) -> logging.Logger:
    return getattr(getattr(cb, "env", None), "logger", None) or log


def _scalars(metrics: Mapping[Any, Any]) -> dict[str, float | None]:
    """``{name: float}`` of the tracked scalar entries (``Metric.NETWORK`` and non-scalars dropped)."""
    out: dict[str, float | None] = {}
    for key, value in metrics.items():
        if isinstance(key, Metric) and not key.tracked:
            continue
        try:
            name, total, per_label = normalize_metric(key, value)
        except (TypeError, ValueError):
            continue
        if per_label is None:
            out[name] = total
    return out


def _lookup(metrics: Mapping[Any, Any], name: str) -> Any:
    for key, value in metrics.items():
        if metric_name(key) == name:
            return value
    return None


class SeedEarlyStopping:
    """``on_start`` / ``on_epoch_end`` / ``on_end`` for :class:`EarlyStopping` (seed mode).

    Attributes set in seed mode: ``best_epoch``, ``stopped_early``, and Lightning's ``best_score``,
    ``wait_count``, ``stopped_epoch``.
    """

    env: Any
    monitor: str
    best_score: torch.Tensor
    wait_count: int
    stopped_epoch: int
    monitor_op: Any

    def on_start(self) -> None:
        """Reset the state (a pipeline may be run more than once)."""
        self.wait_count = 0
        self.stopped_epoch = 0
        inf = torch.tensor(torch.inf)
        self.best_score = inf if self.monitor_op == torch.lt else -inf
        self.best_epoch: int | None = None
        self.stopped_early = False

    def on_epoch_end(self, epoch_idx: int, metrics: Mapping[Any, Any]) -> bool:
        """Check the monitored metric; ``False`` (stop) once it did not improve for ``patience`` epochs."""
        if not hasattr(self, "best_epoch"):
            self.on_start()
        value = _lookup(metrics, self.monitor)
        if value is None:
            _logger(self).warning("EarlyStopping: metric %r not in the epoch's metrics", self.monitor)
            return True
        current = torch.as_tensor(value, dtype=torch.float64).detach().cpu().reshape(())
        should_stop, reason = self._evaluate_stopping_criteria(current)  # type: ignore[attr-defined]
        if self.wait_count == 0 and not should_stop:
            self.best_epoch = epoch_idx
        if reason:
            _logger(self).info("EarlyStopping: %s", reason)
        if should_stop:
            self.stopped_epoch = epoch_idx
            self.stopped_early = True
            return False
        return True

    def on_end(self, metrics: Mapping[Any, Any]) -> None:
        """Log the best value seen."""
        if getattr(self, "best_epoch", None) is not None:
            best = float(self.best_score)
            _logger(self).info("EarlyStopping: best %s %.6g at epoch %s", self.monitor, best, self.best_epoch)


def _save_network(network: Any, path: str) -> None:
    save = getattr(network, "save", None)
    if callable(save):  # the seed calls network.save(path)
        save(path)
    else:
        torch.save(network.state_dict() if hasattr(network, "state_dict") else network, path)


class SeedCheckpoint:
    """``on_start`` / ``on_epoch_end`` / ``on_end`` for :class:`CheckpointCallback` (seed mode).

    Every ``interval``-th epoch the model in ``metrics[Metric.NETWORK]`` is saved to
    ``<artifact_dir>/checkpoint-epoch=<idx>.pt`` and reported with
    ``tracker_manager.on_checkpoint(model, path, metrics, epoch=idx)``; at the end, when the run
    metrics hold ``Metric.NETWORK``, ``checkpoint-final.pt`` is saved and reported as the run's
    result (``best=True``). A missing model is a warning, as in the seed.
    """

    env: Any
    interval: int

    def on_start(self) -> None:
        """Reset the epoch counter."""
        self.seen_epochs = 0
        self.saved_paths: list[str] = []

    def _target(self, name: str) -> str | None:
        env = getattr(self, "env", None)
        if env is None:
            log.warning("CheckpointCallback: no environment (pass env=...): checkpoint not saved")
            return None
        folder = str(env.artifact_dir)
        os.makedirs(folder, exist_ok=True)
        return os.path.join(folder, name)

    def _save(self, network: Any, name: str, metrics: Mapping[Any, Any], **report: Any) -> None:
        path = self._target(name)
        if path is None:
            return
        _save_network(network, path)
        self.saved_paths.append(path)
        _logger(self).info("CheckpointCallback: saved %s", path)
        manager = getattr(self.env, "tracker_manager", None)
        if manager is not None:
            manager.on_checkpoint(network, path, metrics=_scalars(metrics), **report)

    def on_epoch_end(self, epoch_idx: int, metrics: Mapping[Any, Any]) -> bool:
        """Save every ``interval``-th epoch; never stops the run."""
        if not hasattr(self, "seen_epochs"):
            self.on_start()
        self.seen_epochs += 1
        if self.seen_epochs % self.interval == 0:
            network = metrics.get(Metric.NETWORK)
            if network is None:
                _logger(self).warning("CheckpointCallback: no Metric.NETWORK in the epoch metrics: not saved")
            else:
                self._save(network, f"checkpoint-epoch={epoch_idx}.pt", metrics, epoch=epoch_idx)
        return True

    def on_end(self, metrics: Mapping[Any, Any]) -> None:
        """Save ``checkpoint-final.pt`` when the run metrics hold ``Metric.NETWORK``."""
        network = metrics.get(Metric.NETWORK)
        if network is not None:
            if not hasattr(self, "saved_paths"):
                self.on_start()
            self._save(network, "checkpoint-final.pt", metrics, best=True)


class SeedMetricsTracker:
    """``on_start`` / ``on_epoch_end`` / ``on_end`` for :class:`MetricsTracker` (seed mode).

    Writes ``<artifact_dir>/metrics.log`` (CSV, the same format as in Lightning mode: an ``epoch``
    column, one row per epoch, then a ``final`` row with the last epoch's values updated by the run
    metrics) and reports it as a TRIAL_RUN artifact of type ``metrics_log``.
    """

    env: Any
    dirpath: str | None
    filename: str
    path: str | None

    def on_start(self) -> None:
        """Choose the file: ``dirpath`` or the environment's artifact folder."""
        env = getattr(self, "env", None)
        folder = self.dirpath or (str(env.artifact_dir) if env is not None else None)
        self.path = os.path.join(folder, self.filename) if folder else None
        if self.path is None:
            log.warning("MetricsTracker: no environment or dirpath: metrics.log not written")
        self.last_row: dict[str, Any] = {}

    def on_epoch_end(self, epoch_idx: int, metrics: Mapping[Any, Any]) -> bool:
        """Append the epoch's row; never stops the run."""
        from .callbacks import append_csv_row

        if not hasattr(self, "last_row"):
            self.on_start()
        self.last_row = _scalars(metrics)
        if self.path is not None:
            append_csv_row(self.path, {"epoch": epoch_idx, **self.last_row})
        return True

    def on_end(self, metrics: Mapping[Any, Any]) -> None:
        """Append the ``final`` row and report the file."""
        from .callbacks import append_csv_row

        if not hasattr(self, "last_row"):
            self.on_start()
        if self.path is None:
            return
        append_csv_row(self.path, {"epoch": "final", **self.last_row, **_scalars(metrics)})
        manager = getattr(getattr(self, "env", None), "tracker_manager", None)
        if manager is not None:
            manager.on_add_artifact(Level.TRIAL_RUN, self.path, "metrics_log")
