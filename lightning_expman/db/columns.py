"""How values are stored, identically on SQLite, MySQL/MariaDB and PostgreSQL.

* strings that are indexed are ``VARCHAR(255)`` (MySQL's utf8mb4 index limit is 3072 bytes);
* JSON is stored as text (:class:`JSONText`), not a backend-specific JSON type;
* times are naive UTC ``datetime`` values (:func:`utcnow`);
* non-finite floats (NaN, inf) are stored as NULL (:func:`finite_or_none`): MySQL rejects them
  and SQLite turns NaN into NULL anyway.

Every table derives from :class:`BaseModel`, bound to :data:`database_proxy` (see
:mod:`lightning_expman.db.models`).
"""

from __future__ import annotations

import datetime as _dt
import json
import math
from typing import Any

import peewee as pw

__all__ = ["BaseModel", "JSONText", "database_proxy", "finite_or_none", "utcnow"]

database_proxy = pw.DatabaseProxy()


def utcnow() -> _dt.datetime:
    """Naive UTC now, the form every time column stores."""
    return _dt.datetime.now(_dt.timezone.utc).replace(tzinfo=None)


def finite_or_none(value: float | None) -> float | None:
    """``float(value)``, or ``None`` for None/NaN/inf (see module docstring)."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


class JSONText(pw.TextField):
    """JSON stored as TEXT so the column is identical on every backend."""

    def db_value(self, value: Any) -> str | None:
        if value is None:
            return None
        return json.dumps(value, sort_keys=True, default=str)

    def python_value(self, value: str | None) -> Any:
        return None if value is None else json.loads(value)


class BaseModel(pw.Model):
    class Meta:
        database = database_proxy
        legacy_table_names = False
