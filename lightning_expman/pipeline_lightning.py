"""The standard pipeline: a LightningModule, an optional LightningDataModule and a Trainer, from settings.

Configured without Python code, LightningCLI-style (see :class:`LightningPipeline`); every
``{class_path, init_args}`` is built by :func:`lightning_expman.instantiate.instantiate`.
Importing this module does not import torch or lightning (the methods do).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .config._util import to_plain
from .enums import RunStatus
from .errors import ConfigError
from .instantiate import import_object, instantiate, instantiate_all, is_spec
from .pipeline_base import Pipeline
from .seeding import seed_everything

if TYPE_CHECKING:  # pragma: no cover
    from .workspace import Environment

__all__ = ["LightningPipeline"]


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
    ``trainer.logger`` (one ``{class_path, init_args}`` or a list) adds Lightning loggers (W&B,
    CSV, TensorBoard, ...) beside the ExpmanLogger, which stays first (``trainer.logger`` in
    Python is ours); see :meth:`_extra_loggers`.

    ``config`` may be a plain mapping (the runner passes one) or a ``DictConfig``;
    :attr:`config` is a ``DictConfig`` either way, built on first use.

    Example (standalone, without the runner):
        >>> pipe = LightningPipeline(env, OmegaConf.create({"seed": 1, "model": {...}, "trainer": {...}}))
        >>> pipe.run_info = {"repeat_idx": 1, "seed": 1}
        >>> pipe.run()
        <RunStatus.COMPLETED: 'COMPLETED'>
    """

    _settings: Any = None  # what was given as config (a mapping or a DictConfig)
    _config: Any = None  # the DictConfig, once built

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

    @property
    def config(self) -> Any:
        """The run's settings as a ``DictConfig`` (a plain mapping given is converted on first use).

        The runner hands this pipeline its settings as a plain dict: reading them needs no
        ``DictConfig``, and building one costs more than a millisecond per run. Code that uses
        ``pipeline.config`` gets one as before, and what it changes there is what is read after.
        """
        if self._config is None and self._settings is not None:
            from omegaconf import OmegaConf

            self._config = OmegaConf.create(self._settings)
        return self._config

    @config.setter
    def config(self, value: Any) -> None:
        from omegaconf import DictConfig

        self._settings = value
        self._config = value if isinstance(value, DictConfig) or value is None else None

    def _setting(self, key: str, default: Any = None) -> Any:
        """One top-level setting, read from the ``DictConfig`` once there is one."""
        return _get(self._config if self._config is not None else self._settings, key, default)

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
        trainer_settings = dict(to_plain(self._setting("trainer")) or {})
        if "callbacks" in trainer_settings:
            raise ConfigError(
                "list callbacks in settings.callbacks, not trainer.callbacks", key="trainer.callbacks"
            )
        loggers = self._extra_loggers(trainer_settings.pop("logger", None))
        kwargs.update(instantiate_all(trainer_settings, key="trainer"))  # plugins/profiler as specs
        specs = to_plain(self._setting("callbacks")) or []
        callbacks = [build_callback(spec, key=f"callbacks[{i}]") for i, spec in enumerate(specs)]
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
        trainer = ExpmanTrainer(
            save_dir=str(self.env.workdir),
            tracker_manager=self.tracker,
            run_info=run_info,
            callbacks=callbacks,
            logger=loggers,
            **kwargs,
        )
        if trainer.num_devices * trainer.num_nodes > 1:  # devices: auto on a machine with several GPUs
            from .config.schema import MULTI_PROCESS

            raise ConfigError(
                f"{trainer.num_devices} devices x {trainer.num_nodes} node(s): {MULTI_PROCESS}",
                key="trainer.devices",
            )
        self.trainer = trainer
        return trainer

    def _extra_loggers(self, value: Any) -> list[Any]:
        """The Lightning loggers of ``trainer.logger``, run beside the ExpmanLogger (which stays first).

        ``null``, ``true`` and ``false`` mean no extra logger: the run is recorded by the
        ExpmanLogger whatever ``trainer.logger`` says (recording is what ``expman run`` is for).
        A logger class taking ``save_dir`` that is not given one writes into the run's folder.
        """
        from lightning.pytorch.loggers import Logger

        if value is None or isinstance(value, bool):
            return []
        specs = value if isinstance(value, list) else [value]
        loggers = []
        for i, spec in enumerate(specs):
            key = f"trainer.logger[{i}]" if isinstance(value, list) else "trainer.logger"
            if not is_spec(spec):
                raise ConfigError(f"must be {{class_path: ..., init_args: {{...}}}}, got {spec!r}", key=key)
            cls = import_object(spec["class_path"], key=f"{key}.class_path")
            init_args = dict(spec.get("init_args") or {})
            if "save_dir" not in init_args and "save_dir" in _parameters(cls):
                init_args["save_dir"] = str(self.env.workdir)
            logger = instantiate({**spec, "init_args": init_args}, key=key)
            if not isinstance(logger, Logger):
                raise ConfigError(
                    f"{spec['class_path']!r} is not a lightning.pytorch.loggers.Logger",
                    key=f"{key}.class_path",
                )
            loggers.append(logger)
        return loggers

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
        mode = self._setting("test", "auto")
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


def _parameters(cls: Any) -> tuple[str, ...]:
    try:
        return tuple(inspect.signature(cls).parameters)
    except (TypeError, ValueError):
        return ()


def _get(config: Any, key: str, default: Any = None) -> Any:
    if config is None:
        return default
    if isinstance(config, Mapping) or hasattr(config, "get"):
        return config.get(key, default)
    return getattr(config, key, default)
