"""Reading and checking env.yaml: the workspace, the console flags and the trackers.

Tracker options are checked against the tracker class's signature (names and annotated types,
see :func:`lightning_expman.tracking.registry.tracker_parameters`) and a db tracker's URL is
parsed, before anything is built or written.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ._util import copy_tree, format_key, hint, short
from ._yaml import read_yaml
from .files import _check_keys, _mapping_or_none, display_name
from .interpolation import has_interpolation, resolve

__all__ = ["DEFAULT_WORKSPACE", "ENV_KEYS", "load_env"]

DEFAULT_WORKSPACE = "outputs"
"""env.yaml ``workspace`` when absent (relative to the current directory)."""

ENV_KEYS = ("workspace", "verbose", "debug", "trackers")


def load_env(config_dir: Path, db_url: str | None) -> dict[str, Any]:
    file = display_name(config_dir, "env.yaml")
    path = config_dir / "env.yaml"
    raw = read_yaml(path, file) if path.is_file() else None
    data = _mapping_or_none(raw, file, "", "a mapping (workspace, verbose, debug, trackers)") if raw else {}
    if data and has_interpolation(data):
        resolved, problem = resolve(data)
        if problem:
            raise ConfigError(problem[1], file=file, key=format_key(problem[0]) or None)
        data = resolved
    _check_keys(data, ENV_KEYS, file)
    workspace = data.get("workspace", DEFAULT_WORKSPACE)
    if not isinstance(workspace, str) or not workspace.strip():
        raise ConfigError(
            f"must be a non-empty path string, got {short(workspace)}", file=file, key="workspace"
        )
    workspace = os.path.abspath(os.path.expanduser(workspace.strip()))
    _check_workspace(workspace, file)
    env: dict[str, Any] = {"workspace": workspace}
    for flag in ("verbose", "debug"):
        value = data.get(flag, False)
        if value is None:
            value = False
        if not isinstance(value, bool):
            raise ConfigError(f"must be true or false, got {short(value)}", file=file, key=flag)
        env[flag] = value
    trackers_raw = data.get("trackers") or []
    if not isinstance(trackers_raw, list):
        raise ConfigError(
            f"must be a list of trackers ({{type: NAME, ...}}), got {short(trackers_raw)}",
            file=file,
            key="trackers",
        )
    from ..tracking.registry import registered_trackers

    known = registered_trackers()
    trackers: list[dict[str, Any]] = []
    for i, item in enumerate(trackers_raw):
        key = f"trackers[{i}]"
        if not isinstance(item, Mapping):
            raise ConfigError(f"must be a mapping with 'type', got {short(item)}", file=file, key=key)
        kind = item.get("type")
        if not isinstance(kind, str) or not kind.strip():
            raise ConfigError(
                f"needs a 'type' ({', '.join(known)}), got {short(kind)}", file=file, key=f"{key}.type"
            )
        if kind.strip().lower() not in known:
            raise ConfigError(
                f"unknown tracker type {kind!r}{hint(kind.lower(), known)}; valid: {', '.join(known)}",
                file=file,
                key=f"{key}.type",
            )
        _check_tracker(item, kind.strip().lower(), file, key)
        trackers.append({**copy_tree(dict(item)), "type": kind.strip().lower()})
    if db_url is not None:
        _check_db_url(db_url, None, "--db")
        dbs = [t for t in trackers if t["type"] == "db"]
        if not dbs:
            trackers.append({"type": "db", "url": db_url})
        for t in dbs:
            t["url"] = db_url
    from ..workspace import with_default_db  # here: workspace imports this package

    env["trackers"] = with_default_db(trackers, workspace)
    return env


def _check_workspace(workspace: str, file: str) -> None:
    """The workspace must be (or be creatable as) a writable folder: checked before anything runs."""
    path = Path(workspace)
    existing = next((p for p in (path, *path.parents) if p.exists()), None)
    if existing is None:
        return
    if not existing.is_dir():
        what = "is a file" if existing == path else f"is under {str(existing)!r}, which is a file"
        raise ConfigError(f"{what}, not a folder (value {workspace!r})", file=file, key="workspace")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(
            f"cannot write in {str(existing)!r} (permission denied or read-only; value {workspace!r})",
            file=file,
            key="workspace",
        )


def _check_tracker(item: Mapping[str, Any], kind: str, file: str, key: str) -> None:
    """A tracker entry's options against its class's signature (names and annotated types) and a
    db tracker's URL, before anything is built or written."""
    from ..tracking.registry import tracker_parameters
    from .typecheck import fits

    params, annotations = tracker_parameters(kind)
    for option, value in item.items():
        if option == "type":
            continue
        if params is not None and option not in params:
            valid = list(params)
            raise ConfigError(
                f"tracker {kind!r} has no option {option!r}{hint(str(option), valid)}; "
                f"valid: {', '.join(valid) or '(none)'}",
                file=file,
                key=f"{key}.{option}",
            )
        annotation = annotations.get(option)
        if annotation is not None and not fits(value, annotation):
            raise ConfigError(f"must be {annotation}, got {short(value)}", file=file, key=f"{key}.{option}")
    if kind == "db" and item.get("url") is not None:
        _check_db_url(item["url"], file, f"{key}.url")


def _check_db_url(url: Any, file: str | None, key: str) -> None:
    from ..db.connect import parse_url
    from ..errors import ExpmanError
    from ..masking import mask_url

    if not isinstance(url, str) or "://" not in url:
        raise ConfigError(
            f"must be a database URL like sqlite:///runs.db, got {short(url)}", file=file, key=key
        )
    try:
        parse_url(url)
    except ExpmanError as e:
        raise ConfigError(mask_url(str(e)), file=file, key=key) from None
