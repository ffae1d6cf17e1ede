"""Check ``class_path`` values without importing them (so torch/lightning stay unloaded).

A class path ``pkg.module.Name`` resolves when the module's source file can be found (searched
on ``sys.path`` like the import system does, *without* executing any package ``__init__``)
and its source defines ``Name`` at top level: a ``class``, a ``def``, an assignment, or an
import (``from .models import Name`` is followed to the module it comes from). The keyword
arguments the target accepts (and their annotations, as source text) are read from the
``__init__`` signature in the source, so ``init_args`` typos and values of the wrong type are
caught too; an ``__init__`` that passes ``**kwargs`` on to ``super().__init__`` accepts its base
class's arguments as well (``lightning_expman.callbacks.EarlyStopping`` takes Lightning's
``EarlyStopping`` arguments). Only modules without Python source (extension modules) are
really imported. Results are cached per path, and each module's index on disk (see
:mod:`._source_cache`), so a fresh process does not parse Lightning's ``trainer.py`` again.

Example:
    >>> from lightning_expman.config.classpath import resolve_target
    >>> target = resolve_target("collections.OrderedDict")
    >>> target.error is None
    True
"""

from __future__ import annotations

import ast
import importlib
import importlib.machinery
import importlib.util
import inspect
import os
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from . import _source_cache
from ._util import hint

__all__ = ["Target", "resolve_target"]

_SOURCE_SUFFIXES = tuple(importlib.machinery.SOURCE_SUFFIXES)
_EXT_SUFFIXES = tuple(importlib.machinery.EXTENSION_SUFFIXES)


@dataclass(frozen=True)
class Target:
    """What a class path points to.

    Attributes:
        path: the class path.
        error: why it does not resolve (one line), or None when it does.
        params: keyword parameters the target accepts, or None when unknown / ``**kwargs``.
        file: the source file it was found in, if any.
        kind: ``"class"``, ``"function"``, or None when unknown (an assignment, a compiled module).
        annotations: ``(parameter, annotation source)`` of the annotated parameters.
    """

    path: str
    error: str | None = None
    params: tuple[str, ...] | None = None
    file: str | None = None
    kind: str | None = None
    annotations: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class _Def:
    kind: str  # "class", "function", "other", "import"
    params: tuple[str, ...] | None = None
    module: str | None = None  # for "import": where the name comes from
    name: str | None = None
    annotations: tuple[tuple[str, str], ...] = ()
    own: tuple[str, ...] = ()  # explicit parameters of an __init__ that forwards **kwargs
    forward: str | None = None  # the base class (name in this module) that gets those **kwargs


@dataclass(frozen=True)
class _ModuleIndex:
    file: str
    defs: dict[str, _Def]
    lazy: bool  # module-level __getattr__: any name may exist
    star: tuple[str, ...]  # modules star-imported


def _locate(module: str) -> tuple[str | None, str | None]:
    """Return ``(source_file, None)``, ``(None, None)`` when only a compiled module exists, or
    ``(None, error)`` when the module cannot be found. Executes no package code."""
    parts = module.split(".")
    if not all(p.isidentifier() for p in parts):
        return None, f"{module!r} is not a valid module name"
    top = parts[0]
    loaded = sys.modules.get(module)
    if loaded is not None:
        file = getattr(loaded, "__file__", None)
        return (file, None) if file and file.endswith(_SOURCE_SUFFIXES) else (None, None)
    try:
        spec = importlib.machinery.PathFinder.find_spec(top) or importlib.util.find_spec(top)
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        return None, f"module {top!r} not found (is the package installed / on PYTHONPATH?)"
    if len(parts) == 1:
        origin = spec.origin
        if origin and origin.endswith(_SOURCE_SUFFIXES):
            return origin, None
        return None, None
    locations = list(spec.submodule_search_locations or [])
    if not locations:
        return None, f"module {top!r} is not a package, so {module!r} does not exist"
    for depth, part in enumerate(parts[1:], start=1):
        last = depth == len(parts) - 1
        found_pkg: list[str] = []
        found_file: str | None = None
        compiled = False
        for loc in locations:
            base = os.path.join(loc, part)
            if os.path.isdir(base):
                init = os.path.join(base, "__init__.py")
                found_pkg.append(base)
                if last and os.path.isfile(init):
                    found_file = init
                    break
                continue
            if last:
                for suffix in _SOURCE_SUFFIXES:
                    if os.path.isfile(base + suffix):
                        found_file = base + suffix
                        break
                if found_file:
                    break
                if any(os.path.isfile(base + s) for s in _EXT_SUFFIXES):
                    compiled = True
        if last:
            if found_file:
                return found_file, None
            if compiled or found_pkg:
                return None, None
        elif found_pkg:
            locations = found_pkg
            continue
        siblings = _siblings(locations)
        prefix = ".".join(parts[:depth])
        return None, f"module {'.'.join(parts[: depth + 1])!r} not found in {prefix!r}{hint(part, siblings)}"
    return None, None  # pragma: no cover


def _siblings(locations: list[str]) -> list[str]:
    names = []
    for loc in locations:
        try:
            for entry in os.scandir(loc):
                stem = entry.name.split(".")[0]
                if stem.isidentifier() and not stem.startswith("_"):
                    names.append(stem)
        except OSError:
            continue
    return names


def _arguments(fn: ast.FunctionDef | ast.AsyncFunctionDef, skip_first: bool) -> list[ast.arg]:
    args = list(fn.args.args) + list(fn.args.kwonlyargs)
    return args[1:] if skip_first and args else args


def _params(fn: ast.FunctionDef | ast.AsyncFunctionDef, skip_first: bool) -> tuple[str, ...] | None:
    if fn.args.kwarg is not None:
        return None
    return tuple(a.arg for a in _arguments(fn, skip_first))


def _annotations(fn: ast.FunctionDef | ast.AsyncFunctionDef, skip_first: bool) -> tuple[tuple[str, str], ...]:
    return tuple(
        (a.arg, ast.unparse(a.annotation)) for a in _arguments(fn, skip_first) if a.annotation is not None
    )


def _forwarded_base(node: ast.ClassDef, init: ast.FunctionDef | ast.AsyncFunctionDef) -> str | None:
    """The base class name when ``__init__`` passes its ``**kwargs`` to ``super().__init__``.

    With several bases the last one is taken: mixins come first by convention, and the class
    that finally takes the keywords (``class EarlyStopping(SeedMixin, LightningEarlyStopping)``)
    comes last.
    """
    kwarg = init.args.kwarg.arg if init.args.kwarg is not None else None
    if kwarg is None or not node.bases or not isinstance(node.bases[-1], ast.Name):
        return None
    for call in ast.walk(init):
        if (
            isinstance(call, ast.Call)
            and isinstance(call.func, ast.Attribute)
            and call.func.attr == "__init__"
            and isinstance(call.func.value, ast.Call)
            and getattr(call.func.value.func, "id", None) == "super"
            and any(k.arg is None and getattr(k.value, "id", None) == kwarg for k in call.keywords)
        ):
            return node.bases[-1].id
    return None


def _class_def(node: ast.ClassDef) -> _Def:
    for item in node.body:
        if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and item.name == "__init__":
            forward = _forwarded_base(node, item)
            return _Def(
                "class",
                _params(item, skip_first=True),
                annotations=_annotations(item, skip_first=True),
                own=tuple(a.arg for a in _arguments(item, skip_first=True)) if forward else (),
                forward=forward,
            )
    return _Def("class", _class_params(node))


def _class_params(node: ast.ClassDef) -> tuple[str, ...] | None:
    is_dataclass = any(
        (isinstance(d, ast.Name) and d.id == "dataclass")
        or (isinstance(d, ast.Attribute) and d.attr == "dataclass")
        or (isinstance(d, ast.Call) and getattr(d.func, "id", getattr(d.func, "attr", None)) == "dataclass")
        for d in node.decorator_list
    )
    if is_dataclass and not node.bases:
        return tuple(
            i.target.id for i in node.body if isinstance(i, ast.AnnAssign) and isinstance(i.target, ast.Name)
        )
    return None  # inherited __init__: unknown without importing the bases


def _absolute(module: str, is_package: bool, level: int, target: str | None) -> str | None:
    if level == 0:
        return target
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    if not base:
        return None
    return ".".join(base + ([target] if target else []))


def _index_body(
    body: list[ast.stmt], module: str, is_package: bool, index: dict[str, _Def], star: list[str]
) -> bool:
    lazy = False
    for node in body:
        if isinstance(node, ast.ClassDef):
            index[node.name] = _class_def(node)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            index[node.name] = _Def(
                "function", _params(node, skip_first=False), annotations=_annotations(node, skip_first=False)
            )
            if node.name == "__getattr__":
                lazy = True
        elif isinstance(node, ast.Assign):
            for t in node.targets:
                for n in ast.walk(t):
                    if isinstance(n, ast.Name):
                        index[n.id] = _Def("other")
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign)) and isinstance(node.target, ast.Name):
            index[node.target.id] = _Def("other")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                index[alias.asname or alias.name.split(".")[0]] = _Def("other")
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(module, is_package, node.level, node.module)
            for alias in node.names:
                if alias.name == "*":
                    if source:
                        star.append(source)
                    continue
                index[alias.asname or alias.name] = _Def("import", module=source, name=alias.name)
        elif isinstance(node, ast.If | ast.Try | ast.With):
            blocks = [node.body, getattr(node, "orelse", []), getattr(node, "finalbody", [])]
            blocks += [h.body for h in getattr(node, "handlers", [])]
            for block in blocks:
                lazy |= _index_body(block, module, is_package, index, star)
    return lazy


@lru_cache(maxsize=256)
def _index(module: str) -> _ModuleIndex | str | None:
    """Index of a module's top-level names; a string error; None when there is no source."""
    file, error = _locate(module)
    if error:
        return error
    if file is None:
        return None
    cached = _source_cache.load(module, file)
    if isinstance(cached, _ModuleIndex):
        return cached
    try:
        source = Path(file).read_bytes()
        tree = ast.parse(source, filename=file)
    except (OSError, SyntaxError, ValueError) as e:
        return f"cannot read module {module!r} ({file}): {type(e).__name__}: {e}".replace("\n", " ")
    defs: dict[str, _Def] = {}
    star: list[str] = []
    is_package = os.path.basename(file).startswith("__init__.")
    lazy = _index_body(tree.body, module, is_package, defs, star)
    index = _ModuleIndex(file=file, defs=defs, lazy=lazy, star=tuple(star))
    _source_cache.store(module, file, index)
    return index


def _import_check(module: str, name: str, path: str) -> Target:
    """Last resort for modules without source: a real import."""
    try:
        mod = importlib.import_module(module)
    except Exception as e:  # any import-time failure is a config error here
        return Target(
            path, error=f"cannot import module {module!r}: {type(e).__name__}: {e}".replace("\n", " ")
        )
    if not hasattr(mod, name):
        public = [n for n in dir(mod) if not n.startswith("_")]
        return Target(path, error=f"module {module!r} has no attribute {name!r}{hint(name, public)}")
    obj = getattr(mod, name)
    kind = "class" if inspect.isclass(obj) else "function" if inspect.isroutine(obj) else None
    params: tuple[str, ...] | None = None
    try:
        sig = inspect.signature(obj)
        if not any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
            params = tuple(
                p.name for p in sig.parameters.values() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
            )
    except (TypeError, ValueError):
        pass
    return Target(path, params=params, file=getattr(mod, "__file__", None), kind=kind)


def _names(idx: _ModuleIndex) -> list[str]:
    """The names a module defines, those of the modules it star-imports included (for hints)."""
    names = list(idx.defs)
    for star in idx.star:
        sub = _index(star)
        if isinstance(sub, _ModuleIndex):
            names += [n for n in sub.defs if not n.startswith("_")]
    return names


def _lookup(module: str, name: str, path: str, depth: int) -> Target:
    idx = _index(module)
    if isinstance(idx, str):
        return Target(path, error=idx)
    if idx is None:
        return _import_check(module, name, path)
    found = idx.defs.get(name)
    if found is None and depth < 4:
        for star in idx.star:
            sub = _lookup(star, name, path, depth + 1)
            if sub.error is None:
                return sub
    if found is None:
        # ``pkg.sub`` where ``sub`` is a submodule is not a class: still report it as missing.
        if idx.lazy:
            return Target(path, file=idx.file)
        return Target(
            path, error=f"{name!r} is not defined in module {module!r} ({idx.file}){hint(name, _names(idx))}"
        )
    if found.kind == "import":
        if found.module and depth < 4:
            sub = _lookup(found.module, found.name or name, path, depth + 1)
            if sub.error is None:
                return sub
            # ``from . import models`` style or an unreadable source: the name exists anyway.
        return Target(path, file=idx.file)
    kind = found.kind if found.kind in ("class", "function") else None
    params, annotations = found.params, found.annotations
    if found.forward and depth < 4:
        base = _lookup(module, found.forward, path, depth + 1)
        if base.error is None and base.params is not None:
            params = tuple(dict.fromkeys(found.own + base.params))
            annotations = annotations + tuple(a for a in base.annotations if a[0] not in found.own)
    return Target(path, params=params, file=idx.file, kind=kind, annotations=annotations)


@lru_cache(maxsize=1024)
def resolve_target(path: str) -> Target:
    """Resolve ``pkg.module.Name`` without importing ``pkg`` (see the module docstring).

    Args:
        path: a dotted class path.

    Returns:
        A :class:`Target`; ``target.error`` is a one-line reason when it does not resolve.
    """
    if (
        not isinstance(path, str)
        or "." not in path.strip(".")
        or any(not p.isidentifier() for p in path.split("."))
    ):
        return Target(str(path), error="must be a dotted path like 'package.module.ClassName'")
    module, _, name = path.rpartition(".")
    return _lookup(module, name, path, 0)
