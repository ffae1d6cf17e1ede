"""Reading and checking experiment.yaml, base.yaml and trials.yaml (structure only; settings are
checked after merging, in :mod:`lightning_expman.config.schema`; env.yaml is read by
:mod:`.env_file`)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ._util import format_key, hint, parse_key, short
from ._yaml import read_yaml
from .classpath import resolve_target

__all__ = [
    "EXPERIMENT_KEYS",
    "STANDARD_PIPELINE",
    "TRIAL_KEYS",
    "display_name",
    "load_base",
    "load_experiment",
    "load_trials",
]

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
