"""Tags on experiments, trials and runs: filters, effective tags, and :func:`set_tags`.

A run's *effective* tags are its experiment's, updated with its trial's, updated with its own;
filters (``{"team": "vision"}`` or ``["team=vision", "baseline"]``) match effective tags.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from ..errors import QueryError
from .base import _open


def parse_tags(tags: Mapping[str, Any] | Iterable[str] | None) -> dict[str, str | None]:
    """Normalise a tag filter: ``{"k": "v"}`` or ``["k=v", "k2"]`` -> ``{"k": "v", "k2": None}``.

    ``None`` as a value means "the key is present, whatever its value".
    """
    if not tags:
        return {}
    if isinstance(tags, Mapping):
        return {str(k): (None if v is None else str(v)) for k, v in tags.items()}
    out: dict[str, str | None] = {}
    for item in tags:
        key, sep, value = str(item).partition("=")
        key = key.strip()
        if not key:
            raise QueryError(f"bad tag filter {item!r}; expected KEY=VALUE or KEY")
        out[key] = value.strip() if sep else None
    return out


def _tags_dict(value: Any) -> dict[str, Any]:
    """Stored tags as a dict (a stored list of names becomes ``{name: True}``)."""
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, list | tuple):
        return {str(v): True for v in value}
    return {}


def _tags_match(tags: Mapping[str, Any], wanted: Mapping[str, str | None]) -> bool:
    for key, value in wanted.items():
        if key not in tags:
            return False
        if value is not None and str(tags[key]) != value and json.dumps(tags[key]) != value:
            return False
    return True


def _effective_tags(*levels: Any) -> dict[str, Any]:
    """Stored tags of experiment, trial, run (outermost first) merged: inner levels win."""
    out: dict[str, Any] = {}
    for tags in levels:
        out.update(_tags_dict(tags))
    return out


_LEVEL_MODELS = {"experiment": "Experiment", "trial": "Trial", "run": "TrialRun", "trial_run": "TrialRun"}


def set_tags(
    source: Any, level: str, id: int, tags: Mapping[str, Any], *, merge: bool = True
) -> dict[str, Any]:
    """Set tags on an experiment, trial or run (the runner sets them from config; this is for later).

    Args:
        source: a database URL, DatabaseManager or peewee Database.
        level: ``"experiment"``, ``"trial"`` or ``"run"``.
        id: the row id.
        tags: ``{key: value}``; with ``merge`` a ``None`` value removes the key.
        merge: update the existing tags (default) instead of replacing them.

    Returns:
        The tags now stored.

    Example:
        >>> set_tags("sqlite:///expman_runs/expman.db", "experiment", 1, {"team": "vision"})
        {'team': 'vision'}
    """
    db, name = _open(source)
    from ..db import models

    key = _LEVEL_MODELS.get(level.lower())
    if key is None:
        raise QueryError(f"unknown tag level {level!r}; valid: experiment, trial, run")
    model = getattr(models, key)
    rows = list(model.select(model.tags).where(model.id == int(id)).tuples().execute(db))
    if not rows:
        raise QueryError(f"unknown {level} id {id!r} in {name}")
    current = _tags_dict(rows[0][0]) if merge else {}
    current.update(tags)
    current = {k: v for k, v in current.items() if v is not None}
    with db.atomic():
        model.update(tags=current or None).where(model.id == int(id)).execute(db)
    return current
