"""Command-line overrides (``--set key=value``) and where a bad value came from (provenance)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError
from ._util import dotted_keys, format_key, get_path, hint, parse_key, short
from ._yaml import parse_yaml_value
from .schema import OPEN_SECTIONS, STANDARD_KEYS

__all__ = [
    "OVERRIDE_SOURCE",
    "Layer",
    "Origins",
    "key_allowed",
    "located_error",
    "parse_overrides",
    "unknown_key_error",
]

OVERRIDE_SOURCE = "--set"
"""How errors name the command line as the source of a value."""


@dataclass
class _Override:
    text: str
    key: str
    parts: list[str | int]
    value: Any
    force: bool  # "+key=value": may add a key that exists nowhere


def parse_overrides(overrides: Sequence[str] | None) -> list[_Override]:
    if overrides is None:
        return []
    if isinstance(overrides, str):
        overrides = [overrides]
    out = []
    for item in overrides:
        if not isinstance(item, str) or "=" not in item:
            raise ConfigError(
                f"expected KEY=VALUE (e.g. trainer.max_epochs=2), got {short(item)}", file=OVERRIDE_SOURCE
            )
        key, _, text = item.partition("=")
        key = key.strip()
        force = key.startswith("+")
        key = key[1:] if force else key
        parts = parse_key(key)
        if parts is None or isinstance(parts[0], int):
            raise ConfigError(
                f"malformed key {key!r}; use dotted keys relative to settings like model.init_args.lr",
                file=OVERRIDE_SOURCE,
            )
        out.append(_Override(item, key, parts, parse_yaml_value(text.strip()), force))
    return out


def key_allowed(parts: list[str | int], settings: Sequence[dict[str, Any]], standard: bool) -> bool:
    """Whether a ``--set``/grid key may be applied: it exists in some trial's settings, or it adds a
    key to a section that validation checks (trainer, model/data init_args, a standard top key)."""
    if any(get_path(s, parts)[0] for s in settings) or parts == ["seed"]:
        return True  # every pipeline's runs are seeded from settings.seed
    if not standard:
        return False
    if len(parts) == 1 and parts[0] in STANDARD_KEYS:
        return True
    parent = format_key(parts[:-1])
    return parent in OPEN_SECTIONS


def unknown_key_error(
    key: str,
    parts: list[str | int],
    settings: Sequence[dict[str, Any]],
    file: str,
    where: str,
    value: Any,
) -> ConfigError:
    choices: set[str] = set()
    for s in settings:
        choices.update(dotted_keys(s))
    if parts and parts[0] == "settings" and not any("settings" in s for s in settings):
        return ConfigError(
            f"keys are relative to settings: write {format_key(parts[1:])!r}", file=file, key=where
        )
    return ConfigError(
        f"unknown key {key!r} (value {short(value)}){hint(key, choices)}; "
        "prefix it with '+' to add a new key",
        file=file,
        key=where,
    )


# --------------------------------------------------------------------------- provenance


@dataclass
class Layer:
    file: str
    prefix: str  # how the file spells the settings root, e.g. "settings." or "[2].settings."
    data: dict[str, Any]
    note: str = ""


@dataclass
class Origins:
    layers: list[Layer] = field(default_factory=list)
    grid: dict[str, tuple[str, str]] = field(default_factory=dict)  # formatted key -> (file, key)
    overrides: dict[str, str] = field(default_factory=dict)  # formatted key -> override key
    fallback: tuple[str, str] = ("", "")

    def locate(self, parts: list[str | int]) -> tuple[str, str, str]:
        """``(file, key as written in that file, note)`` of the value at ``parts``."""
        full = format_key(parts)
        for n in range(len(parts), 0, -1):
            sub = format_key(parts[:n])
            rest = full[len(sub) :]  # inside a value set whole: ".init_args.approximate"
            if sub in self.overrides:
                return OVERRIDE_SOURCE, self.overrides[sub] + rest, ""
            if sub in self.grid:
                file, key = self.grid[sub]
                return file, key + rest, ""
            for layer in reversed(self.layers):
                if get_path(layer.data, parts[:n])[0]:
                    return layer.file, layer.prefix + format_key(parts), layer.note
        file, prefix = self.fallback
        return file, prefix + format_key(parts), ""


def located_error(origins: Origins, parts: list[str | int], message: str) -> ConfigError:
    file, key, note = origins.locate(parts)
    return ConfigError(message + note, file=file or None, key=key or None)
