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

Importing this module does not import torch or lightning.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from .config._util import to_plain
from .enums import Level, RunStatus
from .errors import ConfigError
from .seeding import seed_everything
from .tracking.base import status_for_exception

if TYPE_CHECKING:  # pragma: no cover
    from .workspace import Environment

__all__ = [
    "DEFAULT_PIPELINE",
    "LightningPipeline",
    "Pipeline",
    "PipelineCallback",
    "PipelineFactory",
    "instantiate",
    "register_pipeline",
    "registered_pipelines",
]

log = logging.getLogger(__name__)

DEFAULT_PIPELINE = "lightning"
"""The pipeline type used when experiment.yaml names none."""


# --------------------------------------------------------------------------- seed-style pipelines


class PipelineCallback:
    """A callback of a custom (seed-style) pipeline; every hook is a no-op by default.

    Lightning pipelines use Lightning callbacks instead (``callbacks:`` in the settings).

    Example:
        >>> class StopAfter(PipelineCallback):
        ...     def __init__(self, epochs: int) -> None:
        ...         self.epochs = epochs
        ...     def on_epoch_end(self, epoch_idx, metrics):
        ...         return epoch_idx + 1 < self.epochs   # False stops the run (STOPPED)
    """

    def on_start(self) -> None:
        """Called when the run starts."""

    def on_epoch_end(self, epoch_idx: int, metrics: Mapping[Any, Any]) -> bool:
        """Called after each epoch with its metrics; return ``False`` to stop the run."""
        return True

    def on_end(self, metrics: Mapping[Any, Any]) -> None:
        """Called when the run ends (whatever its status) with the run metrics."""


class Pipeline:
    """Base class of pipelines: the seed's lifecycle around a user's training loop.

    Attributes:
        env: the run's :class:`~lightning_expman.workspace.Environment` (directories, logger,
            ``tracker_manager``).
        config: the run's settings (``seed`` is this run's seed).
        run_info: what the runner knows about this run (``repeat_idx``, ``seed``, ``config``,
            ``tags``, ``workdir``); set by :class:`~lightning_expman.experiment.Experiment`
            before :meth:`run`.
        epoch_metrics: filled by the epoch being run; tracked at EPOCH level and cleared by
            :meth:`epoch_wrapper`.
        run_metrics: final results; tracked at TRIAL_RUN level by :meth:`run_wrapper`.
        model: the model, for subclasses that keep one (``None`` until they do; the seed's
            examples pass ``self.model`` to ``run_epoch``).
        status: the final :class:`RunStatus` once :meth:`run` returned.
        error: the exception text of a FAILED/ABORTED run.

    Subclasses implement :meth:`run` (decorated with :meth:`run_wrapper`).
    """

    def __init__(self, env: Environment, config: Any = None) -> None:
        self.env = env
        self.config = config
        self.run_info: dict[str, Any] = {}
        self.callbacks: list[PipelineCallback] = []
        self.epoch_metrics: dict[Any, Any] = {}
        self.run_metrics: dict[Any, Any] = {}
        self.status: RunStatus | None = None
        self.error: str | None = None
        self.model: Any = None

    # -- API
    def register_callback(self, callback: Any) -> Any:
        """Add a callback and return it.

        Any object with the seed's hooks works: a :class:`PipelineCallback`, or the built-in
        :class:`~lightning_expman.callbacks.EarlyStopping` / ``CheckpointCallback`` /
        ``MetricsTracker`` (which are Lightning callbacks too). Missing hooks are skipped. A
        built-in callback created without ``env`` gets this pipeline's environment.
        """
        if getattr(callback, "env", _NO_ENV) is None:
            callback.env = self.env
        self.callbacks.append(callback)
        return callback

    def run(self, config: Any = None) -> RunStatus:
        """Execute the run and return its status. Subclasses implement it."""
        raise NotImplementedError(f"{type(self).__name__}.run() is not implemented")

    @property
    def tracker(self) -> Any:
        """The environment's tracker manager (``None`` when the environment has none)."""
        return getattr(self.env, "tracker_manager", None)

    # -- lifecycle used by the decorators
    def _on_run_start(self) -> None:
        self.status, self.error = RunStatus.RUNNING, None
        if self.tracker is not None:
            self.tracker.on_create(Level.PIPELINE, stage="fit")
            self.tracker.on_start(Level.PIPELINE)
        for callback in self.callbacks:
            _hook(callback, "on_start")()

    def _on_run_end(self, status: RunStatus) -> None:
        self.status = status
        tracker = self.tracker
        try:
            if tracker is not None and self.run_metrics:
                tracker.track_dict(self.run_metrics, level=Level.TRIAL_RUN)
            for callback in self.callbacks:
                _hook(callback, "on_end")(self.run_metrics)
        finally:
            if tracker is not None:
                tracker.on_end(Level.PIPELINE, status=status, error=self.error)

    @staticmethod
    def run_wrapper(fn: Callable[..., Any]) -> Callable[..., RunStatus]:
        """Decorate :meth:`run`: PIPELINE level, callbacks, run metrics and the final status.

        The wrapped method may return a :class:`RunStatus` (``None`` means COMPLETED).
        ``StopIteration`` (raised by :meth:`epoch_wrapper` when a callback returns ``False``)
        ends the run STOPPED; any other exception ends it FAILED (the text is kept in
        :attr:`error` and the run's log, and the status is returned, not raised); Ctrl-C ends it
        ABORTED and propagates so the runner stops.
        """

        @functools.wraps(fn)
        def wrapper(self: Pipeline, *args: Any, **kwargs: Any) -> RunStatus:
            try:
                self._on_run_start()  # a callback failing in on_start fails the run, like the body
                result = fn(self, *args, **kwargs)
            except BaseException as e:
                status = status_for_exception(e)
                if status is not RunStatus.STOPPED:
                    self.error = f"{type(e).__name__}: {e}"
                    _env_logger(self.env).error("run %s: %s", status.value, self.error, exc_info=True)
                self._on_run_end(status)
                if status is RunStatus.ABORTED:
                    raise
                return status
            status = RunStatus.COMPLETED if result is None else RunStatus.parse(result)
            self._on_run_end(status)
            return status

        return wrapper

    @staticmethod
    def epoch_wrapper(fn: Callable[..., Any]) -> Callable[..., Any]:
        """Decorate a method ``run_epoch(self, epoch_idx, ...)``: one EPOCH level per call.

        After the body, ``self.epoch_metrics`` is tracked at EPOCH level (untracked metrics such
        as ``Metric.NETWORK`` are dropped by the tracker manager), handed to every callback's
        ``on_epoch_end`` and cleared. A callback returning ``False`` raises ``StopIteration``
        after the epoch is closed, which :meth:`run_wrapper` turns into STOPPED.
        """

        @functools.wraps(fn)
        def wrapper(self: Pipeline, epoch_idx: int, *args: Any, **kwargs: Any) -> Any:
            tracker = self.tracker
            if tracker is not None:
                tracker.on_create(Level.EPOCH, epoch_idx=epoch_idx)
                tracker.on_start(Level.EPOCH)
            try:
                result = fn(self, epoch_idx, *args, **kwargs)
                if tracker is not None and self.epoch_metrics:
                    tracker.track_dict(self.epoch_metrics, step=epoch_idx, level=Level.EPOCH, epoch=epoch_idx)
                keep_going = all(
                    [
                        _hook(cb, "on_epoch_end", True)(epoch_idx, self.epoch_metrics) is not False
                        for cb in self.callbacks
                    ]
                )
            except BaseException as e:
                if tracker is not None:
                    tracker.on_end(Level.EPOCH, status=status_for_exception(e))
                raise
            finally:
                self.epoch_metrics.clear()
            if tracker is not None:
                tracker.on_end(Level.EPOCH)
            if not keep_going:
                raise StopIteration(f"stopped by a callback after epoch {epoch_idx}")
            return result

        return wrapper


def _env_logger(env: Any) -> logging.Logger:
    return getattr(env, "logger", None) or log


_NO_ENV = object()


def _hook(callback: Any, name: str, default: Any = None) -> Callable[..., Any]:
    """``callback.<name>``, or a no-op returning ``default`` for a callback without that hook."""
    method = getattr(callback, name, None)
    return method if callable(method) else (lambda *args: default)


# --------------------------------------------------------------------------- instantiation


def _import_object(path: str, *, key: str) -> Any:
    module_name, _, attr = path.rpartition(".")
    if ":" in path:
        module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise ConfigError(f"class_path {path!r} must look like 'package.module.Class'", key=key)
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ConfigError(f"class_path {path!r}: cannot import module {module_name!r}: {e}", key=key) from e
    try:
        return getattr(module, attr)
    except AttributeError:
        names = [n for n in dir(module) if not n.startswith("_")]
        close = difflib.get_close_matches(attr, names, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(
            f"class_path {path!r}: module {module_name!r} has no {attr!r}{hint}", key=key
        ) from None


def instantiate(spec: Any, *, key: str = "", **extra: Any) -> Any:
    """Build an object from ``{class_path: pkg.mod.Class, init_args: {...}}`` (LightningCLI style).

    Args:
        spec: the mapping (dict or DictConfig); ``init_args`` is optional.
        key: the settings key it came from, for error messages (``"model"``).
        **extra: keyword arguments added to ``init_args``.

    Raises:
        ConfigError: a missing/unimportable ``class_path`` or ``init_args`` that is not a mapping.
        Exception: whatever the constructor raises (bad argument values), unchanged.

    Example:
        >>> instantiate({"class_path": "collections.Counter", "init_args": {"a": 1}}, key="model")
        Counter({'a': 1})
    """
    spec = to_plain(spec)
    if not isinstance(spec, Mapping) or "class_path" not in spec:
        raise ConfigError(f"expected {{class_path: ..., init_args: {{...}}}}, got {spec!r}", key=key)
    cls = _import_object(str(spec["class_path"]), key=f"{key}.class_path" if key else "class_path")
    init_args = spec.get("init_args") or {}
    if not isinstance(init_args, Mapping):
        raise ConfigError(f"init_args must be a mapping, got {init_args!r}", key=f"{key}.init_args")
    return cls(**{**init_args, **extra})


# --------------------------------------------------------------------------- the Lightning pipeline


class LightningPipeline(Pipeline):
    """The standard pipeline: LightningModule + optional LightningDataModule + Trainer from settings.

    The constructor seeds everything (``seed_everything(config.seed, workers=True)``) and builds
    the model and the datamodule, so a bad ``init_args`` fails here; the Trainer is built by
    :meth:`build_trainer` (called by :meth:`run`) once :attr:`run_info` is known.

    Settings read: ``seed``, ``model`` (required), ``data`` (optional), ``trainer`` (Trainer
    kwargs), ``callbacks`` (list of ``{type: early_stopping|checkpoint|metrics_tracker, ...}`` or
    ``{class_path, init_args}``), and ``test`` (``auto`` (default) | ``true`` | ``false``):
    after fitting, ``trainer.test`` runs when the fit COMPLETED or STOPPED and a test loop exists
    (the module defines ``test_step`` and the datamodule or the module defines
    ``test_dataloader``), on the best checkpoint when a checkpoint callback monitors a metric,
    else on the weights the fit ended with. Its metrics are the run's RESULTS, in the same
    TRIAL_RUN. ``test: true`` makes a missing test loop an error (Lightning's); ``test: false``
    skips testing.

    Trainer defaults that differ from Lightning's (any ``trainer:`` key wins): ``default_root_dir``
    is the run's directory; the progress bar and model summary follow env.yaml's ``verbose``.

    Example (standalone, without the runner):
        >>> pipe = LightningPipeline(env, OmegaConf.create({"seed": 1, "model": {...}, "trainer": {...}}))
        >>> pipe.run_info = {"repeat_idx": 1, "seed": 1}
        >>> pipe.run()
        <RunStatus.COMPLETED: 'COMPLETED'>
    """

    def __init__(self, env: Environment, config: Any) -> None:
        super().__init__(env, config)
        import lightning as L

        seed = _get(config, "seed")
        if seed is not None:
            seed_everything(int(seed))
        self.model = instantiate(_get(config, "model"), key="model")
        if not isinstance(self.model, L.LightningModule):
            raise ConfigError(
                f"model must be a LightningModule, got {type(self.model).__name__}", key="model.class_path"
            )
        data = _get(config, "data")
        self.datamodule = instantiate(data, key="data") if data else None
        self.trainer: Any = None
        self.continue_from: str | None = None  # the last checkpoint a continued run fits from

    def build_trainer(self) -> Any:
        """Build the Trainer: ExpmanLogger in runner mode, level hooks and configured callbacks.

        Without a checkpoint callback in ``callbacks`` (and unless ``trainer.enable_checkpointing``
        is false) Lightning's default ``ModelCheckpoint`` is kept but writes into the run's
        ``artifacts/checkpoints`` instead of a ``lightning_logs``-style folder.
        """
        from lightning.pytorch.callbacks import ModelCheckpoint

        from .lightning.callbacks import build_callback
        from .lightning.trainer import ExpmanTrainer

        verbose = bool(getattr(self.env, "verbose", False))
        kwargs: dict[str, Any] = {
            "default_root_dir": str(self.env.workdir),
            "enable_progress_bar": verbose,
            "enable_model_summary": verbose,
        }
        kwargs.update(to_plain(_get(self.config, "trainer")) or {})
        for bad in ("logger", "callbacks"):
            if bad in kwargs:
                raise ConfigError(
                    f"set {bad} through env.yaml trackers / settings.callbacks, not trainer.{bad}",
                    key=f"trainer.{bad}",
                )
        callbacks = [build_callback(spec) for spec in (to_plain(_get(self.config, "callbacks")) or [])]
        if kwargs.get("enable_checkpointing", True) and not any(
            isinstance(c, ModelCheckpoint) for c in callbacks
        ):
            callbacks.append(ModelCheckpoint(dirpath=str(self.env.artifact_dir / "checkpoints")))
        # last.ckpt every epoch: an interrupted run continues from it (unless save_last is set).
        first = next((c for c in callbacks if isinstance(c, ModelCheckpoint)), None)
        if first is not None and first.save_last is None:
            first.save_last = True
        run_info = dict(self.run_info)
        self.continue_from = run_info.pop("continue_from", None)
        run_info.setdefault("workdir", str(self.env.workdir))
        self.trainer = ExpmanTrainer(
            save_dir=str(self.env.workdir),
            tracker_manager=self.tracker,
            run_info=run_info,
            callbacks=callbacks,
            **kwargs,
        )
        return self.trainer

    def has_test_loop(self) -> bool:
        """Whether the module defines ``test_step`` and a test dataloader is available."""
        import lightning as L
        from lightning.pytorch.utilities.model_helpers import is_overridden

        if not is_overridden("test_step", self.model, L.LightningModule):
            return False
        if self.datamodule is not None and is_overridden(
            "test_dataloader", self.datamodule, L.LightningDataModule
        ):
            return True
        return is_overridden("test_dataloader", self.model, L.LightningModule)

    def _test_mode(self) -> bool:
        mode = _get(self.config, "test", "auto")
        if mode in (True, False):
            return bool(mode)
        if str(mode).lower() != "auto":
            raise ConfigError(f"must be auto, true or false, got {mode!r}", key="test")
        return self.has_test_loop()

    def run(self, config: Any = None) -> RunStatus:
        """Fit, then test (see the class docstring); returns the run's status.

        The TRIAL_RUN is recorded by the trainer's ExpmanLogger and closed here, after the test.
        Exceptions propagate once the run is recorded (FAILED, or ABORTED for Ctrl-C).
        """
        from .lightning.trainer import ExpmanTrainer

        trainer = self.trainer or self.build_trainer()
        test = self._test_mode()
        logger = trainer.expman_logger if isinstance(trainer, ExpmanTrainer) else None
        try:
            trainer.fit(self.model, datamodule=self.datamodule, ckpt_path=self.continue_from)
            if test and trainer.status in (RunStatus.COMPLETED, RunStatus.STOPPED):
                # The best checkpoint when one is monitored, else the weights the fit ended with.
                best = trainer.checkpoint_callback
                ckpt = (
                    "best"
                    if best is not None and getattr(best, "monitor", None) and best.best_model_path
                    else None
                )
                trainer.test(self.model, datamodule=self.datamodule, ckpt_path=ckpt, verbose=False)
        finally:
            if logger is not None:
                logger.close()  # ends the TRIAL_RUN (runner mode: the runner owns the levels above)
        self.status = trainer.status
        return self.status


def _get(config: Any, key: str, default: Any = None) -> Any:
    if config is None:
        return default
    if isinstance(config, Mapping) or hasattr(config, "get"):
        return config.get(key, default)
    return getattr(config, key, default)


# --------------------------------------------------------------------------- registry and factory

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
        name = name or DEFAULT_PIPELINE
        factory = _REGISTRY.get(name)
        if factory is None and "." in name:
            factory = _import_object(name, key="pipeline")
        if factory is None:
            close = difflib.get_close_matches(name, _REGISTRY, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(
                f"unknown pipeline {name!r}{hint}; valid: {', '.join(registered_pipelines())} "
                "or a 'package.module.Class' path",
                key="pipeline",
            )
        return factory(env, config)
