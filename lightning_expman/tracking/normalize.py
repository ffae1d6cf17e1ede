"""Metric values as users pass them -> as trackers receive them: ``(name, total, per_label)``.

Users pass :class:`~lightning_expman.enums.Metric` members or names, floats, tensors, numpy
scalars, per-label mappings or per-label tensors (torchmetrics with ``average=None``);
:func:`normalize_metric` turns each into a ``str`` name, a ``float`` total (``None`` for NaN/inf)
and an optional ``{label: float}``. torch and numpy are recognised without being imported.

Example:
    >>> normalize_metric("val_acc", {"cat": 0.9, "dog": 0.7})
    ('val_acc', 0.8, {'cat': 0.9, 'dog': 0.7})
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..enums import Metric, MetricKey, metric_name

__all__ = ["normalize_metric"]


def _to_float(value: Any) -> float | None:
    if hasattr(value, "detach"):  # torch.Tensor without importing torch
        value = value.detach().cpu()
        value = value.item() if value.numel() == 1 else value.float().mean().item()
    elif hasattr(value, "item") and not isinstance(value, (list, tuple, dict)):  # numpy scalar
        value = value.item()
    if value is None or isinstance(value, bool):
        return None if value is None else float(value)
    value = float(value)
    return value if math.isfinite(value) else None


def normalize_metric(
    metric: MetricKey,
    value: Any,
    labels: Sequence[str] | None = None,
) -> tuple[str, float | None, dict[str, float | None] | None]:
    """Turn what users pass into ``(name, total, per_label)``.

    * ``Metric.CUSTOM`` takes a ``(name, value)`` pair.
    * A mapping value is per-label: ``{"cat": 0.9, "dog": 0.7}``; its mean is the total unless it
      has a ``"total"`` key.
    * A tensor/array with several elements is per-label (e.g. torchmetrics with ``average=None``);
      ``labels`` names them (default ``"0"``, ``"1"``...); the total is the mean.
    * Scalars (float, int, 0-d/1-element tensor, numpy scalar) are plain totals.

    Raises:
        ValueError: for ``Metric.CUSTOM`` without a ``(name, value)`` pair, or labels whose
            count does not match the values.
    """
    if metric is Metric.CUSTOM or metric == Metric.CUSTOM.value:
        if not (isinstance(value, (tuple, list)) and len(value) == 2 and isinstance(value[0], str)):
            raise ValueError(f"Metric.CUSTOM takes a (name, value) pair, got {value!r}")
        metric, value = value
    name = metric_name(metric)
    if isinstance(value, Mapping):
        per_label = {str(k): _to_float(v) for k, v in value.items() if k != "total"}
        total = _to_float(value["total"]) if "total" in value else _mean(per_label.values())
        return name, total, per_label
    numel = _numel(value)
    if numel is not None and numel > 1:
        values = [_to_float(v) for v in _flatten(value)]
        names = [str(i) for i in range(len(values))] if labels is None else [str(lb) for lb in labels]
        if len(names) != len(values):
            raise ValueError(f"metric {name!r}: {len(values)} values but {len(names)} labels")
        return name, _mean(values), dict(zip(names, values))
    return name, _to_float(value), None


def _numel(value: Any) -> int | None:
    if hasattr(value, "numel"):
        return int(value.numel())
    if hasattr(value, "size") and hasattr(value, "shape"):  # numpy
        return int(value.size)
    if isinstance(value, (list, tuple)):
        return len(value)
    return None


def _flatten(value: Any) -> list[Any]:
    if hasattr(value, "detach"):
        return value.detach().cpu().flatten().tolist()
    if hasattr(value, "ravel"):
        return value.ravel().tolist()
    return list(value)


def _mean(values: Iterable[float | None]) -> float | None:
    finite = [v for v in values if v is not None]
    return sum(finite) / len(finite) if finite else None
