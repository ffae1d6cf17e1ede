"""Small shared pieces of the read side: metric modes, flattening, statistics, value formatting."""

from __future__ import annotations

import datetime as _dt
import json
import math
from collections.abc import Sequence
from typing import Any, Literal

from ..db.values import flatten as flatten  # one definition: params are stored under these keys
from ..enums import MetricKey, RunStatus, metric_name
from ..errors import QueryError

Mode = Literal["min", "max", "auto"]
ValueKind = Literal["best", "final"]
ExperimentRef = int | str

FINISHED_STATUSES: tuple[str, ...] = (RunStatus.COMPLETED.value, RunStatus.STOPPED.value)
"""Run statuses counted by aggregates over repeats unless told otherwise."""

_MIN_WORDS = ("loss", "err", "mse", "mae", "rmse", "perplexity", "wer", "cer")


def default_mode(metric: MetricKey) -> Literal["min", "max"]:
    """``"min"`` for loss-like metric names (loss, err, mse, mae...), ``"max"`` otherwise.

    Example:
        >>> default_mode("val_loss"), default_mode("val_acc")
        ('min', 'max')
    """
    name = metric_name(metric).lower()
    return "min" if any(w in name for w in _MIN_WORDS) else "max"


def _resolve_mode(metric: str, mode: str | None) -> Literal["min", "max"]:
    if mode in (None, "auto"):
        return default_mode(metric)
    if mode not in ("min", "max"):
        raise QueryError(f"unknown mode {mode!r}; valid: min, max, auto")
    return mode  # type: ignore[return-value]


def _status_values(statuses: Sequence[str]) -> list[str]:
    """Status names as stored (``"completed"`` -> ``"COMPLETED"``)."""
    return [RunStatus.parse(s).value for s in statuses]


def _iso(value: Any) -> Any:
    return value.isoformat(sep=" ", timespec="seconds") if isinstance(value, _dt.datetime) else value


def _seconds(start: _dt.datetime | None, end: _dt.datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return round((end - start).total_seconds(), 3)


def _mean_std(values: Sequence[float]) -> tuple[float | None, float | None]:
    n = len(values)
    if n == 0:
        return None, None
    mean = math.fsum(values) / n
    if n < 2:
        return mean, None
    var = math.fsum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, math.sqrt(var)


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)
