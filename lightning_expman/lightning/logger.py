"""The drop-in Lightning logger: ``Trainer(logger=ExpmanLogger(...))`` records every fit.

What a fit records (with no other change to user code):

* EXPERIMENT and TRIAL rows (``experiment=`` / ``trial=``; got or created by name), a TRIAL_RUN
  per ``fit`` with its run context (hyperparameters, seed, versions, host, git commit) and the
  model summary as a text artifact; under LightningCLI the CLI's resolved config is the run's
  config (and ``config.yaml`` one of its files, see :mod:`~lightning_expman.lightning.lightning_cli`);
* one EPOCH per training epoch carrying that epoch's epoch-level train *and* validation metrics
  (sanity-check validation is not an epoch);
* BATCH (step series) values of everything logged ``on_step``;
* the ``save_hyperparameters`` hyperparameters (``log_hyperparams`` -> ``log_params``);
* every checkpoint ModelCheckpoint saves, and none that it deleted since
  (:mod:`~lightning_expman.lightning.checkpoints`);
* ``trainer.test()`` / ``trainer.validate()`` metrics after a fit as the run's RESULTS;
* the final status: COMPLETED; STOPPED (+ stop epoch) when a callback such as EarlyStopping set
  ``trainer.should_stop``; FAILED with the error text; ABORTED on Ctrl-C / SIGTERM.

The logger is split by concern: this module holds the Lightning conventions (name, version,
folders, ``experiment``, pickling) and the Logger API; :mod:`.lifecycle` opens, settles and ends
runs; :mod:`.routing` sends metric dicts to BATCH / EPOCH / RESULTS; :mod:`.checkpoints` keeps the
recorded checkpoints equal to the files on disk; :mod:`.spawn` hands a run recorded in
``ddp_spawn`` workers back to the main process.

How phases are known. Lightning hands a logger only metric dicts and step numbers. The Trainer's
hooks come from :class:`~lightning_expman.lightning.hooks.LevelHooks`, which Lightning adds to
every Trainer through the ``lightning.pytorch.callbacks_factory`` entry point (see
:mod:`~lightning_expman.lightning.hooks`); it stays inert unless an ExpmanLogger is among
``trainer.loggers``. Without it (``attach_hooks=False``) the logger falls back on what Lightning
passes (:mod:`.routing`).

Run lifecycle (:mod:`.lifecycle`): a fit's run stays open for a following ``trainer.test()``
until the next fit, :meth:`ExpmanLogger.close` or process exit. Only global rank zero writes.
After every ``finalize`` the database writer thread is joined: nothing of the logger runs between
stages.

Names and paths. ``name`` and a string ``version`` are made safe as the runner does
(:func:`~lightning_expman.workspace.safe_name`): nothing is written outside ``save_dir``.

Secrets. Hyperparameters are masked (:mod:`lightning_expman.masking`) before any tracker sees
them; the checkpoints Lightning writes keep the model's own ``hyper_parameters``.

Example:
    >>> import lightning as L
    >>> from lightning_expman import ExpmanLogger
    >>> logger = ExpmanLogger(experiment="digits", trial="mlp")    # sqlite:///expman_runs/expman.db
    >>> trainer = L.Trainer(max_epochs=3, logger=logger)
    >>> trainer.fit(model, datamodule=dm)
    >>> trainer.test(model, datamodule=dm)                          # RESULTS of the same run
    >>> logger.run_id, logger.status
    (1, <RunStatus.COMPLETED: 'COMPLETED'>)
"""

from __future__ import annotations

import os
import sys
import uuid
import weakref
from argparse import Namespace
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.fabric.utilities.logger import _convert_params
from lightning.pytorch.loggers.logger import Logger
from lightning.pytorch.utilities.rank_zero import rank_zero_only
from typing_extensions import override

from ..enums import Level, RunStatus
from ..tracking.base import Tracker, TrackerManager
from ..workspace import safe_name
from .checkpoints import CheckpointRecords
from .context import safe_params, user_hparams
from .lifecycle import RunLifecycle
from .routing import MetricRouting

__all__ = ["ExpmanLogger"]


class ExpmanLogger(RunLifecycle, MetricRouting, CheckpointRecords, Logger):
    """Record Lightning fits into the experiment hierarchy (see the module docstring).

    Args:
        experiment: the EXPERIMENT name. The logger's ``name`` (the folder under ``save_dir``) is
            this name made safe as the runner does (:func:`~lightning_expman.workspace.safe_name`:
            ``"../x"`` or an absolute path never leaves ``save_dir``); ``None`` or ``""``: no
            folder level (``save_dir/version_N``, like CSVLogger) and the EXPERIMENT ``default``.
        trial: the TRIAL name.
        db: database URL; default ``sqlite:///<save_dir>/expman.db``.
        save_dir: root folder of logs, artifacts and the default database.
        trackers: more trackers beside the database one: env.yaml-style dicts
            (``{"type": "mlflow", "tracking_uri": ...}``) or :class:`Tracker` instances.
        version: the log folder version: an int ``N`` (folder ``version_N``) or a folder name
            (made safe like ``experiment``); default: the next free ``N`` under ``save_dir/name``,
            as CSVLogger does.
        attach_hooks: follow the Trainer's hooks (:class:`LevelHooks`) for exact phases; ``False``
            classifies values from what Lightning passes (see :mod:`.routing`).
        stale_after: the run's lease in seconds (default 120): a heartbeat thread renews it; a
            run whose process dies is shown LOST once it is silent this long (at once to a later
            fit on the same host). See :mod:`lightning_expman.coordination`.

    Runner mode (``expman run``) is :meth:`for_runner`: its arguments are not constructor
    arguments, so a LightningCLI config (``--print_config``) never shows them.

    Attributes:
        run_id: the database id of the last trial run (``None`` before a fit / without a DB tracker).
        status: the :class:`RunStatus` of the last trial run.
        artifact_dir: where run files go: ``<log_dir>/artifacts`` (runner mode:
            ``run_info["workdir"]/artifacts`` when given).

    Example:
        >>> logger = ExpmanLogger("digits", "mlp", trackers=[{"type": "mlflow", "tracking_uri": "sqlite:///m.db"}])
        >>> trainer = L.Trainer(logger=logger, max_epochs=5, callbacks=[EarlyStopping(min_delta_percent=1.0)])
    """

    def __init__(
        self,
        experiment: str | None = "default",
        trial: str = "default",
        db: str | None = None,
        save_dir: str | os.PathLike[str] = "expman_runs",
        trackers: Sequence[Mapping[str, Any] | Tracker] | None = None,
        *,
        version: int | str | None = None,
        attach_hooks: bool = True,
        stale_after: float | None = None,
    ) -> None:
        super().__init__()
        from .hooks import ensure_callbacks_factory

        ensure_callbacks_factory()  # the hooks reach Trainers built from now on, installed or not
        self._stale_after = stale_after
        # None / "" : like CSVLogger's ``name=None``, no folder level; the EXPERIMENT row is "default".
        self._experiment_name = str(experiment) if experiment not in (None, "") else "default"
        self._folder_name = safe_name(experiment) if experiment not in (None, "") else ""
        self._trial_name = str(trial)
        self._db_url = db
        self._save_dir = os.fspath(save_dir)
        self._tracker_specs = list(trackers or [])
        self._external_manager: TrackerManager | None = None
        self._run_info: dict[str, Any] = {}
        self._version = version
        self._attach_hooks = attach_hooks
        self._manager: TrackerManager | None = None
        self._token = uuid.uuid4().hex  # names this logger in a spawned fit's handoff (survives pickling)
        self._reset_runtime()
        self.run_id = None
        self.status = None

    @classmethod
    def for_runner(
        cls,
        tracker_manager: TrackerManager,
        run_info: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> ExpmanLogger:
        """The logger of a runner (``expman run``, :class:`ExpmanTrainer` with a manager).

        Args:
            tracker_manager: a manager whose EXPERIMENT and TRIAL are already open. The logger
                only opens/ends TRIAL_RUNs in it and never closes it (``db``/``trackers`` unused).
            run_info: keyword arguments of the TRIAL_RUN ``on_create`` (``repeat_idx``, ``seed``,
                ``config``, ``context``, ``tags``, ``workdir``).
            **kwargs: the constructor's arguments.
        """
        logger = cls(**kwargs)
        logger._external_manager = logger._manager = tracker_manager
        logger._run_info = dict(run_info or {})
        return logger

    def _reset_runtime(self) -> None:
        """Per-process state: dropped by pickling, rebuilt on the next event."""
        self._atexit_registered = False
        self._parents_open = False
        self._run_open = False
        self._settled = False  # the open run's status is final (fit ended), awaiting close
        self._handoff = False  # a spawned worker's rank zero: publish the run (spawn.py)
        self._joinable = False  # a later spawned test may join the run (spawn.py)
        self._owner: str | None = None  # the run's lease token, for that test
        self._state_at = 0.0  # when run_id/status last changed in this process
        self._error: str | None = None
        self._stop_epoch: int | None = None
        self._exception: BaseException | None = None
        self._trainer_ref: weakref.ReferenceType[pl.Trainer] | None = None
        self._hooked = False
        self._stage: str | None = None
        self._phase: str | None = None
        self._epoch: int | None = None
        self._epoch_open = False
        self._pipelines: list[str] = []
        self._params: dict[str, Any] = {}
        self._ckpt_epochs: dict[str, int | None] = {}
        self._ckpt_callbacks: list[Any] = []
        # fallback (no hooks): values of the current epoch, resolved when the epoch changes
        self._fb_epoch: int | None = None
        self._fb_values: dict[str, list[tuple[int | None, Any]]] = {}
        self._fb_fit_done = False

    # ------------------------------------------------------------------ Lightning conventions
    @property
    @override
    def name(self) -> str:
        """The experiment's folder under ``save_dir`` (the experiment name made safe; may be ``""``)."""
        return self._folder_name

    @property
    @override
    def version(self) -> int | str:
        """``N`` of ``version_N``: the next free one under ``save_dir/name`` (computed once, like
        CSVLogger), or the folder name given as ``version=`` (made safe)."""
        if self._version is None:
            self._version = self._next_version()
        elif isinstance(self._version, str):
            self._version = safe_name(self._version)
        return self._version

    def _next_version(self) -> int:
        root = Path(self.root_dir)
        existing = []
        if root.is_dir():
            for entry in root.iterdir():
                if entry.is_dir() and entry.name.startswith("version_") and entry.name[8:].isdigit():
                    existing.append(int(entry.name[8:]))
        return max(existing) + 1 if existing else 0

    @property
    @override
    def save_dir(self) -> str:
        return self._save_dir

    @property
    @override
    def root_dir(self) -> str:
        return os.path.join(self._save_dir, self.name) if self.name else self._save_dir

    @property
    @override
    def log_dir(self) -> str:
        """``save_dir/name/version_N`` (runner mode: ``run_info["workdir"]`` when given)."""
        workdir = self._run_info.get("workdir")
        if workdir:
            return os.fspath(workdir)
        version = self.version if isinstance(self.version, str) else f"version_{self.version}"
        return os.path.join(self.root_dir, version)

    @property
    def artifact_dir(self) -> str:
        """Folder of the run's files (checkpoints, metrics.log, model summary)."""
        return os.path.join(self.log_dir, "artifacts")

    @property
    def experiment(self) -> Any:
        """The :class:`TrackerManager` on rank zero (built on first access), a no-op dummy elsewhere."""
        if rank_zero_only.rank > 0:
            from lightning.fabric.loggers.logger import _DummyExperiment

            return _DummyExperiment()
        return self.manager

    @property
    def manager(self) -> TrackerManager:
        """The tracker manager: the given one (runner mode) or the DB tracker plus ``trackers``."""
        if self._manager is None:
            self._manager = self._build_manager()
        return self._manager

    def _build_manager(self) -> TrackerManager:
        from ..tracking.db import DBTracker
        from ..tracking.registry import build_tracker

        url = self._db_url
        if url is None:
            Path(self._save_dir).mkdir(parents=True, exist_ok=True)
            url = f"sqlite:///{Path(self._save_dir).resolve() / 'expman.db'}"
        trackers: list[Tracker] = [DBTracker(url, stale_after=self._stale_after)]
        trackers += [build_tracker(spec, workspace=self._save_dir) for spec in self._tracker_specs]
        return TrackerManager(trackers)

    def _db_tracker(self) -> Any:
        from ..tracking.db import DBTracker

        return self.manager.get(DBTracker) if self._manager is not None else None

    # ------------------------------------------------------------------ pickling
    def __getstate__(self) -> dict[str, Any]:
        # A Trainer holding the logger must pickle (spawn strategies, checkpoints of the trainer):
        # connections, threads, weak references and the open run belong to this process only.
        # The folder is fixed first: every spawned stage of this logger then uses the same one.
        _ = self.version
        state = self.__dict__.copy()
        if self._external_manager is None:
            state["_manager"] = None
        runtime = ExpmanLogger.__new__(ExpmanLogger)
        runtime._reset_runtime()
        state.update(runtime.__dict__)
        return state

    # ------------------------------------------------------------------ trainer binding
    def _bind_trainer(self, trainer: pl.Trainer) -> None:
        """Called by LevelHooks at every ``setup``: phases now come from the Trainer's hooks."""
        self._trainer_ref = weakref.ref(trainer)
        self._hooked = True

    def _trainer(self) -> pl.Trainer | None:
        return self._trainer_ref() if self._trainer_ref is not None else None

    # ------------------------------------------------------------------ Logger API
    @override
    @rank_zero_only
    def log_hyperparams(self, params: dict[str, Any] | Namespace, *args: Any, **kwargs: Any) -> None:
        """Record ``save_hyperparameters`` values as the open run's params (each key once per run)."""
        values = safe_params(user_hparams(_convert_params(params) or {}))
        if not values:
            return
        if self._run_open and self._settled and self._stage != "fit":
            return  # test()/validate() after the fit: the params describe the fit, keep them
        self._ensure_run()
        new = {k: v for k, v in values.items() if k not in self._params or self._params[k] != v}
        if new:
            self._params.update(new)
            self.manager.log_params(new)

    @override
    def save(self) -> None:
        """Nothing to do: trackers buffer and flush on their own (epoch end, timer, finalize)."""

    @override
    @rank_zero_only
    def finalize(self, status: str) -> None:
        """Lightning calls this at the end of every fit/validate/test and on every exception.

        ``"failed"`` (any exception, Ctrl-C included) ends the run FAILED or ABORTED using the
        exception LevelHooks recorded (or the one being handled). ``"success"`` settles and flushes
        the run, which stays open for a following test; called outside a running Trainer (by
        user code) it closes the run.
        """
        if self._manager is None:
            return
        if status == "finished":  # SLURM's requeue signal, before its hpc checkpoint: the fit goes on
            self.manager.flush()
            return
        if self._run_open:
            self._reconcile_checkpoints()
        try:
            if status != "success":
                self._fail(self._exception or sys.exc_info()[1])
                self.manager.flush()
                return
            trainer = self._trainer()
            in_teardown = trainer is not None and trainer.state.status == "running"
            if self._run_open and not in_teardown and (self._hooked or self._fb_fit_done):
                self._end_run()
            elif self._run_open:
                if not self._hooked:
                    self._fb_fit_done = True
                    self._fallback_resolve_epoch()
                if not self._settled:
                    self._settle(RunStatus.COMPLETED)
                self._write_status_now()
                return
            self.manager.flush()
        finally:
            self._stop_writer()

    def add_artifact(self, path: str | os.PathLike[str], artifact_type: str | None = None) -> None:
        """Record a file produced by user code as an artifact of the open trial run."""
        if rank_zero_only.rank > 0:
            return
        self._ensure_run()
        self.manager.on_add_artifact(Level.TRIAL_RUN, os.fspath(path), artifact_type)
