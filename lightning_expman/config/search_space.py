"""The ``space:`` of a search block: each key resolved to a settings key (the guide's bare
names included) and each value validated into a plain distribution dict
(``{"type": "float"|"int"|"categorical", ...}``) that :mod:`lightning_expman.search.space` turns
into an Optuna distribution. Errors are one :class:`ConfigError` line naming file, key and value.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ..errors import ConfigError
from ._util import dotted_keys, format_key, get_path, hint, parse_key, short

__all__ = ["distribution", "resolve_key"]

_DIST_KEYS = ("low", "high", "log", "step", "choices")


def _err(message: str, file: str, key: str) -> ConfigError:
    return ConfigError(message, file=file, key=key)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def resolve_key(written: Any, settings: dict[str, Any], file: str, at: str) -> str:
    parts = parse_key(written) if isinstance(written, str) else None
    if parts is None:
        raise _err(
            f"space keys must be dotted settings keys like 'model.init_args.lr', got {short(written)}",
            file,
            at,
        )
    key = format_key(parts)
    if get_path(settings, parts)[0]:
        return key
    keys = list(dotted_keys(settings))
    if len(parts) == 1:  # the guide's bare names: a unique settings key ending with it
        found = [k for k in keys if k.split(".")[-1] == parts[0]]
        if found:  # the shallowest wins: training.batch_size over data.init_args.batch_size
            depth = min(k.count(".") for k in found)
            found = [k for k in found if k.count(".") == depth]
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise _err(
                f"{key!r} matches several settings ({', '.join(found)}); write the dotted key", file, at
            )
        for section in ("model.init_args", "data.init_args"):
            ok, node = get_path(settings, parse_key(section) or [])
            if ok and isinstance(node, Mapping) and section.split(".")[0] in settings:
                cls = str(get_path(settings, [section.split(".")[0], "class_path"])[1] or "")
                if cls and _accepts(cls, parts[0]):
                    return f"{section}.{parts[0]}"
    if len(parts) == 3 and parts[1] == "init_args":  # a new argument of a class the settings name
        cls = get_path(settings, [parts[0], "class_path"])[1]
        if isinstance(cls, str) and isinstance(parts[2], str) and _accepts(cls, parts[2]):
            return key
    raise _err(f"unknown settings key {key!r}{hint(key, keys)}", file, at)


def _accepts(class_path: str, name: str) -> bool:
    """Whether the class at ``class_path`` takes an argument ``name`` (read from source, not imported)."""
    from .classpath import resolve_target

    target = resolve_target(class_path)
    if target.error is not None:
        return False
    return target.params is None or name in target.params


def distribution(value: Any, file: str, at: str) -> dict[str, Any]:
    if isinstance(value, list):
        value = {"choices": value}
    if not isinstance(value, Mapping):
        raise _err(
            "must be a list of choices or {low, high[, log, step]} / {choices: [...]}, "
            f"got {short(value)}",
            file,
            at,
        )
    for k in value:
        if k not in _DIST_KEYS:
            raise _err(
                f"unknown key {short(k)}{hint(str(k), _DIST_KEYS)}; valid: {', '.join(_DIST_KEYS)}", file, at
            )
    if "choices" in value:
        if set(value) != {"choices"}:
            raise _err(f"choices cannot be combined with low/high/log/step ({short(dict(value))})", file, at)
        choices = value["choices"]
        if not isinstance(choices, list) or not choices:
            raise _err(f"choices must be a non-empty list, got {short(choices)}", file, at)
        for c in choices:
            if not (c is None or isinstance(c, (bool, int, float, str))):
                raise _err(
                    f"choices must be scalars (numbers, strings, booleans, null), got {short(c)}", file, at
                )
        if len({(type(c).__name__, c) for c in choices}) != len(choices):
            raise _err(f"a choice is listed twice: {short(choices)}", file, at)
        return {"type": "categorical", "choices": list(choices)}
    low, high = value.get("low"), value.get("high")
    if low is None or high is None:
        raise _err(f"a range needs both low and high, got {short(dict(value))}", file, at)
    if not _is_num(low) or not _is_num(high):
        raise _err(f"low and high must be numbers, got {short(low)} and {short(high)}", file, at)
    if low > high:
        raise _err(f"low {low} is above high {high}", file, at)
    log, step = value.get("log", False), value.get("step")
    if not isinstance(log, bool):
        raise _err(f"log must be true or false, got {short(log)}", file, at)
    if log and low <= 0:
        raise _err(f"a log range needs low > 0, got {low}", file, at)
    if step is not None:
        if not _is_num(step) or step <= 0:
            raise _err(f"step must be a number > 0, got {short(step)}", file, at)
        if log:
            raise _err("log and step cannot be combined (Optuna samples a log range continuously)", file, at)
    kind = "int" if _is_int(low) and _is_int(high) and (step is None or _is_int(step)) else "float"
    out: dict[str, Any] = {"type": kind, "low": low, "high": high, "log": log}
    if step is not None:
        out["step"] = step
    return out
