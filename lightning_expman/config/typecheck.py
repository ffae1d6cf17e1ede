"""Check class specs and keyword arguments against their target's signature, without importing it.

:func:`check_spec` checks a ``{class_path, init_args}`` mapping (model, data, a callback, an extra
logger, and every spec nested inside ``init_args``, recursively, as
:func:`lightning_expman.instantiate.instantiate` builds them): the class path resolves (read from
source, see :mod:`.classpath`), it names a class, each ``init_args`` key is a parameter of its
``__init__`` and each value fits the parameter's annotation. :func:`fits` is that annotation test.

Annotations understood (source text): ``int``, ``float`` (an int fits; a bool fits neither),
``bool``, ``str``, ``Path``, ``None``, ``Optional[X]``, ``X | Y``, ``Union[...]``, ``Literal[...]``,
``Annotated[X, ...]`` and the containers (list/tuple/Sequence, dict/Mapping; items unchecked). Any
other annotation (a class, a Callable, a type alias, a type variable) accepts any value: a wrong
guess must never refuse a valid config.

Example:
    >>> fits(0.5, "float"), fits("abc", "float"), fits(None, "Optional[int]"), fits(True, "int")
    (True, False, True, False)
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from ._util import format_key, hint, short
from .classpath import resolve_target

__all__ = ["SettingsIssue", "check_kwargs", "check_spec", "fits"]

_SPEC_KEYS = ("class_path", "init_args")  # lightning_expman.instantiate.SPEC_KEYS (not imported: cycle)


class SettingsIssue(Exception):
    """An invalid value at a path inside a trial's settings (the loader adds the file)."""

    def __init__(self, parts: list[str | int], message: str) -> None:
        self.parts = parts
        self.message = message
        super().__init__(f"{format_key(parts)}: {message}")


_SIMPLE_TYPES: dict[str, tuple[type, ...]] = {
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "str": (str,),
    "Path": (str,),
    "PathLike": (str,),
    "list": (list,),
    "List": (list,),
    "tuple": (list,),
    "Tuple": (list,),
    "Sequence": (list,),
    "Iterable": (list,),
    "dict": (dict,),
    "Dict": (dict,),
    "Mapping": (dict,),
}


def fits(value: Any, annotation: str) -> bool:
    """Whether a YAML value can be passed for a parameter annotated ``annotation`` (source text).

    A class spec (``{class_path: ...}``) fits any annotation but a builtin scalar or container:
    it becomes an object, which is checked where it is built.
    """
    node = _parse(annotation)
    if node is None:
        return True
    if isinstance(value, Mapping) and "class_path" in value:
        return _fits_node(_Obj(), node)
    return _fits_node(value, node)


@lru_cache(maxsize=1024)
def _parse(annotation: str) -> ast.expr | None:
    # Cached: a grid checks the same few annotations once per trial.
    try:
        return ast.parse(annotation, mode="eval").body
    except SyntaxError:
        return None


class _Obj:
    """Stands for an object built from a nested spec: it is none of the YAML types."""


def _fits_node(value: Any, node: ast.expr) -> bool:
    if isinstance(node, ast.Constant):
        if node.value is None:
            return value is None
        return fits(value, node.value) if isinstance(node.value, str) else True  # "quoted" refs
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return _fits_node(value, node.left) or _fits_node(value, node.right)
    if isinstance(node, ast.Subscript):
        outer = _name(node.value)
        args = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        if outer == "Optional":
            return value is None or _fits_node(value, args[0])
        if outer == "Union":
            return any(_fits_node(value, a) for a in args)
        if outer == "Literal":
            return any(isinstance(a, ast.Constant) and a.value == value for a in args)
        if outer == "Annotated":
            return _fits_node(value, args[0])
        node = node.value
    name = _name(node)
    if name in ("None", "NoneType"):
        return value is None
    types = _SIMPLE_TYPES.get(name or "")
    if types is None:
        return True
    if isinstance(value, bool) and bool not in types:
        return False
    return isinstance(value, types)


def _name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def check_kwargs(path: list[str | int], kwargs: Mapping[str, Any], target_path: str, what: str) -> None:
    """Check keyword arguments for ``target_path`` (names, annotated types, nested specs).

    Nothing is checked when the target does not resolve (the caller reports that) and names are
    not checked when its ``__init__`` takes ``**kwargs`` without a readable base.

    Raises:
        SettingsIssue: an unknown name (with the closest and the valid ones) or a value that does
            not fit its annotation, at ``path + [name]``.
    """
    target = resolve_target(target_path)
    if target.error is not None:
        return
    if target.params is not None:
        for key in kwargs:
            if key not in target.params:
                valid = ", ".join(target.params) or "(none)"
                raise SettingsIssue(
                    [*path, key],
                    f"unknown argument {key!r} of {what}{hint(str(key), target.params)}; valid: {valid}",
                )
    annotations = dict(target.annotations)
    for key, value in kwargs.items():
        annotation = annotations.get(key)
        if annotation is not None and not fits(value, annotation):
            raise SettingsIssue(
                [*path, key], f"must be {annotation} (the annotation of {what}), got {short(value)}"
            )
        check_nested([*path, key], value)


def check_nested(path: list[str | int], value: Any) -> None:
    """Check every class spec inside ``value`` (dicts and lists, any depth) with :func:`check_spec`."""
    if isinstance(value, Mapping):
        if "class_path" in value:
            check_spec(path, value, required=True)
            return
        for k, v in value.items():
            check_nested([*path, k], v)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            check_nested([*path, i], v)


def check_spec(path: list[str | int], node: Any, required: bool) -> None:
    """Check a ``{class_path, init_args}`` mapping at ``path`` (and the specs nested in it).

    Args:
        path: where it is inside the settings (``["model"]``).
        node: the value there.
        required: whether ``None`` is an error (``model``) or means "none" (``data``).

    Raises:
        SettingsIssue: the first problem, at its full path (``model.init_args.act.class_path``).
    """
    if node is None:
        if required:
            raise SettingsIssue(
                path, "is required: give {class_path: package.module.Class, init_args: {...}}"
            )
        return
    if not isinstance(node, Mapping):
        raise SettingsIssue(path, f"must be a mapping with 'class_path' (and 'init_args'), got {short(node)}")
    for key in node:
        if key not in _SPEC_KEYS:
            raise SettingsIssue(
                [*path, key],
                f"unknown key (value {short(node[key])}){hint(str(key), _SPEC_KEYS)}; "
                "valid: class_path, init_args",
            )
    class_path = node.get("class_path")
    if class_path is None:
        raise SettingsIssue([*path, "class_path"], "is required (e.g. 'my_pkg.models.MyModel')")
    if not isinstance(class_path, str):
        raise SettingsIssue([*path, "class_path"], f"must be a string, got {short(class_path)}")
    target = resolve_target(class_path)
    if target.error is not None:
        raise SettingsIssue([*path, "class_path"], f"{class_path!r} does not resolve: {target.error}")
    if target.kind == "function":
        raise SettingsIssue(
            [*path, "class_path"], f"{class_path!r} is a function, not a class: name the class to instantiate"
        )
    init_args = node.get("init_args")
    if init_args is None:
        return
    if not isinstance(init_args, Mapping):
        raise SettingsIssue(
            [*path, "init_args"], f"must be a mapping of keyword arguments, got {short(init_args)}"
        )
    check_kwargs([*path, "init_args"], init_args, class_path, class_path)
