"""Reading and checking the four files of a config folder (structure only; settings are checked
after merging, in :mod:`lightning_expman.config.schema`)."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ._util import copy_tree, format_key, hint, parse_key, short
from ._yaml import read_yaml
from .classpath import resolve_target
from .interpolation import has_interpolation, resolve

__all__ = [
    "DEFAULT_WORKSPACE",
    "ENV_KEYS",
    "EXPERIMENT_KEYS",
    "STANDARD_PIPELINE",
    "TRIAL_KEYS",
    "display_name",
    "load_base",
    "load_env",
    "load_experiment",
    "load_trials",
]

DEFAULT_WORKSPACE = "outputs"
"""env.yaml ``workspace`` when absent (relative to the current directory)."""

ENV_KEYS = ("workspace", "verbose", "debug", "trackers")
EXPERIMENT_KEYS = ("name", "id", "desc", "settings", "tags", "pipeline", "search", "hpo")
TRIAL_KEYS = ("name", "id", "repeat", "settings", "grid", "tags", "search", "hpo")
MAX_RUNS = 100_000
"""The most runs (trials x repeats, grids expanded) one config folder may describe: a larger plan
is refused with a ConfigError (each run is a Lightning fit; a mistyped grid or ``repeat`` of
billions must fail in milliseconds, not exhaust memory). Split such a study into experiments."""
STANDARD_PIPELINE = "lightning"
"""``pipeline: lightning`` in experiment.yaml is the standard pipeline (``spec.pipeline is None``)."""


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_keys(data: Mapping[str, Any], valid: Sequence[str], file: str, prefix: str = "") -> None:
    for key in data:
        if key not in valid:
            where = f"{prefix}{key}"
            raise ConfigError(
                f"unknown key (value {short(data[key])}){hint(str(key), valid)}; "
                f"valid keys: {', '.join(valid)}",
                file=file,
                key=where,
            )


def _mapping_or_none(value: Any, file: str, key: str, what: str = "a mapping") -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"must be {what}, got {short(value)}", file=file, key=key)
    return dict(value)


def display_name(config_dir: Path, name: str) -> str:
    return str(config_dir / name)


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


@dataclass
class _Experiment:
    name: str
    id: int
    desc: str
    settings: dict[str, Any]
    tags: dict[str, Any]
    pipeline: str | None
    search: tuple[str, Any] | None = None  # for every trial without its own (config/search.py)


def load_experiment(config_dir: Path) -> _Experiment:
    file = display_name(config_dir, "experiment.yaml")
    path = config_dir / "experiment.yaml"
    if not path.is_file():
        raise ConfigError(
            "file not found; a config folder needs experiment.yaml (name, id) and trials.yaml", file=file
        )
    raw = read_yaml(path, file)
    if raw is None:
        raise ConfigError("file is empty; expected a mapping with at least 'name' and 'id'", file=file)
    data = _mapping_or_none(raw, file, "", "a mapping with 'name', 'id', 'desc', 'settings'")
    _check_keys(data, EXPERIMENT_KEYS, file)
    name = data.get("name")
    if name is None:
        raise ConfigError("is required (the experiment's name)", file=file, key="name")
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"must be a non-empty string, got {short(name)}", file=file, key="name")
    exp_id = data.get("id")
    if exp_id is None:
        raise ConfigError("is required (an integer id of the experiment)", file=file, key="id")
    if not _is_int(exp_id):
        raise ConfigError(f"must be an integer, got {short(exp_id)}", file=file, key="id")
    desc = data.get("desc") or ""
    if not isinstance(desc, str):
        raise ConfigError(f"must be a string, got {short(desc)}", file=file, key="desc")
    pipeline = data.get("pipeline")
    if pipeline is not None and (not isinstance(pipeline, str) or not pipeline.strip()):
        raise ConfigError(
            f"must be the name of a registered pipeline (a string), got {short(pipeline)}",
            file=file,
            key="pipeline",
        )
    pipeline = pipeline.strip() if pipeline else None
    if pipeline == STANDARD_PIPELINE:
        pipeline = None
    if pipeline is not None:
        _check_pipeline(pipeline, file)
    return _Experiment(
        name=name.strip(),
        id=exp_id,
        desc=desc,
        settings=_mapping_or_none(data.get("settings"), file, "settings"),
        tags=_tags(data.get("tags"), file, "tags"),
        pipeline=pipeline,
        search=_search_block(data, file, ""),
    )


def _check_pipeline(name: str, file: str) -> None:
    """A dotted ``pipeline:`` (``pkg.module.Class``) must resolve. A plain name is not checked here:
    it may be registered later or handled by a custom ``PipelineFactory.create`` passed to
    ``Experiment.create``, which reports unknown names itself."""
    if "." in name:
        target = resolve_target(name)
        if target.error is not None:
            raise ConfigError(f"{name!r} does not resolve: {target.error}", file=file, key="pipeline")


def _tags(value: Any, file: str, key: str) -> dict[str, Any]:
    tags = _mapping_or_none(value, file, key, "a mapping of tag names to values")
    for k, v in tags.items():
        if not isinstance(k, str):
            raise ConfigError(f"tag names must be strings, got {short(k)}", file=file, key=key)
        if isinstance(v, (Mapping, list)):
            raise ConfigError(f"tag values must be scalars, got {short(v)}", file=file, key=f"{key}.{k}")
    return tags


def load_base(config_dir: Path) -> tuple[dict[str, Any], str]:
    """Return ``(settings, key prefix used in error messages)``."""
    file = display_name(config_dir, "base.yaml")
    path = config_dir / "base.yaml"
    if not path.is_file():
        return {}, ""
    raw = read_yaml(path, file)
    data = _mapping_or_none(raw, file, "", "a mapping of settings (optionally under 'settings:')")
    if "settings" in data:
        if len(data) > 1:
            others = ", ".join(sorted(str(k) for k in data if k != "settings"))
            raise ConfigError(
                f"has 'settings:' and other top-level keys ({others}); put every setting under 'settings:' "
                "or drop the 'settings:' level",
                file=file,
                key="settings",
            )
        return _mapping_or_none(data["settings"], file, "settings"), "settings."
    return data, ""


@dataclass
class _RawTrial:
    index: int
    name: str
    id: int
    repeat: int
    settings: dict[str, Any]
    grid: dict[str, list[Any]]
    grid_parts: dict[str, list[str | int]]
    grid_force: set[str]  # keys written "+key": may add a key that exists nowhere
    tags: dict[str, Any]
    search: tuple[str, Any] | None = None  # ("search" | "hpo", the block): see config/search.py


def load_trials(config_dir: Path) -> list[_RawTrial]:
    file = display_name(config_dir, "trials.yaml")
    path = config_dir / "trials.yaml"
    if not path.is_file():
        raise ConfigError(
            "file not found; a config folder needs trials.yaml (a list of trials with at least a name)",
            file=file,
        )
    raw = read_yaml(path, file)
    if isinstance(raw, Mapping) and set(raw) == {"trials"}:
        raw = raw["trials"]
    if raw is None or raw == []:
        raise ConfigError(
            "no trials; expected a list like '- {name: small, id: 1, repeat: 3, settings: {...}}'", file=file
        )
    if not isinstance(raw, list):
        raise ConfigError(f"must be a list of trials (- name: ...), got {short(raw)}", file=file)
    trials = []
    total_runs = 0
    for i, item in enumerate(raw):
        at = f"[{i}]"
        if not isinstance(item, Mapping):
            raise ConfigError(f"a trial must be a mapping with 'name', got {short(item)}", file=file, key=at)
        _check_keys(item, TRIAL_KEYS, file, prefix=f"{at}.")
        name = item.get("name")
        if name is None:
            raise ConfigError("is required (every trial needs a name)", file=file, key=f"{at}.name")
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"must be a non-empty string, got {short(name)}", file=file, key=f"{at}.name")
        trial_id = item.get("id", i + 1)
        if not _is_int(trial_id):
            raise ConfigError(f"must be an integer, got {short(trial_id)}", file=file, key=f"{at}.id")
        repeat = item.get("repeat", 1)
        if not _is_int(repeat) or repeat < 1:
            raise ConfigError(f"must be an integer >= 1, got {short(repeat)}", file=file, key=f"{at}.repeat")
        if repeat > MAX_RUNS:
            raise ConfigError(
                f"must be at most {MAX_RUNS:,} (the most runs one experiment may plan), got {repeat:,}",
                file=file,
                key=f"{at}.repeat",
            )
        grid_raw = _mapping_or_none(item.get("grid"), file, f"{at}.grid", "a mapping of dotted keys to lists")
        grid: dict[str, list[Any]] = {}
        grid_parts: dict[str, list[str | int]] = {}
        grid_force: set[str] = set()
        for written, values in grid_raw.items():
            force = isinstance(written, str) and written.startswith("+")
            key = written[1:] if force else written
            gkey = f"{at}.grid.{key}"
            parts = parse_key(key) if isinstance(key, str) else None
            if parts is None:
                raise ConfigError(
                    f"grid keys must be dotted setting keys like 'model.init_args.lr', got {short(key)}",
                    file=file,
                    key=f"{at}.grid",
                )
            if parts[0] == "settings" and len(parts) > 1:
                raise ConfigError(
                    f"grid keys are relative to settings: write {format_key(parts[1:])!r}",
                    file=file,
                    key=gkey,
                )
            if not isinstance(values, list) or not values:
                raise ConfigError(
                    f"must be a non-empty list of values, got {short(values)}", file=file, key=gkey
                )
            seen: dict[str, Any] = {}
            for v in values:
                canon = json.dumps(v, sort_keys=True, default=str)
                if canon in seen:
                    raise ConfigError(f"value {short(v)} is listed twice", file=file, key=gkey)
                seen[canon] = v
            grid[key] = list(values)
            grid_parts[key] = parts
            if force:
                grid_force.add(key)
        combos = math.prod(len(v) for v in grid.values())
        total_runs += combos * repeat
        if total_runs > MAX_RUNS:
            raise ConfigError(
                f"the trials up to this one plan {total_runs:,} runs (this one: {combos:,} grid "
                f"combinations x repeat {repeat}); at most {MAX_RUNS:,} runs per experiment",
                file=file,
                key=f"{at}.grid" if grid else f"{at}.repeat",
            )
        trials.append(
            _RawTrial(
                index=i,
                name=name.strip(),
                id=trial_id,
                repeat=repeat,
                settings=_mapping_or_none(item.get("settings"), file, f"{at}.settings"),
                grid=grid,
                grid_parts=grid_parts,
                grid_force=grid_force,
                tags=_tags(item.get("tags"), file, f"{at}.tags"),
                search=_search_block(item, file, at),
            )
        )
    return trials


def _search_block(item: Mapping[str, Any], file: str, at: str) -> tuple[str, Any] | None:
    """The trial's ``search:`` or ``hpo:`` block, unparsed (the loader validates it against settings)."""
    given = [k for k in ("search", "hpo") if k in item]
    if len(given) > 1:
        raise ConfigError(
            "give search or hpo (the guide's form), not both", file=file, key=f"{at}.hpo" if at else "hpo"
        )
    return (given[0], item[given[0]]) if given else None
