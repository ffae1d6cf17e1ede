"""How values are cleaned before they are stored: secrets masked, params flattened, NaN made NULL.

Used by every write path of :class:`~lightning_expman.db.manager.DatabaseManager`; nothing here
touches the database.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..enums import RunStatus
from ..errors import QueryError
from ..masking import mask_secrets
from . import models as m


def _scrub_value(value: Any) -> Any:
    """Mask secrets before they are stored (:func:`lightning_expman.masking.mask_secrets`), str keys."""
    if isinstance(value, Mapping):
        value = {str(k): v for k, v in value.items()}
    return mask_secrets(value)


def flatten(config: Any, prefix: str = "") -> dict[str, Any]:
    """Flatten nested dicts to dotted keys (lists stay values): how params are stored and shown.

    Example:
        >>> flatten({"model": {"lr": 0.1, "layers": [4, 2]}, "seed": 1})
        {'model.lr': 0.1, 'model.layers': [4, 2], 'seed': 1}
    """
    if not isinstance(config, Mapping):
        return {prefix: config} if prefix else {}
    out: dict[str, Any] = {}
    for key, value in config.items():
        full = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, full))
        else:
            out[full] = value
    return out


def _clean_per_label(values: Any) -> Any:
    """Per-label values with NaN/inf -> None, so the stored JSON is valid on every backend."""
    if isinstance(values, Mapping):
        return {str(k): _clean_per_label(v) for k, v in values.items()}
    if isinstance(values, (list, tuple)):
        return [_clean_per_label(v) for v in values]
    if isinstance(values, bool) or not isinstance(values, (int, float)):
        return values
    return m.finite_or_none(values)


def _parse_status(status: RunStatus | str) -> RunStatus:
    try:
        return RunStatus.parse(status)
    except ValueError as e:
        raise QueryError(str(e)) from None
