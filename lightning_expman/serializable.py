"""The seed's factory-serializable pattern, as a thin façade over the registries that already exist.

The seed registers every component with ``@YAMLSerializable.register("Name")`` and builds it with
``Factory.create("Name", config)``. Here the decorator files a class where its kind is already
registered — one registry per kind, no second one:

* a :class:`~lightning_expman.tracking.base.Tracker` -> the tracker registry
  (:func:`~lightning_expman.tracking.register_tracker`; usable as ``trackers: [{type: Name}]``);
* a :class:`~lightning_expman.pipeline.Pipeline` -> the pipeline registry
  (:func:`~lightning_expman.pipeline.register_pipeline`; ``pipeline: Name`` in experiment.yaml);
* a Lightning ``Callback`` -> the callback registry
  (:func:`~lightning_expman.callbacks.register_callback`; ``callbacks: [{type: Name}]``);
* anything else (the seed's ``MyComponent``) -> the component registry of this module.

:meth:`YAMLSerializable.get_class` looks in all four, so ``Factory.create`` builds any of them.
Subclassing :class:`YAMLSerializable` is optional: the library's own classes do not, and
``register`` works on any class (constructors stay the API, DESIGN.md).

Example (the seed's, with only the imports changed):
    >>> from lightning_expman.serializable import Factory, YAMLSerializable
    >>> @YAMLSerializable.register("MyComponent")
    ... class MyComponent(YAMLSerializable):
    ...     def __init__(self, config=None):
    ...         super().__init__(config)
    ...         self.param1 = config.get("param1", "default")
    >>> Factory.create("MyComponent", {"type": "MyComponent", "param1": "value1"}).param1
    'value1'
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, TypeVar

from .config._util import hint, to_plain

__all__ = ["ComponentFactory", "Factory", "YAMLSerializable", "registered_components"]

T = TypeVar("T", bound=type)

_COMPONENTS: dict[str, type] = {}
"""Registered classes that are neither trackers, pipelines nor Lightning callbacks."""


def _lightning_callback_base() -> type | None:
    # Only when Lightning is loaded already: a class cannot subclass its Callback otherwise, and
    # importing Lightning here would cost every user ~9 s.
    module = sys.modules.get("lightning.pytorch.callbacks")
    return getattr(module, "Callback", None)


def _kind_registries() -> list[tuple[str, Mapping[str, Any], Callable[[str], str]]]:
    """``(kind, registry, key normaliser)`` for every registry a name may live in."""
    from .pipeline import _REGISTRY as pipelines
    from .tracking.registry import _REGISTRY as trackers

    found: list[tuple[str, Mapping[str, Any], Callable[[str], str]]] = [
        ("component", _COMPONENTS, str),
        ("pipeline", pipelines, str.strip),
    ]
    callbacks = sys.modules.get("lightning_expman.lightning.callbacks")
    if callbacks is not None:
        found.append(("callback", callbacks.CALLBACKS, lambda n: n.strip().lower()))
    found.append(("tracker", trackers, lambda n: n.strip().lower()))
    return found


def registered_components() -> dict[str, list[str]]:
    """Every name :meth:`YAMLSerializable.get_class` resolves, by kind."""
    return {kind: sorted(reg) for kind, reg, _ in _kind_registries()}


class YAMLSerializable:
    """The seed's base class of config-built objects; ``register`` files classes in the registries.

    Attributes:
        config: the config the object was built from (``{}`` when none).
    """

    _registry: ClassVar[dict[str, type]] = _COMPONENTS

    def __init__(self, config: Any = None) -> None:
        self.config = config if config is not None else {}

    @classmethod
    def register(cls, type_name: str) -> Callable[[T], T]:
        """Decorator: register a class under ``type_name`` in the registry of its kind (module doc).

        Raises:
            ValueError: ``type_name`` is not a non-empty string.
        """
        if not isinstance(type_name, str) or not type_name.strip():
            raise ValueError(
                f"YAMLSerializable.register: type name must be a non-empty string, got {type_name!r}"
            )

        def decorator(subclass: T) -> T:
            from .pipeline import Pipeline, register_pipeline
            from .tracking.base import Tracker
            from .tracking.registry import register_tracker

            callback_base = _lightning_callback_base()
            if issubclass(subclass, Tracker):
                register_tracker(type_name, subclass)
            elif issubclass(subclass, Pipeline):
                register_pipeline(type_name, subclass)
            elif callback_base is not None and issubclass(subclass, callback_base):
                from .lightning.callbacks import register_callback

                register_callback(type_name, subclass)
            else:
                _COMPONENTS[type_name] = subclass
            return subclass

        return decorator

    @classmethod
    def get_class(cls, type_name: str) -> type:
        """The class registered as ``type_name`` (components, pipelines, callbacks, trackers).

        Raises:
            ValueError: unknown name, naming the closest registered one (the seed raises ValueError).
        """
        from .tracking.registry import _resolve

        names: list[str] = []
        for kind, registry, key in _kind_registries():
            found = registry.get(key(str(type_name)))
            if found is not None:
                return _resolve(key(type_name), found) if kind == "tracker" else found
            names += list(registry)
        valid = ", ".join(sorted(names))
        raise ValueError(f"Unknown type: {type_name!r}{hint(str(type_name), names)} (registered: {valid})")

    get_by_name = get_class  # the name in later versions of the seed

    @classmethod
    def from_config(cls, config: Any, *args: Any, **kwargs: Any) -> Any:
        """Build an instance from ``config`` (default: ``cls(config, *args, **kwargs)``)."""
        return cls(config, *args, **kwargs)

    @classmethod
    def load(cls, file_path: str | os.PathLike[str]) -> Any:
        """Build an instance from a YAML file with :meth:`from_config`."""
        from omegaconf import OmegaConf

        return cls.from_config(OmegaConf.load(os.fspath(file_path)))

    def save(self, file_path: str | os.PathLike[str]) -> None:
        """Write :attr:`config` to a YAML file."""
        from .config._yaml import dump_yaml

        with open(file_path, "w", encoding="utf-8") as f:
            dump_yaml(to_plain(self.config) or {}, f)


class Factory:
    """The seed's ``Factory.create(type_name, config, *args, **kwargs)``.

    A class with a ``from_config`` (every :class:`YAMLSerializable`) is built with
    ``from_config(config, *args, **kwargs)``; any other registered class (the library's trackers
    and callbacks) with ``cls(*args, **config_without_type, **kwargs)``.
    """

    @staticmethod
    def create(type_name: str, config: Any = None, *args: Any, **kwargs: Any) -> Any:
        """Build the component registered as ``type_name``.

        Raises:
            ValueError: ``type_name`` is not registered.
        """
        klass = YAMLSerializable.get_class(type_name)
        from_config = getattr(klass, "from_config", None)
        if callable(from_config):
            return from_config(config, *args, **kwargs)
        params = {k: v for k, v in (to_plain(config) or {}).items() if k != "type"}
        return klass(*args, **params, **kwargs)


class ComponentFactory(Factory):
    """A :class:`Factory` for the component registry (the seed's examples subclass ``Factory`` so)."""
