"""YAML reading for config files: one-line errors with line numbers, YAML 1.2 floats, no duplicates.

PyYAML follows YAML 1.1, where ``1e-3`` is a *string*; every ML config writes learning rates
that way, so floats follow YAML 1.2 / OmegaConf here (``1e-3`` -> ``0.001``). Timestamps stay
strings (a date in a tag must not become a ``datetime`` that cannot be hashed or stored).
Duplicate keys in a mapping are an error instead of silently keeping the last one. Aliases
may not expand a document past :data:`MAX_YAML_VALUES` values (a "billion laughs" file is
refused in milliseconds instead of exhausting memory while the config is merged).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError

__all__ = ["MAX_YAML_VALUES", "dump_yaml", "parse_yaml_value", "read_yaml"]

MAX_YAML_VALUES = 1_000_000
"""The most values (scalars, lists, mappings) a config file may hold once its aliases are expanded."""

_Base: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_FLOAT = re.compile(
    r"""^(?:
     [-+]?[0-9]+(?:_[0-9]+)*\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?[0-9]+(?:_[0-9]+)*(?:[eE][-+]?[0-9]+)
    |\.[0-9]+(?:_[0-9]+)*(?:[eE][-+][0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)


class _Loader(_Base):  # type: ignore[misc, valid-type]
    """Safe loader with YAML 1.2 floats, no timestamps and duplicate-key detection."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            if isinstance(key_node, yaml.ScalarNode):
                if key_node.value in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key_node.value!r}", key_node.start_mark
                    )
                seen.add(key_node.value)
        return super().construct_mapping(node, deep=deep)


_Loader.yaml_implicit_resolvers = {
    first: [
        (tag, rx)
        for tag, rx in resolvers
        if tag not in ("tag:yaml.org,2002:float", "tag:yaml.org,2002:timestamp")
    ]
    for first, resolvers in _Base.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))


class _Dumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # type: ignore[misc]
    """Safe dumper (libyaml's emitter where PyYAML has it: several times faster) that quotes a
    string any of our readers would take for something else: YAML 1.1 values (PyYAML, OmegaConf)
    and YAML 1.2 floats (:class:`_Loader`: ``"1e-3"`` stays a string when read back)."""


_Dumper.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))


def dump_yaml(data: Any, stream: Any) -> None:
    """Write ``data`` (plain dicts, lists and scalars) to the text ``stream`` as block-style YAML,
    keys in their order. The one way this package writes YAML.

    Example:
        >>> import sys
        >>> dump_yaml({"lr": "1e-3", "epochs": 5}, sys.stdout)
        lr: '1e-3'
        epochs: 5
    """
    yaml.dump(data, stream, Dumper=_Dumper, sort_keys=False, allow_unicode=True, default_flow_style=False)


def _yaml_error(e: yaml.YAMLError) -> str:
    mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
    problem = getattr(e, "problem", None) or str(e)
    context = getattr(e, "context", None)
    text = f"{context}: {problem}" if context and problem and context not in problem else problem
    text = " ".join(str(text).split())  # one line
    if mark is not None:
        return f"invalid YAML at line {mark.line + 1}, column {mark.column + 1}: {text}"
    return f"invalid YAML: {text}"


def read_yaml(path: Path, display: str) -> Any:
    """Parse one YAML file.

    Args:
        path: the file.
        display: how errors name the file.

    Returns:
        The parsed document (``None`` for an empty file).

    Raises:
        ConfigError: unreadable file or invalid YAML, one line with the line number.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"not UTF-8 text ({e.reason} at byte {e.start})", file=display) from None
    except OSError as e:
        raise ConfigError(f"cannot read file: {e.strerror}", file=display) from None
    try:
        data = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as e:
        raise ConfigError(_yaml_error(e), file=display) from None
    except RecursionError:
        raise ConfigError("invalid YAML: nested too deeply", file=display) from None
    _check_size(data, display)
    from ..masking import remember_secrets

    remember_secrets(data)
    return data


def _check_size(data: Any, display: str) -> None:
    """Refuse documents whose aliases expand past :data:`MAX_YAML_VALUES` values.

    PyYAML builds an alias as a reference to the same object, so the expanded size is counted
    once per distinct object (memoised): linear in the file, however large the expansion.
    """
    sizes: dict[int, int] = {}

    def size(value: Any, depth: int = 0) -> int:
        if not isinstance(value, (dict, list)):
            return 1
        known = sizes.get(id(value))
        if known is not None:
            return known
        if depth > 200:
            raise ConfigError("invalid YAML: nested more than 200 levels deep", file=display)
        sizes[id(value)] = 1  # a recursive alias (&a [*a]) counts once
        items = list(value.keys()) + list(value.values()) if isinstance(value, dict) else value
        total = 1 + sum(size(v, depth + 1) for v in items)
        sizes[id(value)] = total
        return total

    total = size(data)
    if total > MAX_YAML_VALUES:
        raise ConfigError(
            f"YAML aliases expand to more than {MAX_YAML_VALUES:,} values ({total:,}); "
            "write the values out or use a grid",
            file=display,
        )


def parse_yaml_value(text: str) -> Any:
    """Parse a command-line value as YAML (``0.1`` -> float, ``[1, 2]`` -> list, ``abc`` -> str).

    An empty value is ``None``. Text YAML cannot parse (e.g. ``a: b: c``) is kept as a string.
    """
    try:
        value = yaml.load(text, Loader=_Loader)
    except (yaml.YAMLError, RecursionError):
        return text
    _check_size(value, "--set")
    return value
