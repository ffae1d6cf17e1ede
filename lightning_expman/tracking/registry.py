"""Tracker registry: a type name -> a tracker factory, so env.yaml can list trackers.

``trackers: [{type: db, url: ...}, {type: mlflow, tracking_uri: ...}]`` builds one tracker per
entry: ``type`` picks the factory, the remaining keys are its keyword arguments. Built-ins
(``db``, ``mlflow``, ``log``, ``tensorboard``, ``system``) are registered as ``"module:Class"`` strings so
that their optional dependencies are imported only when a tracker of that type is built.

Example:
    >>> from lightning_expman.tracking import Tracker, build_tracker, register_tracker
    >>> class PrintTracker(Tracker):
    ...     def __init__(self, prefix: str = ">") -> None:
    ...         self.prefix = prefix
    ...     def track(self, metric, value, step=None, **kwargs):
    ...         print(self.prefix, metric, value)
    >>> register_tracker("print", PrintTracker)
    >>> tracker = build_tracker({"type": "print", "prefix": "#"})
    >>> tracker.track("val_loss", 0.25)
    # val_loss 0.25
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

from ..config._util import hint
from ..errors import ConfigError
from ..instantiate import import_object, instantiate_class
from .base import Tracker

__all__ = [
    "BUILTIN_TRACKERS",
    "build_tracker",
    "register_tracker",
    "registered_trackers",
    "tracker_parameters",
]

TrackerFactory = type[Tracker] | Callable[..., Tracker] | str

BUILTIN_TRACKERS: tuple[str, ...] = ("db", "log", "mlflow", "system", "tensorboard")
"""The type names this package registers itself."""

_REGISTRY: dict[str, TrackerFactory] = {
    "db": "lightning_expman.tracking.db:DBTracker",
    "mlflow": "lightning_expman.tracking.mlflow:MLflowTracker",
    "log": "lightning_expman.tracking.log:LogTracker",
    "tensorboard": "lightning_expman.tracking.tensorboard:TensorBoardTracker",
    "system": "lightning_expman.tracking.system:SystemTracker",
}


def register_tracker(name: str, factory: TrackerFactory) -> None:
    """Make ``{"type": name, ...}`` build a tracker with ``factory(**kwargs)``.

    Args:
        name: the ``type`` value in env.yaml (case-insensitive). Registering an existing
            name replaces it, so a project can swap a built-in for its own implementation.
        factory: a :class:`Tracker` subclass, any callable returning a tracker, or a
            ``"package.module:ClassName"`` string imported on first use.

    Example:
        >>> register_tracker("wandb", "my_project.trackers:WandbTracker")
    """
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"tracker name must be a non-empty string, got {name!r}")
    if isinstance(factory, str):
        if ":" not in factory:
            raise ConfigError(
                f"tracker factory {factory!r} for {name!r} must look like 'package.module:Class'"
            )
    elif not callable(factory):
        raise ConfigError(f"tracker factory for {name!r} must be callable or a 'module:Class' string")
    _REGISTRY[name.strip().lower()] = factory


def registered_trackers() -> list[str]:
    """The registered type names, sorted."""
    return sorted(_REGISTRY)


def _resolve(name: str, factory: TrackerFactory) -> Callable[..., Tracker]:
    if not isinstance(factory, str):
        return factory
    resolved = import_object(factory, key=f"tracker type {name!r}")
    _REGISTRY[name] = resolved
    return resolved


def tracker_parameters(name: str) -> tuple[tuple[str, ...] | None, dict[str, str]]:
    """The keyword parameters of tracker type ``name`` (None: it takes ``**kwargs``) and their
    annotations as text, read from its signature without building a tracker (config validation).

    Raises:
        ConfigError: unknown type, or its module cannot be imported.
    """
    key = name.strip().lower()
    if key not in _REGISTRY:
        raise ConfigError(f"unknown tracker type {name!r}; valid types: {', '.join(registered_trackers())}")
    factory = _resolve(key, _REGISTRY[key])
    accepted, var_kw = _accepted(factory)
    annotations: dict[str, str] = {}
    try:
        for p in inspect.signature(factory).parameters.values():
            if p.annotation is not p.empty:
                annotations[p.name] = p.annotation if isinstance(p.annotation, str) else p.annotation.__name__
    except (TypeError, ValueError, AttributeError):
        pass
    return (None if var_kw else tuple(sorted(accepted))), annotations


def _accepted(factory: Callable[..., Any]) -> tuple[set[str], bool]:
    """Keyword names ``factory`` accepts, and whether it takes ``**kwargs``."""
    try:
        sig = inspect.signature(factory)
    except (TypeError, ValueError):  # builtins without a signature: offer nothing extra
        return set(), False
    names = {
        p.name
        for p in sig.parameters.values()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self"
    }
    return names, any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())


def build_tracker(spec: Mapping[str, Any] | Tracker, **defaults: Any) -> Tracker:
    """Build a tracker from an env.yaml entry (or pass a ready tracker through).

    Args:
        spec: ``{"type": NAME, **kwargs}`` or a :class:`Tracker` instance (returned as is).
        **defaults: values such as ``workspace=...`` offered to the factory; each is passed
            only when the factory's signature accepts it and ``spec`` does not set it.

    Returns:
        The tracker.

    Raises:
        ConfigError: unknown ``type`` (naming the closest valid name and the valid list), a
            missing ``type``, or keyword arguments the tracker does not accept.

    Example:
        >>> tracker = build_tracker({"type": "db", "url": "sqlite:///runs.db"})
        >>> tracker = build_tracker({"type": "log", "verbose": True}, workspace="outputs")
    """
    if isinstance(spec, Tracker):
        return spec
    if not isinstance(spec, Mapping):
        raise ConfigError(
            f"a tracker spec must be a mapping with a 'type' key or a Tracker, got {type(spec).__name__}"
        )
    kwargs = dict(spec)
    kind = kwargs.pop("type", None)
    valid = ", ".join(registered_trackers())
    if not isinstance(kind, str) or not kind.strip():
        raise ConfigError(f"tracker spec {dict(spec)!r} has no 'type'; valid types: {valid}", key="trackers")
    name = kind.strip().lower()
    if name not in _REGISTRY:
        raise ConfigError(
            f"unknown tracker type {kind!r}{hint(name, _REGISTRY)}; valid types: {valid}", key="trackers"
        )
    factory = _resolve(name, _REGISTRY[name])
    accepted, var_kw = _accepted(factory)
    if not var_kw:
        unknown = sorted(k for k in kwargs if k not in accepted)
        if unknown:
            raise ConfigError(
                f"tracker {name!r} does not accept parameter {unknown[0]!r}; "
                f"valid parameters: {', '.join(sorted(accepted)) or '(none)'}",
                key="trackers",
            )
    # Only explicitly named parameters: a bare ``**kwargs`` may forward them somewhere else.
    offered = {k: v for k, v in defaults.items() if k not in kwargs and k in accepted}
    tracker = instantiate_class(factory, kwargs, key="trackers", label=f"tracker {name!r}", **offered)
    if not isinstance(tracker, Tracker):
        raise ConfigError(f"tracker type {name!r} built a {type(tracker).__name__}, not a Tracker")
    return tracker
