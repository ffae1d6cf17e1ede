"""The seed's callbacks as real Lightning callbacks, and a registry to build them from config.

* :class:`EarlyStopping` -- Lightning's EarlyStopping plus ``min_delta_percent`` (a relative
  improvement over the best value so far). When it stops a fit, the run ends STOPPED with the
  stop epoch (the logger reads ``stopped_epoch``).
* :class:`CheckpointCallback` -- Lightning's ModelCheckpoint saving every ``interval`` epochs, plus
  best / top-k files when ``monitor`` is given; ``best`` is the best (or last periodic) path.
  Every file reaches the trackers through ``ExpmanLogger.after_save_checkpoint``; a file it
  deletes (top-k rotation) is reported removed through ``ExpmanLogger.checkpoint_removed``.
* :class:`MetricsTracker` -- ``metrics.log`` (CSV) in the run's artifact folder: one row per epoch
  and a final row; appends on resume and never drops earlier rows.

Config use: ``callbacks: [{type: early_stopping, monitor: val_loss, patience: 3}]`` or
``{class_path: my.pkg.MyCallback, init_args: {...}}`` -> :func:`build_callback`.

The seed's signatures work too (``EarlyStopping(env, patience=5)``, ``metric=``, ``env=``); each class
also speaks the seed's pipeline-callback protocol (:mod:`.seed_protocol`), so one object can be
registered on a custom :class:`~lightning_expman.pipeline.Pipeline` as well.

Example:
    >>> from lightning_expman.callbacks import EarlyStopping, CheckpointCallback, MetricsTracker
    >>> callbacks = [EarlyStopping(metric=Metric.VAL_LOSS, patience=5, min_delta_percent=1.0),
    ...              CheckpointCallback(interval=5, monitor="val_loss"), MetricsTracker()]
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Mapping
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.callbacks import EarlyStopping as _LightningEarlyStopping
from typing_extensions import override

from ..config._util import hint
from ..enums import Metric, metric_name
from ..errors import ConfigError
from ..instantiate import instantiate, instantiate_class, is_spec
from .hooks import expman_loggers
from .seed_protocol import SeedCheckpoint, SeedEarlyStopping, SeedMetricsTracker, split_env

__all__ = [
    "CALLBACKS",
    "CheckpointCallback",
    "EarlyStopping",
    "MetricsTracker",
    "build_callback",
    "register_callback",
    "run_artifact_dir",
]


def run_artifact_dir(trainer: pl.Trainer) -> str:
    """The run's artifact folder: the first ExpmanLogger's, else ``<trainer.log_dir>/artifacts``."""
    loggers = expman_loggers(trainer)
    if loggers:
        return loggers[0].artifact_dir
    return os.path.join(trainer.log_dir or trainer.default_root_dir, "artifacts")


class EarlyStopping(SeedEarlyStopping, _LightningEarlyStopping):
    """Stop when ``monitor`` has not improved for ``patience`` checks.

    An improvement must beat the best value so far by both ``min_delta`` (absolute) and
    ``min_delta_percent`` percent of ``|best|`` (``1.0`` = 1 %), the seed's semantics.

    Args:
        monitor: the metric name (default ``metric``, else ``"val_loss"``).
        patience: checks without improvement before stopping.
        min_delta_percent: required relative improvement, in percent of the best value.
        min_delta: required absolute improvement.
        mode: ``"min"`` or ``"max"``.
        metric: the seed's name for ``monitor`` (a :class:`Metric` or a string).
        env: the seed's environment (its logger is used in pipeline mode); may also be the first
            positional argument, as in the seed (``EarlyStopping(env, patience=5)``).
        **lightning_kwargs: any other Lightning EarlyStopping argument (``check_on_train_epoch_end``...).

    Raises:
        ConfigError: negative deltas, or ``monitor`` and ``metric`` naming different metrics.

    Example:
        >>> EarlyStopping(metric=Metric.VAL_ACC, patience=10, min_delta_percent=0.5, mode="max")
        >>> EarlyStopping(env=env, metric=Metric.VAL_LOSS, patience=5, min_delta_percent=1.0)
    """

    def __init__(
        self,
        monitor: str | None = None,
        patience: int = 5,
        min_delta_percent: float = 0.0,
        min_delta: float = 0.0,
        mode: str = "min",
        *,
        metric: Metric | str | None = None,
        env: Any = None,
        **lightning_kwargs: Any,
    ) -> None:
        monitor, env = split_env(monitor, env, "EarlyStopping")
        if monitor is not None and metric is not None and metric_name(monitor) != metric_name(metric):
            raise ConfigError(
                f"EarlyStopping: monitor={metric_name(monitor)!r} and metric={metric_name(metric)!r} "
                "name different metrics; give one (metric= is the seed's name for monitor=)"
            )
        if monitor is None:
            monitor = metric_name(metric) if metric is not None else Metric.VAL_LOSS.value
        monitor = metric_name(monitor)
        if min_delta_percent < 0 or min_delta < 0:
            raise ConfigError(
                f"EarlyStopping: min_delta_percent ({min_delta_percent}) and min_delta ({min_delta}) "
                "must be >= 0"
            )
        super().__init__(
            monitor=monitor, min_delta=min_delta, patience=patience, mode=mode, **lightning_kwargs
        )
        self.min_delta_percent = float(min_delta_percent)
        self.env = env

    @override
    def _evaluate_stopping_criteria(self, current: torch.Tensor) -> tuple[bool, str | None]:
        # Lightning compares ``current - min_delta`` with the best score (min_delta already signed
        # for the mode); widen the delta to the percentage of the best value for this one check.
        absolute = self.min_delta
        best = float(self.best_score)
        if self.min_delta_percent > 0 and math.isfinite(best):
            relative = abs(best) * self.min_delta_percent / 100.0
            if relative > abs(absolute):
                self.min_delta = self._signed(relative)
        try:
            return super()._evaluate_stopping_criteria(current)
        finally:
            self.min_delta = absolute

    def _signed(self, delta: float) -> float:
        # Lightning stores min_delta positive for "max" and negative for "min".
        return delta if self.monitor_op == torch.gt else -delta


class CheckpointCallback(SeedCheckpoint, ModelCheckpoint):
    """Periodic checkpoints every ``interval`` epochs, plus best/top-k files when ``monitor`` is set.

    Args:
        interval: save every ``interval`` epochs (``epoch=E-step=S.ckpt``; with ``monitor`` the
            periodic files are ``periodic-epoch=E.ckpt`` and are kept beside the top-k ones).
        monitor: metric whose best ``save_top_k`` checkpoints are kept (checked every epoch).
        save_top_k: best files to keep (default: 1 with ``monitor``; all periodic ones without).
        mode: ``"min"`` or ``"max"`` for ``monitor``.
        dirpath: folder (default: ``checkpoints/`` in the run's artifact folder).
        env: the seed's environment: in pipeline mode checkpoints go to its artifact folder and
            are reported to its ``tracker_manager`` (see :class:`.seed_protocol.SeedCheckpoint`).
        **kwargs: any other ModelCheckpoint argument (``filename``, ``save_last``...).

    Attributes:
        best: the best checkpoint's path (without ``monitor``: the last periodic one).
        periodic_paths: the periodic files saved (with ``monitor``).

    Example:
        >>> CheckpointCallback(interval=5, monitor="val_loss", save_top_k=2)
        >>> CheckpointCallback(interval=5, env=env)       # the seed's spelling
    """

    def __init__(
        self,
        interval: int = 1,
        monitor: str | None = None,
        save_top_k: int | None = None,
        mode: str = "min",
        dirpath: str | os.PathLike[str] | None = None,
        *,
        env: Any = None,
        **kwargs: Any,
    ) -> None:
        monitor, env = split_env(monitor, env, "CheckpointCallback")
        if monitor is not None:
            monitor = metric_name(monitor)
        if int(interval) < 1:
            raise ConfigError(f"CheckpointCallback: interval must be >= 1, got {interval!r}")
        if save_top_k is None:
            save_top_k = 1 if monitor else -1
        super().__init__(
            dirpath=dirpath,
            monitor=monitor,
            save_top_k=save_top_k,
            mode=mode,
            # With a monitor the best file is checked every epoch; periodic saves are separate.
            every_n_epochs=1 if monitor else int(interval),
            **kwargs,
        )
        self.interval = int(interval)
        self.periodic_paths: list[str] = []
        self.env = env

    @property
    def best(self) -> str:
        """Path of the best checkpoint (the last periodic one without ``monitor``)."""
        if self.monitor is None and self.periodic_paths:
            return self.periodic_paths[-1]
        return self.best_model_path

    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self.dirpath is None:
            # ModelCheckpoint then broadcasts rank zero's folder, so every rank agrees on it.
            self.dirpath = os.path.join(run_artifact_dir(trainer), "checkpoints")
        super().setup(trainer, pl_module, stage)

    @override
    def _save_topk_checkpoint(self, trainer: pl.Trainer, monitor_candidates: dict[str, torch.Tensor]) -> None:
        super()._save_topk_checkpoint(trainer, monitor_candidates)
        if self.monitor is None:
            if self.best_model_path and self.best_model_path not in self.periodic_paths:
                self.periodic_paths.append(self.best_model_path)
            return
        epoch = trainer.current_epoch
        if (epoch + 1) % self.interval == 0:
            path = os.path.join(self.dirpath or "", f"periodic-epoch={epoch}{self.FILE_EXTENSION}")
            if path not in self.periodic_paths:
                self._save_checkpoint(trainer, path)  # notifies the loggers -> artifact
                self.periodic_paths.append(path)

    @override
    def _remove_checkpoint(self, trainer: pl.Trainer, filepath: str) -> None:
        # Lightning has no public hook for deleted checkpoints: tell the loggers at once, so the
        # run's recorded artifacts never point at a file top-k rotation removed.
        super()._remove_checkpoint(trainer, filepath)
        if trainer.is_global_zero:
            for lg in expman_loggers(trainer):
                lg.checkpoint_removed(filepath)

    @override
    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["periodic_paths"] = list(self.periodic_paths)
        return state

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self.periodic_paths = list(state_dict.get("periodic_paths", []))


class MetricsTracker(SeedMetricsTracker, Callback):
    """Write ``metrics.log`` (CSV): one row per training epoch and a final row at fit end.

    The file lives in the run's artifact folder (``dirpath`` overrides it). An existing file is
    appended to (resume): earlier rows are never dropped. When new metric names appear the file is
    rewritten with the union of columns, earlier rows keeping their values and blanks elsewhere.

    Args:
        dirpath: folder of ``metrics.log`` (default: the run's artifact folder).
        filename: file name.
        env: the seed's environment (``MetricsTracker(env)``): in pipeline mode the file goes to
            its artifact folder and is reported to its ``tracker_manager``.

    Example:
        >>> trainer = L.Trainer(logger=ExpmanLogger("digits"), callbacks=[MetricsTracker()])
    """

    def __init__(
        self, dirpath: str | os.PathLike[str] | None = None, filename: str = "metrics.log", *, env: Any = None
    ) -> None:
        dirpath, env = split_env(dirpath, env, "MetricsTracker")
        self.env = env
        self.dirpath = os.fspath(dirpath) if dirpath is not None else None
        self.filename = filename
        self.path: str | None = None

    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage == "fit":
            folder = self.dirpath or run_artifact_dir(trainer)
            self.path = os.path.join(folder, self.filename)

    @override
    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._write_row(trainer, trainer.current_epoch)

    @override
    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._write_row(trainer, "final") and self.path is not None:
            for lg in expman_loggers(trainer):
                lg.add_artifact(self.path, "metrics_log")

    def _write_row(self, trainer: pl.Trainer, epoch: int | str) -> bool:
        if not trainer.is_global_zero or self.path is None or trainer.sanity_checking:
            return False
        row: dict[str, Any] = {"epoch": epoch}
        for name, value in sorted(trainer.callback_metrics.items()):
            if isinstance(value, torch.Tensor):
                if value.numel() != 1:
                    continue
                value = value.item()
            row[name] = value
        append_csv_row(self.path, row)
        return True


def append_csv_row(path: str, row: Mapping[str, Any]) -> None:
    """Append ``row`` to the CSV at ``path``, widening the header when new columns appear."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    header: list[str] = []
    if os.path.isfile(path) and os.path.getsize(path) > 0:
        with open(path, newline="", encoding="utf-8") as f:
            header = next(csv.reader(f), [])
    new = [k for k in row if k not in header]
    if header and new:
        # Rewrite with the union header; write a temporary file and rename so no row is ever lost.
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        header += new
        tmp = f"{path}.tmp"
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=header)
            writer.writeheader()
            writer.writerows(rows)
        os.replace(tmp, path)
    elif not header:
        header = list(row)
        with open(path, "w", newline="", encoding="utf-8") as f:
            csv.DictWriter(f, fieldnames=header).writeheader()
    with open(path, "a", newline="", encoding="utf-8") as f:
        csv.DictWriter(f, fieldnames=header, restval="").writerow(dict(row))


# ---------------------------------------------------------------------- registry

CALLBACKS: dict[str, type[Callback]] = {
    "early_stopping": EarlyStopping,
    "checkpoint": CheckpointCallback,
    "metrics_tracker": MetricsTracker,
}
"""Callback types buildable by name (``{"type": NAME, ...}``)."""


def register_callback(name: str, cls: type[Callback]) -> None:
    """Make ``{"type": name, ...}`` build ``cls(**kwargs)``; replaces an existing name.

    Example:
        >>> register_callback("lr_monitor", LearningRateMonitor)
    """
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"callback name must be a non-empty string, got {name!r}")
    if not (isinstance(cls, type) and issubclass(cls, Callback)):
        raise ConfigError(f"callback {name!r} must be a lightning Callback subclass, got {cls!r}")
    CALLBACKS[name.strip().lower()] = cls


def build_callback(spec: Mapping[str, Any] | Callback, *, key: str = "callbacks") -> Callback:
    """Build a callback from config: ``{"type": NAME, **kwargs}`` or ``{"class_path", "init_args"}``.

    Both forms go through :mod:`lightning_expman.instantiate` (nested specs in the arguments are
    built too).

    Args:
        spec: the config entry, or a ready callback (returned as is).
        key: where it is in the settings (``"callbacks[0]"``), for error messages.

    Raises:
        ConfigError: unknown type (naming the closest valid name and the valid ones), a class path
            that cannot be imported or is not a Callback, or bad keyword arguments.

    Example:
        >>> build_callback({"type": "early_stopping", "monitor": "val_acc", "mode": "max"})
        >>> build_callback({"class_path": "lightning.pytorch.callbacks.LearningRateMonitor"})
    """
    if isinstance(spec, Callback):
        return spec
    if not isinstance(spec, Mapping):
        raise ConfigError(f"a callback spec must be a mapping, got {type(spec).__name__}", key=key)
    if is_spec(spec):
        callback = instantiate(spec, key=key)
        if not isinstance(callback, Callback):
            raise ConfigError(
                f"{spec['class_path']!r} is not a lightning Callback (built a {type(callback).__name__})",
                key=f"{key}.class_path",
            )
        return callback
    kwargs = dict(spec)
    kind = kwargs.pop("type", None)
    valid = ", ".join(sorted(CALLBACKS))
    if not isinstance(kind, str) or not kind.strip():
        raise ConfigError(
            f"callback spec {dict(spec)!r} has no 'type' or 'class_path'; valid types: {valid}", key=key
        )
    name = kind.strip().lower()
    if name not in CALLBACKS:
        raise ConfigError(
            f"unknown callback type {kind!r}{hint(name, CALLBACKS)}; valid types: {valid}", key=key
        )
    return instantiate_class(CALLBACKS[name], kwargs, key=key, label=f"callback {name!r}")
