"""The one way to build objects from config: ``{class_path: pkg.mod.Class, init_args: {...}}``.

Models, datamodules, callbacks (``class_path`` form), extra Lightning loggers (``trainer.logger``),
pipelines named by path and lazily registered trackers are all built here, as LightningCLI's
``instantiate_class`` does. Instantiation is recursive: a value inside ``init_args`` (at any depth
of dicts and lists) that is itself a mapping with a ``class_path`` is built first and passed as
the object, so ``act: {class_path: torch.nn.GELU}`` reaches the model as a module.

The same specs are checked at load time, without importing anything, by
:mod:`lightning_expman.config.typecheck`; this module only imports what a spec names, when it is
built. Importing it imports nothing heavy.

Example:
    >>> from lightning_expman.instantiate import instantiate
    >>> instantiate({"class_path": "collections.Counter", "init_args": {"a": 1}}, key="model")
    Counter({'a': 1})
    >>> spec = {"class_path": "functools.partial",
    ...         "init_args": {"func": {"class_path": "collections.OrderedDict"}}}
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Mapping
from typing import Any

from .config._util import hint, short, to_plain
from .errors import ConfigError

__all__ = ["SPEC_KEYS", "import_object", "instantiate", "instantiate_all", "instantiate_class", "is_spec"]

SPEC_KEYS: tuple[str, ...] = ("class_path", "init_args")
"""The keys of a class spec (any other key beside ``class_path`` is an error)."""


def is_spec(value: Any) -> bool:
    """Whether ``value`` is a class spec: a mapping with a ``class_path`` key."""
    return isinstance(value, Mapping) and "class_path" in value


def import_object(path: str, *, key: str = "class_path") -> Any:
    """Import ``package.module.Name`` (or ``package.module:Name``) and return the object.

    Args:
        path: the dotted path; a ``:`` separates the module from the attribute when given.
        key: the config key the path came from, for the error message.

    Raises:
        ConfigError: a malformed path, a module that cannot be imported or a missing attribute
            (naming the closest attribute of the module), one line naming ``key`` and ``path``.

    Example:
        >>> import_object("collections.OrderedDict", key="model.class_path")
        <class 'collections.OrderedDict'>
    """
    if not isinstance(path, str):
        raise ConfigError(f"must be a string like 'package.module.Class', got {short(path)}", key=key)
    module_name, sep, attr = path.partition(":")
    if not sep:
        module_name, _, attr = path.rpartition(".")
    if not module_name or not attr:
        raise ConfigError(f"{path!r} must look like 'package.module.Class'", key=key)
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        reason = str(e).replace("\n", " ")
        raise ConfigError(f"{path!r}: cannot import module {module_name!r}: {reason}", key=key) from e
    try:
        return getattr(module, attr)
    except AttributeError:
        names = [n for n in dir(module) if not n.startswith("_")]
        raise ConfigError(
            f"{path!r}: module {module_name!r} has no {attr!r}{hint(attr, names)}", key=key
        ) from None


def _join(key: str, part: str | int) -> str:
    if isinstance(part, int):
        return f"{key}[{part}]"
    return f"{key}.{part}" if key else part


def instantiate_all(value: Any, *, key: str = "") -> Any:
    """``value`` with every class spec in it built (dicts and lists are walked, any depth).

    Example:
        >>> instantiate_all({"a": [{"class_path": "collections.OrderedDict"}], "b": 1})
        {'a': [OrderedDict()], 'b': 1}
    """
    if is_spec(value):
        return instantiate(value, key=key)
    if isinstance(value, Mapping):
        return {k: instantiate_all(v, key=_join(key, str(k))) for k, v in value.items()}
    if isinstance(value, list):
        return [instantiate_all(v, key=_join(key, i)) for i, v in enumerate(value)]
    return value


def instantiate(spec: Any, *, key: str = "", **extra: Any) -> Any:
    """Build an object from ``{class_path: pkg.mod.Class, init_args: {...}}`` (LightningCLI style).

    Nested specs inside ``init_args`` (in dicts and lists, at any depth) are built first.

    Args:
        spec: the mapping (dict, DictConfig or spec node); ``init_args`` is optional.
        key: the settings key it came from (``"model"``), for error messages.
        **extra: keyword arguments added to ``init_args`` (they win), passed as they are.

    Returns:
        ``Class(**init_args, **extra)``.

    Raises:
        ConfigError: not a spec, an unknown key beside ``class_path``/``init_args``, an
            unimportable ``class_path``, ``init_args`` that is not a mapping, or keyword arguments
            the class does not accept (one line naming the key, e.g. ``model.init_args.act``).
        Exception: whatever the constructor itself raises, unchanged.

    Example:
        >>> act = instantiate({"class_path": "torch.nn.GELU"}, key="model.init_args.act")
        >>> net = {"class_path": "my_pkg.Net", "init_args": {"act": {"class_path": "torch.nn.GELU"}}}
        >>> model = instantiate(net, key="model")  # Net(act=torch.nn.GELU())
    """
    spec = to_plain(spec)
    if not is_spec(spec):
        raise ConfigError(f"expected {{class_path: ..., init_args: {{...}}}}, got {short(spec)}", key=key)
    unknown = [k for k in spec if k not in SPEC_KEYS]
    if unknown:
        raise ConfigError(
            f"unknown key {unknown[0]!r}{hint(str(unknown[0]), SPEC_KEYS)}; valid: class_path, init_args",
            key=_join(key, str(unknown[0])),
        )
    path = spec["class_path"]
    cls = import_object(path, key=_join(key, "class_path"))
    init_args = spec.get("init_args") or {}
    if not isinstance(init_args, Mapping):
        raise ConfigError(
            f"must be a mapping of keyword arguments, got {short(init_args)}", key=_join(key, "init_args")
        )
    return instantiate_class(cls, init_args, key=_join(key, "init_args"), label=path, **extra)


def instantiate_class(
    factory: Callable[..., Any], init_args: Mapping[str, Any], *, key: str = "", label: str = "", **extra: Any
) -> Any:
    """Call ``factory(**init_args, **extra)`` after building the specs nested in ``init_args``.

    What :func:`instantiate` does once the class is imported; registries that map a ``type``
    name to a class (callbacks, trackers) call it with their class.

    Args:
        factory: a class or any callable.
        init_args: its keyword arguments from config (nested specs are built).
        key: where ``init_args`` are in the config (``"callbacks[0]"``), for errors.
        label: how to name the factory in errors (default: its qualified name).
        **extra: keyword arguments passed as they are (they win over ``init_args``).

    Raises:
        ConfigError: a keyword the factory does not take or a missing required one.

    Example:
        >>> instantiate_class(dict, {"a": {"class_path": "collections.OrderedDict"}}, key="x")
        {'a': OrderedDict()}
    """
    kwargs = {k: instantiate_all(v, key=_join(key, str(k))) for k, v in init_args.items()}
    kwargs.update(extra)
    label = label or getattr(factory, "__qualname__", repr(factory))
    _check_call(factory, kwargs, label, key)
    try:
        return factory(**kwargs)
    except TypeError as e:
        # A ``**kwargs`` the signature cannot judge, refused by the base class it goes to.
        if not any(text in str(e) for text in ("unexpected keyword argument", "invalid keyword argument")):
            raise
        raise ConfigError(f"{label}: {e}", key=key) from e


def _check_call(cls: Any, kwargs: Mapping[str, Any], path: str, key: str) -> None:
    """A keyword the constructor does not take is a config error, not a TypeError from deep inside."""
    try:
        signature = inspect.signature(cls)
    except (TypeError, ValueError):  # builtins without a signature: let the call decide
        return
    try:
        signature.bind(**kwargs)
    except TypeError as e:
        accepted = [
            p.name
            for p in signature.parameters.values()
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        ]
        bad = next((k for k in kwargs if k not in signature.parameters), None)
        where = _join(key, bad) if bad else key
        raise ConfigError(
            f"{path}: {e}{hint(bad, accepted) if bad else ''}; valid: {', '.join(accepted) or '(none)'}",
            key=where,
        ) from None
