"""Grids: the seed's ``insert_value`` and ``multiply``, and the declarative ``grid:`` of trials.yaml.

Example:
    >>> from omegaconf import OmegaConf
    >>> from lightning_expman.config import insert_value, multiply
    >>> insert_value(OmegaConf.create({"lr": "?", "batch_size": 32}), 0.001)
    {'lr': 0.001, 'batch_size': 32}
    >>> models = [{"model": "mlp"}, {"model": "cnn"}]
    >>> multiply(models, [{"lr": 0.1}, {"lr": 0.01}])  # doctest: +NORMALIZE_WHITESPACE
    [{'model': 'mlp', 'lr': 0.1}, {'model': 'mlp', 'lr': 0.01},
     {'model': 'cnn', 'lr': 0.1}, {'model': 'cnn', 'lr': 0.01}]
    >>> expand_grid({"model.init_args.lr": [0.1, 0.01], "model.init_args.hidden": [32, 64]})[1]
    {'model.init_args.lr': 0.1, 'model.init_args.hidden': 64}
    >>> grid_trial_name("mlp", {"model.init_args.lr": 0.1, "model.init_args.hidden": 32})
    'mlp-lr=0.1-hidden=32'
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from ._util import copy_tree, deep_merge

__all__ = [
    "PLACEHOLDER",
    "expand_grid",
    "format_grid_value",
    "grid_trial_id",
    "grid_trial_name",
    "insert_value",
    "multiply",
    "short_grid_keys",
]

PLACEHOLDER = "?"
"""The value :func:`insert_value` replaces."""

T = TypeVar("T")

_UNSAFE = re.compile(r"[^A-Za-z0-9._,+=@-]+")


def _is_omegaconf(obj: Any) -> bool:
    return type(obj).__module__.startswith("omegaconf")


def insert_value(config: T, value: Any, placeholder: str = PLACEHOLDER) -> T:
    """Return a copy of ``config`` with every ``"?"`` placeholder replaced by ``value``.

    Args:
        config: a ``DictConfig``/``ListConfig`` or plain nested dicts/lists. Placeholders are
            searched at any depth (mapping values and list items).
        value: the value to insert (inserted as is: a dict or list is inserted as a subtree).
        placeholder: the marker to replace (default ``"?"``).

    Returns:
        A new object of the same kind as ``config`` (a ``DictConfig`` in, a ``DictConfig`` out);
        ``config`` itself is not modified.

    Example:
        >>> insert_value({"optimizer": {"lr": "?"}, "layers": ["?", 32]}, 64)
        {'optimizer': {'lr': 64}, 'layers': [64, 32]}
    """

    def walk(node: Any) -> Any:
        if isinstance(node, Mapping):
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        if isinstance(node, str) and node == placeholder:
            return copy_tree(value)
        return node

    if _is_omegaconf(config):
        from omegaconf import OmegaConf

        return OmegaConf.create(walk(OmegaConf.to_container(config, resolve=False)))  # type: ignore[return-value]
    return walk(config)  # type: ignore[no-any-return]


def multiply(*lists: Sequence[Any]) -> list[dict[str, Any]]:
    """Cartesian product of lists of configs, each combination deep-merged (later lists win).

    Args:
        *lists: lists of mappings (dicts or ``DictConfig``).

    Returns:
        ``len(lists[0]) * len(lists[1]) * ...`` plain dicts, the first list varying slowest.
        With no list, ``[{}]``; an empty list gives ``[]``.

    Example:
        >>> lrs = [{"settings": {"lr": lr}} for lr in (0.1, 0.01)]
        >>> sizes = [{"settings": {"hidden": h}} for h in (32, 64)]
        >>> [c["settings"] for c in multiply(lrs, sizes)]  # doctest: +NORMALIZE_WHITESPACE
        [{'lr': 0.1, 'hidden': 32}, {'lr': 0.1, 'hidden': 64},
         {'lr': 0.01, 'hidden': 32}, {'lr': 0.01, 'hidden': 64}]
    """
    plain: list[list[Any]] = []
    for i, items in enumerate(lists):
        if _is_omegaconf(items):
            from omegaconf import OmegaConf

            items = OmegaConf.to_container(items, resolve=False)  # type: ignore[assignment]
        if not isinstance(items, Sequence) or isinstance(items, (str, bytes)):
            raise TypeError(
                f"multiply() argument {i + 1} must be a list of mappings, got {type(items).__name__}"
            )
        converted = []
        for item in items:
            if _is_omegaconf(item):
                from omegaconf import OmegaConf

                item = OmegaConf.to_container(item, resolve=False)
            if not isinstance(item, Mapping):
                raise TypeError(f"multiply() argument {i + 1} holds a {type(item).__name__}, not a mapping")
            converted.append(item)
        plain.append(converted)
    result = []
    for combo in itertools.product(*plain):
        merged: dict[str, Any] = {}
        for part in combo:
            merged = deep_merge(merged, part)
        result.append(merged)
    return result


def expand_grid(grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Every combination of a declarative grid, in order (the last key varies fastest).

    Args:
        grid: dotted key -> list of values.

    Returns:
        One ``{dotted key: value}`` dict per combination.
    """
    keys = list(grid)
    return [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]


def short_grid_keys(keys: Sequence[str]) -> dict[str, str]:
    """Shortest distinct dotted suffix of each key: ``model.init_args.lr`` -> ``lr``.

    Keys whose last part clash keep more parts: ``model.init_args.lr`` and ``optim.lr`` give
    ``init_args.lr`` and ``optim.lr``.
    """
    split = {k: k.replace("[", ".").replace("]", "").split(".") for k in keys}
    out: dict[str, str] = {}
    for key, parts in split.items():
        for n in range(1, len(parts) + 1):
            suffix = parts[-n:]
            clash = any(other != key and op[-n:] == suffix for other, op in split.items())
            if not clash or n == len(parts):
                out[key] = ".".join(suffix)
                break
    return out


def format_grid_value(value: Any) -> str:
    """How a grid value appears in a trial name: ``0.1``, ``1e-05``, ``true``, ``null``, ``a,b``.

    Characters other than letters, digits and ``._,+=@-`` become ``_`` so the name is a safe
    file name.
    """
    if value is None:
        text = "null"
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, (int, float, str)):
        text = repr(value) if isinstance(value, float) else str(value)
    elif isinstance(value, list) and all(isinstance(v, (int, float, str, bool)) for v in value):
        text = ",".join(format_grid_value(v) for v in value)
    else:
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return _UNSAFE.sub("_", text) or "_"


def grid_trial_name(name: str, combo: Mapping[str, Any], short_keys: Mapping[str, str] | None = None) -> str:
    """Deterministic name of one grid combination: ``<trial>-<key>=<value>-...`` in grid order.

    Args:
        name: the trial's name in trials.yaml.
        combo: dotted key -> value, one combination of :func:`expand_grid`.
        short_keys: the key labels (default :func:`short_grid_keys` of ``combo``'s keys).
    """
    labels = short_keys or short_grid_keys(list(combo))
    parts = [f"{labels[k]}={format_grid_value(v)}" for k, v in combo.items()]
    return "-".join([name, *parts])


def grid_trial_id(base_id: int, index: int, count: int) -> int:
    """Id of combination ``index`` (0-based) out of ``count`` of the grid trial ``base_id``.

    ``base_id * 10**w + index + 1`` where ``w`` is the number of digits of ``count``: trial 3 with
    a 12-point grid gives ids 301..312, with a 4-point grid 31..34. The loader rejects a config
    where such an id collides with another trial's id.
    """
    width = len(str(count))
    return base_id * 10**width + index + 1
