"""Small helpers shared by the config modules: dotted keys, deep merge, hints."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "HINT_CUTOFF",
    "closest",
    "deep_merge",
    "dotted_keys",
    "format_key",
    "get_path",
    "hint",
    "parse_key",
    "set_path",
    "short",
    "to_plain",
]

_KEY_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")

Path_ = list[str | int]


def parse_key(key: str) -> Path_ | None:
    """Split a dotted key into parts: ``"callbacks[0].patience"`` -> ``["callbacks", 0, "patience"]``.

    ``"callbacks.0.patience"`` gives ``["callbacks", "0", "patience"]``; a digit string addresses a
    list item when the container is a list. Returns None for a malformed key (empty parts).
    """
    key = key.strip()
    if not key:
        return None
    parts: Path_ = []
    pos = 0
    for m in _KEY_PART.finditer(key):
        gap = key[pos : m.start()]
        named = m.group(1) is not None
        if gap != ("." if named and parts else ""):
            return None
        parts.append(m.group(1) if m.group(1) is not None else int(m.group(2)))
        pos = m.end()
    if pos != len(key) or not parts:
        return None
    return parts


def format_key(parts: Iterable[str | int]) -> str:
    """Inverse of :func:`parse_key`: ``["callbacks", 0, "patience"]`` -> ``"callbacks[0].patience"``."""
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            out += f".{p}" if out else str(p)
    return out


def _step(node: Any, part: str | int) -> tuple[bool, Any]:
    if isinstance(node, Mapping):
        if part in node:
            return True, node[part]
        if isinstance(part, int) and str(part) in node:
            return True, node[str(part)]
        return False, None
    if isinstance(node, list):
        try:
            idx = int(part)
        except ValueError:
            return False, None
        if -len(node) <= idx < len(node):
            return True, node[idx]
    return False, None


def get_path(data: Any, parts: Iterable[str | int]) -> tuple[bool, Any]:
    """Return ``(found, value)`` for the dotted path ``parts`` in nested dicts/lists."""
    node = data
    for part in parts:
        found, node = _step(node, part)
        if not found:
            return False, None
    return True, node


def set_path(data: dict[str, Any], parts: list[str | int], value: Any) -> None:
    """Set ``parts`` to ``value`` in nested dicts/lists, creating missing mappings on the way.

    Raises:
        KeyError: a part crosses a scalar, or a list index is out of range.
    """
    node: Any = data
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(node, list):
            try:
                idx = int(part)
            except ValueError:
                raise KeyError(format_key(parts[: i + 1])) from None
            if not -len(node) <= idx < len(node):
                raise KeyError(format_key(parts[: i + 1]))
            if last:
                node[idx] = value
                return
            node = node[idx]
        elif isinstance(node, dict):
            key: Any = part if not isinstance(part, int) or part in node else str(part)
            if last:
                node[key] = value
                return
            if not isinstance(node.get(key), (dict, list)):
                node[key] = {}
            node = node[key]
        else:
            raise KeyError(format_key(parts[:i]))


def dotted_keys(data: Any, prefix: tuple[str | int, ...] = ()) -> Iterator[str]:
    """Every dotted key in nested dicts/lists (inner nodes included), for "did you mean" hints."""
    if isinstance(data, Mapping):
        for k, v in data.items():
            path = (*prefix, str(k))
            yield format_key(path)
            yield from dotted_keys(v, path)
    elif isinstance(data, list):
        for i, v in enumerate(data):
            path = (*prefix, i)
            yield format_key(path)
            yield from dotted_keys(v, path)


HINT_CUTOFF = 0.6
"""difflib similarity a "did you mean" needs: ``early_stoping`` finds ``early_stopping`` while
``wandb`` does not suggest ``db`` (0.57)."""


def closest(word: str, choices: Iterable[Any], cutoff: float = HINT_CUTOFF) -> str | None:
    """The choice most similar to ``word`` (difflib), or None when nothing is similar enough.

    ``cutoff`` is for deciding whether a key is a typo at all (settings' free variables use a
    stricter one); "did you mean" hints use :func:`hint`, which always uses :data:`HINT_CUTOFF`.
    """
    names = [str(c) for c in choices]
    match = difflib.get_close_matches(str(word), names, n=1, cutoff=cutoff)
    return match[0] if match else None


def hint(word: str, choices: Iterable[Any]) -> str:
    """``"; did you mean 'x'?"`` or ``""``: the one "did you mean" helper of the package.

    Example:
        >>> hint("early_stoping", ["early_stopping", "checkpoint"])
        "; did you mean 'early_stopping'?"
        >>> hint("wandb", ["db", "log", "mlflow"])
        ''
    """
    match = closest(word, choices)
    return f"; did you mean {match!r}?" if match else ""


def short(value: Any, limit: int = 80) -> str:
    """A one-line ``repr`` of ``value``, shortened to ``limit`` characters."""
    text = repr(value)
    text = text.replace("\n", "\\n").replace("\r", "\\r")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def deep_merge(base: Any, override: Any) -> Any:
    """Merge ``override`` onto ``base`` and return a new structure (inputs are not modified).

    Mappings merge key by key, recursively; anything else (lists included) is replaced. A
    mapping whose ``class_path`` changes takes its ``init_args`` from ``override`` only: the old
    class's arguments do not leak into a different class (as LightningCLI does).
    """
    if isinstance(base, Mapping) and isinstance(override, Mapping):
        out = {k: copy_tree(v) for k, v in base.items()}
        new_class = (
            "class_path" in override and "class_path" in base and override["class_path"] != base["class_path"]
        )
        if new_class:
            out.pop("init_args", None)
        for k, v in override.items():
            out[k] = deep_merge(out[k], v) if k in out else copy_tree(v)
        return out
    return copy_tree(override)


def copy_tree(value: Any) -> Any:
    """Deep copy of plain dicts/lists (scalars are shared: they are immutable)."""
    if isinstance(value, Mapping):
        return {k: copy_tree(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [copy_tree(v) for v in value]
    return value


def to_plain(value: Any) -> Any:
    """Plain resolved dicts/lists from a DictConfig, a spec (``to_container()``) or nested mappings.

    ``Path`` values become strings, so the result can be written as YAML/JSON or passed to user
    constructors that expect plain containers.
    """
    if type(value).__module__.startswith("omegaconf"):
        from omegaconf import OmegaConf

        return OmegaConf.to_container(value, resolve=True)
    if hasattr(value, "to_container"):
        return value.to_container()
    if isinstance(value, Mapping):
        return {k: to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value
