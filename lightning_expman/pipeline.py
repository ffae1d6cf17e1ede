"""Pipelines: what one trial run executes.

Two kinds, both created by :meth:`PipelineFactory.create` from the experiment's ``pipeline:`` type:

* :class:`LightningPipeline` (type ``"lightning"``, the default) — the standard pipeline, configured
  without Python code, LightningCLI-style::

      settings:
        seed: 42
        model: {class_path: examples.digits.model.DigitsMLP, init_args: {hidden: 64, lr: 0.01}}
        data:  {class_path: examples.digits.data.DigitsDataModule, init_args: {batch_size: 64}}
        trainer: {max_epochs: 10}
        callbacks: [{type: early_stopping, monitor: val_loss, patience: 3}, {type: checkpoint}]

  It builds the LightningModule, the optional LightningDataModule and a Trainer carrying the
  ExpmanLogger (runner mode), the level hooks and the configured callbacks; :meth:`run` fits, then
  tests when a test loop exists (see :meth:`LightningPipeline.has_test_loop`).

* Your own :class:`Pipeline` subclass with your own loop (the seed's API): decorate the loop with
  :meth:`Pipeline.run_wrapper` and each epoch with :meth:`Pipeline.epoch_wrapper`; values put in
  ``self.epoch_metrics`` / ``self.run_metrics`` are tracked automatically through
  ``env.tracker_manager``, a :class:`PipelineCallback` returning ``False`` (or ``StopIteration``)
  stops the run as STOPPED, an exception makes it FAILED, Ctrl-C ABORTED.

Register custom pipelines by name (a plain dict plus a register function) and select them with
``pipeline: my_loop`` in experiment.yaml, or pass a ``"package.module.Class"`` path there::

    from lightning_expman.pipeline import Pipeline, register_pipeline

    @register_pipeline("my_loop")
    class MyLoop(Pipeline):
        @Pipeline.run_wrapper
        def run(self, config):
            for epoch in range(config.epochs):
                self.run_epoch(epoch)

        @Pipeline.epoch_wrapper
        def run_epoch(self, epoch_idx):
            self.epoch_metrics[Metric.TRAIN_LOSS] = 1.0 / (epoch_idx + 1)

This module holds the registry and the factory and re-exports the rest: the seed-style base
lives in :mod:`.pipeline_base`, the Lightning pipeline in :mod:`.pipeline_lightning`, and
``instantiate`` (one builder for every ``{class_path, init_args}``) in :mod:`.instantiate`.
Importing it does not import torch or lightning.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .config._util import hint
from .errors import ConfigError
from .instantiate import import_object, instantiate
from .pipeline_base import Pipeline, PipelineCallback
from .pipeline_lightning import LightningPipeline

if TYPE_CHECKING:  # pragma: no cover
    from .workspace import Environment

__all__ = [
    "DEFAULT_PIPELINE",
    "LightningPipeline",
    "Pipeline",
    "PipelineCallback",
    "PipelineFactory",
    "instantiate",
    "pipeline_factory",
    "register_pipeline",
    "registered_pipelines",
]

DEFAULT_PIPELINE = "lightning"
"""The pipeline type used when experiment.yaml names none."""


PipelineFactoryFn = Callable[..., Pipeline]

_REGISTRY: dict[str, PipelineFactoryFn] = {DEFAULT_PIPELINE: LightningPipeline}


def register_pipeline(name: str, factory: PipelineFactoryFn | None = None) -> Any:
    """Register a pipeline type; usable as a decorator.

    ``factory(env, config)`` (a :class:`Pipeline` subclass or any callable) builds the pipeline
    for ``pipeline: <name>`` in experiment.yaml. Registering an existing name replaces it.

    Example:
        >>> @register_pipeline("my_loop")
        ... class MyLoop(Pipeline): ...
        >>> register_pipeline("other", OtherPipeline)
    """
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"pipeline name must be a non-empty string, got {name!r}")

    def decorator(obj: PipelineFactoryFn) -> PipelineFactoryFn:
        if not callable(obj):
            raise ConfigError(f"pipeline factory for {name!r} must be callable, got {obj!r}")
        _REGISTRY[name.strip()] = obj
        return obj

    return decorator if factory is None else decorator(factory)


def registered_pipelines() -> list[str]:
    """The registered pipeline type names, sorted."""
    return sorted(_REGISTRY)


class PipelineFactory:
    """The seed's factory: ``create(name, config, env, id)`` builds the pipeline of a trial run.

    ``name`` is the experiment's ``pipeline:`` type: a registered name (see
    :func:`register_pipeline`; ``None`` means ``"lightning"``) or a ``"package.module.Class"``
    path. Subclass and override :meth:`create` to decide in Python, falling back to this one::

        class MyFactory(PipelineFactory):
            @staticmethod
            def create(name, config, env, id=None):
                if name == "mine":
                    return MyPipeline(env, config)
                return PipelineFactory.create(name, config, env, id)

        Experiment.create("configs/exp", MyFactory).run()
    """

    register = staticmethod(register_pipeline)

    @staticmethod
    def create(name: str | None, config: Any, env: Environment, id: Any = None) -> Pipeline:
        """Build the pipeline ``name`` for a run with settings ``config`` in environment ``env``.

        Raises:
            ConfigError: an unknown name (naming the closest registered one and the valid names).
        """
        return pipeline_factory(name)(env, config)


def pipeline_factory(name: str | None) -> PipelineFactoryFn:
    """What :meth:`PipelineFactory.create` calls for pipeline type ``name`` (``None``: ``"lightning"``).

    Raises:
        ConfigError: an unknown name (naming the closest registered one and the valid names).
    """
    name = name or DEFAULT_PIPELINE
    factory = _REGISTRY.get(name)
    if factory is None and "." in name:
        factory = import_object(name, key="pipeline")
    if factory is None:
        raise ConfigError(
            f"unknown pipeline {name!r}{hint(name, _REGISTRY)}; "
            f"valid: {', '.join(registered_pipelines())} "
            "or a 'package.module.Class' path",
            key="pipeline",
        )
    return factory
