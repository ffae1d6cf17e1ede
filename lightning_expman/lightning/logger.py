"""The drop-in Lightning logger: ``Trainer(logger=ExpmanLogger(...))`` records every fit.

What a fit records (with no other change to user code):

* EXPERIMENT and TRIAL rows (``experiment=`` / ``trial=``; got or created by name), a TRIAL_RUN
  per ``fit`` with its run context (hyperparameters, seed, versions, host, git commit) and the
  model summary as a text artifact;
* one EPOCH per training epoch carrying that epoch's epoch-level train *and* validation metrics
  (sanity-check validation is not an epoch);
* BATCH (step series) values of everything logged ``on_step``;
* the ``save_hyperparameters`` hyperparameters (``log_hyperparams`` -> ``log_params``);
* every checkpoint ModelCheckpoint saves (linked to its epoch; the final best one also to the
  run's RESULTS); a file that ModelCheckpoint deletes later (top-k rotation, a replaced best)
  is reported to the trackers with ``on_remove_artifact``, so the recorded checkpoints are
  exactly the files on disk;
* ``trainer.test()`` / ``trainer.validate()`` metrics after a fit as the run's RESULTS;
* the final status: COMPLETED; STOPPED (+ stop epoch) when a callback such as EarlyStopping set
  ``trainer.should_stop``; FAILED with the error text; ABORTED on Ctrl-C / SIGTERM.

Run lifecycle. The TRIAL_RUN opens when a fit starts. When the fit ends its status is settled
and written to the database at once, but the run stays open so that a following
``trainer.test()`` lands in the same run's RESULTS. It is closed by the next fit, by
:meth:`ExpmanLogger.close` (or a ``finalize`` call outside a running Trainer), or at process
exit. A failed or interrupted fit closes it immediately. Only global rank zero writes. After
every ``finalize`` (the end of each ``fit`` / ``test`` / ``validate``) the database writer thread
is joined: nothing of the logger runs between stages (the next value starts it again).

What a crash can lose. Values are buffered and written by a background thread at every epoch
end and at least every ``flush_interval`` (1 s by default, see
:class:`~lightning_expman.tracking.db.DBTracker`); Ctrl-C, SIGTERM, exceptions and a normal
exit flush everything. A process killed with SIGKILL (or the OOM killer) cannot flush: it loses
at most the values logged in its last ``flush_interval`` seconds (and the current epoch's
values not yet flushed), and its run keeps the status RUNNING until its heartbeat goes stale.

Names and paths. ``name`` (the folder under ``save_dir``) and a string ``version`` are made
safe as the runner does (:func:`~lightning_expman.workspace.safe_name`): ``experiment="../x"``,
an absolute name or ``version="../x"`` never write outside ``save_dir``; the EXPERIMENT row keeps
the name as given. Checkpoints saved to fsspec URLs (``memory://``, ``s3://``) are recorded with
their URL.

Secrets. Hyperparameters are masked (:mod:`lightning_expman.masking`) before any tracker sees
them; the checkpoints Lightning writes keep the model's own ``hyper_parameters``.

How phases are known. Lightning hands a logger only metric dicts and step numbers. When it hands
the logger the Trainer (Lightning reads ``logger.experiment`` in ``_call_setup_hook`` with the
trainer in scope), the logger attaches :class:`~lightning_expman.lightning.hooks.LevelHooks`, which
reports the exact phase (train step / epoch end / validation / test / exceptions). Without it
(``attach_hooks=False``, or a Lightning that stops exposing the trainer) the logger falls back on
what Lightning passes: the ``epoch`` key Lightning adds to every dict, the ``_step`` / ``_epoch``
suffixes of ``on_step=True, on_epoch=True`` metrics, and how many values a name got in an epoch
(once -> an epoch value, several -> a step series).

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

import atexit
import logging
import os
import sys
import weakref
from argparse import Namespace
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.fabric.utilities.logger import _convert_params
from lightning.pytorch.callbacks import EarlyStopping as _LightningEarlyStopping
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers.logger import Logger
from lightning.pytorch.utilities.rank_zero import rank_zero_only
from typing_extensions import override

from ..enums import Level, RunStatus
from ..masking import mask_text
from ..tracking.base import Tracker, TrackerManager, status_for_exception
from ..workspace import safe_name
from .context import collect_context, module_hparams, resolve_seed, safe_params, write_model_summary

__all__ = ["ExpmanLogger"]

log = logging.getLogger(__name__)

_STEP_PHASES = frozenset({"train_step", "eval_step"})


class ExpmanLogger(Logger):
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
        tracker_manager: runner mode: a manager whose EXPERIMENT and TRIAL are already open. The
            logger then only opens/ends TRIAL_RUNs in it and never closes it (``db``/``trackers``
            are ignored).
        run_info: keyword arguments of the TRIAL_RUN ``on_create`` (``repeat_idx``, ``seed``,
            ``config``, ``context``, ``tags``, ``workdir``).
        version: the log folder version: an int ``N`` (folder ``version_N``) or a folder name
            (made safe like ``experiment``); default: the next free ``N`` under ``save_dir/name``,
            as CSVLogger does.
        attach_hooks: attach :class:`LevelHooks` to the trainer when the logger can find it.
        stale_after: the run's lease in seconds (default 120): a heartbeat thread renews it; a
            run whose process dies is shown LOST once it is silent this long (at once to a later
            fit on the same host). See :mod:`lightning_expman.coordination`.

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
        tracker_manager: TrackerManager | None = None,
        run_info: Mapping[str, Any] | None = None,
        version: int | str | None = None,
        attach_hooks: bool = True,
        stale_after: float | None = None,
    ) -> None:
        super().__init__()
        self._stale_after = stale_after
        # None / "" : like CSVLogger's ``name=None``, no folder level; the EXPERIMENT row is "default".
        self._experiment_name = str(experiment) if experiment not in (None, "") else "default"
        self._folder_name = safe_name(experiment) if experiment not in (None, "") else ""
        self._trial_name = str(trial)
        self._db_url = db
        self._save_dir = os.fspath(save_dir)
        self._tracker_specs = list(trackers or [])
        self._external_manager = tracker_manager
        self._run_info = dict(run_info or {})
        self._version = version
        self._attach_hooks = attach_hooks
        self._manager: TrackerManager | None = tracker_manager
        self._reset_runtime()
        self.run_id: int | None = None
        self.status: RunStatus | None = None

    def _reset_runtime(self) -> None:
        """Per-process state: dropped by pickling, rebuilt on the next event."""
        self._atexit_registered = False
        self._parents_open = False
        self._run_open = False
        self._settled = False  # the open run's status is final (fit ended), awaiting close
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
        """The :class:`TrackerManager` (rank zero), built on first access.

        Lightning reads this property in ``_call_setup_hook`` with the trainer in scope, right before
        the callbacks' ``setup``: the logger uses that moment to attach :class:`LevelHooks`.
        """
        if self._attach_hooks:
            trainer = _trainer_in_caller_frames()
            if trainer is not None:
                self._attach_level_hooks(trainer)
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
        state = self.__dict__.copy()
        if self._external_manager is None:
            state["_manager"] = None
        runtime = ExpmanLogger.__new__(ExpmanLogger)
        runtime._reset_runtime()
        state.update(runtime.__dict__)
        return state

    # ------------------------------------------------------------------ trainer binding
    def _attach_level_hooks(self, trainer: pl.Trainer) -> None:
        from .hooks import LevelHooks

        # LevelHooks.setup binds the trainer (and switches the logger to phase information) when
        # Lightning calls it, right after this read of ``experiment``.
        if not any(isinstance(cb, LevelHooks) for cb in trainer.callbacks):
            # First in line: the epoch is open before other callbacks (LearningRateMonitor...) log.
            trainer.callbacks.insert(0, LevelHooks())
        from .continuation import attach

        attach(trainer)  # the run id in every checkpoint; a restored one continues its run

    def _bind_trainer(self, trainer: pl.Trainer) -> None:
        self._trainer_ref = weakref.ref(trainer)
        self._hooked = True

    def _trainer(self) -> pl.Trainer | None:
        return self._trainer_ref() if self._trainer_ref is not None else None

    # ------------------------------------------------------------------ run lifecycle
    def _ensure_parents(self) -> None:
        if self._external_manager is not None or self._parents_open:
            return
        manager = self.manager
        manager.on_create(Level.EXPERIMENT, name=self._experiment_name, workdir=self._save_dir)
        manager.on_start(Level.EXPERIMENT)
        manager.on_create(Level.TRIAL, name=self._trial_name, workdir=self.root_dir)
        manager.on_start(Level.TRIAL)
        self._parents_open = True

    def _register_atexit(self) -> None:
        if self._atexit_registered:
            return
        # The DB writer flushes its buffers in its own atexit handler; handlers run last-in
        # first-out, so import it first: ours (registered after) ends the run before that flush.
        import lightning_expman.db.writer  # noqa: F401

        # One callable, no extra arguments: tools that replace atexit.register (test suites)
        # often accept only ``register(func)``.
        atexit.register(_closer_at_exit(weakref.ref(self)))
        self._atexit_registered = True

    def _open_run(self, trainer: pl.Trainer | None = None, pl_module: Any = None) -> None:
        self._end_run()
        self._register_atexit()
        self._ensure_parents()
        info = dict(self._run_info)
        seed = resolve_seed(info)
        datamodule = getattr(trainer, "datamodule", None) if trainer is not None else None
        hparams = module_hparams(pl_module, datamodule)
        info["seed"] = seed
        info["context"] = collect_context(seed=seed, hparams=hparams, extra=info.get("context"))
        if info.get("config") is None and hparams:
            info["config"] = hparams  # drop-in: the module's hyperparameters are the run config
        info.setdefault("workdir", self.log_dir)
        manager = self.manager
        manager.on_create(Level.TRIAL_RUN, **info)
        manager.on_start(Level.TRIAL_RUN)
        db = self._db_tracker()
        self.run_id = getattr(db, "trial_run_id", None)
        self.status = RunStatus.RUNNING
        self._run_open = True
        self._settled = False
        self._error = None
        self._stop_epoch = None
        self._exception = None
        self._epoch = None
        self._epoch_open = False
        self._pipelines = []
        self._params = {}
        self._ckpt_epochs = {}
        self._ckpt_callbacks = []
        self._fb_epoch = None
        self._fb_values = {}
        self._fb_fit_done = False

    def _ensure_run(self) -> None:
        if not self._run_open:
            trainer = self._trainer()
            self._open_run(trainer, getattr(trainer, "lightning_module", None) if trainer else None)

    def _close_inner(self, status: RunStatus, error: str | None = None) -> None:
        """End the open EPOCH and PIPELINE levels (innermost first)."""
        manager = self.manager
        self._fallback_resolve_epoch()
        if self._epoch_open:
            self._epoch_open = False
            manager.on_end(Level.EPOCH, status=status, error=error)
        while self._pipelines:
            self._pipelines.pop()
            manager.on_end(Level.PIPELINE, status=status, error=error)

    def _settle(self, status: RunStatus, error: str | None = None, stop_epoch: int | None = None) -> None:
        """Fix the open run's final status (it stays open for a following test)."""
        self.status = status
        self._error = error
        self._stop_epoch = stop_epoch
        self._settled = True

    def _write_status_now(self) -> None:
        """Flush and write the settled status to the database while the run stays open.

        Without this a fit-only script would show RUNNING until the process exits; the final
        ``on_end`` writes the same status again (with the end time of the last evaluation).
        """
        self.manager.flush()
        db = self._db_tracker()
        run = getattr(db, "trial_run_id", None)
        if run is not None and self.status is not None:
            db.manager.finish_trial_run(
                run, self.status.value, error=self._error, stop_epoch=self._stop_epoch
            )
        from ..tracking.mlflow import MLflowTracker

        mlflow = self.manager.get(MLflowTracker)
        if mlflow is not None and self.status is not None:
            mlflow.settle(self.status, error=self._error, stop_epoch=self._stop_epoch)

    def _end_run(self, status: RunStatus | None = None, error: str | None = None) -> None:
        """End the open TRIAL_RUN with ``status`` (default: the settled one, else ABORTED)."""
        if not self._run_open:
            return
        if status is None:
            if self._settled and self.status is not None:
                status, error = self.status, self._error
            else:  # the process is leaving (or a new fit starts) while this run never finished
                status, error = RunStatus.ABORTED, error or "the run ended before its fit finished"
        self._run_open = False
        self._settled = True
        self.status = status
        self._error = error
        try:
            self._close_inner(status, error)
        finally:
            self.manager.on_end(Level.TRIAL_RUN, status=status, error=error, stop_epoch=self._stop_epoch)

    def _fail(self, exc: BaseException | None) -> None:
        """A stage raised: end the run FAILED (ABORTED for Ctrl-C / SIGTERM) with the error text."""
        status = status_for_exception(exc) if exc is not None else RunStatus.FAILED
        if status is RunStatus.STOPPED:
            status = RunStatus.FAILED
        error = "failed (no exception available)"
        if exc is not None:
            error = mask_text(f"{type(exc).__name__}: {exc}")
        if self._run_open:
            self._stop_epoch = None
            self._end_run(status, error)
        self.status = status
        self._error = error

    # ------------------------------------------------------------------ hooks (from LevelHooks)
    def _on_stage_setup(self, trainer: pl.Trainer, pl_module: Any, stage: str) -> None:
        self._stage = stage
        self._phase = None
        if stage == "fit" or (stage in ("validate", "test") and not self._run_open):
            # A fit is a new trial run; a test/validate without an open run gets its own
            # (predict logs nothing and opens nothing).
            self._open_run(trainer, pl_module)

    def _on_pipeline_start(self, stage: str, trainer: pl.Trainer, pl_module: Any) -> None:
        self._ensure_run()
        manager = self.manager
        manager.on_create(Level.PIPELINE, stage=stage)
        manager.on_start(Level.PIPELINE)
        self._pipelines.append(stage)
        if stage == "fit":
            path = write_model_summary(pl_module, self._free_path("model_summary", ".txt"))
            if path is not None:
                manager.on_add_artifact(Level.TRIAL_RUN, path, "model_summary")

    def _free_path(self, stem: str, suffix: str) -> str:
        """``artifact_dir/stem.suffix``, or ``stem-2.suffix``... when an earlier fit of this logger
        (same log_dir) wrote that file: each run's artifact stays what it was."""
        path = os.path.join(self.artifact_dir, stem + suffix)
        n = 1
        while os.path.exists(path):
            n += 1
            path = os.path.join(self.artifact_dir, f"{stem}-{n}{suffix}")
        return path

    def _on_pipeline_end(self, stage: str, trainer: pl.Trainer) -> None:
        if not self._run_open:
            return
        if stage == "fit":
            self._settle(*self._fit_outcome(trainer))
            self._reconcile_checkpoints()  # the last save may have deleted its predecessor
            self._record_best_checkpoints(trainer)
            self._close_inner(self.status or RunStatus.COMPLETED)
        elif self._pipelines:
            self._pipelines.pop()
            self.manager.on_end(Level.PIPELINE, status=RunStatus.COMPLETED)

    def _on_epoch_start(self, epoch: int) -> None:
        self._ensure_run()
        manager = self.manager
        if self._epoch_open:
            manager.on_end(Level.EPOCH, status=RunStatus.COMPLETED)  # the DB tracker flushes here
        self._epoch = int(epoch)
        manager.on_create(Level.EPOCH, epoch_idx=self._epoch)
        manager.on_start(Level.EPOCH)
        self._epoch_open = True
        self._phase = "train_step"

    def _set_phase(self, phase: str) -> None:
        self._phase = phase

    def _record_exception(self, exception: BaseException) -> None:
        self._exception = exception

    @staticmethod
    def _fit_outcome(trainer: pl.Trainer) -> tuple[RunStatus, str | None, int | None]:
        """COMPLETED, or STOPPED with the stop epoch when a callback asked the trainer to stop."""
        if not trainer.should_stop:
            return RunStatus.COMPLETED, None, None
        stopped = [
            cb.stopped_epoch
            for cb in trainer.callbacks
            if isinstance(cb, _LightningEarlyStopping) and cb.stopped_epoch
        ]
        # EarlyStopping stores 0 for "not stopped": fall back on the last epoch trained.
        stop_epoch = max(stopped) if stopped else max(trainer.current_epoch - 1, 0)
        return RunStatus.STOPPED, None, stop_epoch

    # ------------------------------------------------------------------ Logger API
    @override
    @rank_zero_only
    def log_hyperparams(self, params: dict[str, Any] | Namespace, *args: Any, **kwargs: Any) -> None:
        """Record ``save_hyperparameters`` values as the open run's params (each key once per run)."""
        values = safe_params(_convert_params(params))
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
    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Route one dict of values to BATCH (step series), EPOCH, or the run's RESULTS."""
        if not self._run_open:
            self._ensure_run()
        values = dict(metrics)
        epoch = values.pop("epoch", None)  # Lightning's convenience key, not a metric
        if not values:
            return
        if not self._hooked:
            self._fallback_log(values, step, epoch)
            return
        phase = self._phase
        manager = self.manager
        if phase in _STEP_PHASES:
            manager.track_dict(values, step, level=Level.BATCH, epoch=self._epoch)
        elif phase == "train_epoch" and self._stage == "fit":
            idx = int(epoch) if epoch is not None else self._epoch
            manager.track_dict(values, step, level=Level.EPOCH, epoch=idx)
        elif phase == "sanity":
            return
        elif phase is None and self._stage == "fit" and self._epoch is None:
            # Before the first epoch (e.g. a LearningRateMonitor in on_train_start): a step point.
            manager.track_dict(values, step, level=Level.BATCH, epoch=0)
        else:
            manager.track_dict(values, None, level=Level.TRIAL_RUN)

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

    def _stop_writer(self) -> None:
        """Join the database writer thread after each stage: nothing of ours runs between
        ``fit``/``test`` calls or after the last one (the next write starts it again)."""
        if self._external_manager is None:
            db = self._db_tracker()
            if db is not None:
                db.close()

    @override
    @rank_zero_only
    def after_save_checkpoint(self, checkpoint_callback: ModelCheckpoint) -> None:
        """Record each new checkpoint file as an artifact of its epoch (and of the run).

        Files rewritten under the same name (``last.ckpt``) are recorded once; files that top-k
        rotation deleted since are reported removed (:meth:`_reconcile_checkpoints`); the final
        best one is linked to RESULTS when the fit ends.
        """
        if not self._run_open:
            return
        # ModelCheckpoint deletes the file a new one replaces right *after* this call returns:
        # deletions are seen at the next save, at fit end, or at once through CheckpointCallback.
        self._reconcile_checkpoints()
        if checkpoint_callback not in self._ckpt_callbacks:
            self._ckpt_callbacks.append(checkpoint_callback)
        candidates = [
            getattr(checkpoint_callback, "_last_checkpoint_saved", None),
            checkpoint_callback.best_model_path,
            checkpoint_callback.last_model_path,
            *checkpoint_callback.best_k_models,
        ]
        epoch = self._epoch if self._hooked else self._fb_epoch
        for path in candidates:
            if not path or path in self._ckpt_epochs or not _is_file(path):
                continue
            self._ckpt_epochs[path] = epoch
            self.manager.on_checkpoint(
                None, path, _checkpoint_metrics(checkpoint_callback, path), epoch=epoch, best=False
            )

    def _reconcile_checkpoints(self) -> None:
        """Report every checkpoint recorded for the open run whose file is gone.

        Lightning's ModelCheckpoint has no public hook for the files it deletes (top-k rotation,
        a replaced best or last file), so the recorded paths are compared with the disk.
        """
        gone = [path for path in self._ckpt_epochs if not _is_file(path)]
        for path in gone:
            self._forget_checkpoint(path)

    def _forget_checkpoint(self, path: str) -> None:
        epoch = self._ckpt_epochs.pop(path)
        self.manager.on_remove_artifact(Level.TRIAL_RUN, path, "checkpoint", epoch=epoch)

    @rank_zero_only
    def checkpoint_removed(self, path: str | os.PathLike[str]) -> None:
        """A checkpoint callback deleted ``path``: drop it from the run's artifacts now.

        :class:`~lightning_expman.callbacks.CheckpointCallback` calls this from
        ``_remove_checkpoint``; for other ModelCheckpoints the logger notices at the next save
        or at fit end. A path that still exists (or was never recorded) is ignored.
        """
        path = os.fspath(path)
        if self._run_open and path in self._ckpt_epochs and not _is_file(path):
            self._forget_checkpoint(path)

    def _record_best_checkpoints(self, trainer: pl.Trainer | None) -> None:
        callbacks = list(self._ckpt_callbacks)
        if trainer is not None:
            callbacks += [cb for cb in trainer.checkpoint_callbacks if cb not in callbacks]
        for cb in callbacks:
            best = getattr(cb, "best_model_path", "")
            if best and _is_file(best):
                epoch = self._ckpt_epochs.get(best, self._epoch)
                self.manager.on_checkpoint(None, best, _checkpoint_metrics(cb, best), epoch=epoch, best=True)

    @rank_zero_only
    def log_per_label(self, name: str, values: Any, labels: Sequence[str] | None = None) -> None:
        """Record a per-label metric: a vector (torchmetrics with ``average=None``) or ``{label: value}``.

        ``LightningModule.log`` takes scalars only, so call this from the module, typically at
        epoch end. While fitting the value lands on the current epoch (nothing is recorded during
        the sanity check); in ``test()`` / ``validate()`` it becomes a RESULTS metric of the run.
        The stored total is the mean over labels.

        Example:
            >>> def on_validation_epoch_end(self):
            ...     per_class = self.val_f1.compute()  # MulticlassF1Score(average=None)
            ...     self.log("val_f1", per_class.mean())
            ...     self.logger.log_per_label("val_f1_per_class", per_class, labels=self.class_names)
        """
        if self._phase == "sanity":
            return
        self._ensure_run()
        fitting = self._stage == "fit" if self._hooked else not self._fb_fit_done
        epoch = self._epoch if self._hooked else self._fb_epoch
        if not fitting:
            self.manager.track(name, values, labels=labels, level=Level.TRIAL_RUN)
        elif epoch is not None:  # None: the sanity check, seen without LevelHooks
            self.manager.track(name, values, labels=labels, level=Level.EPOCH, epoch=epoch)

    def add_artifact(self, path: str | os.PathLike[str], artifact_type: str | None = None) -> None:
        """Record a file produced by user code as an artifact of the open trial run."""
        if rank_zero_only.rank > 0:
            return
        self._ensure_run()
        self.manager.on_add_artifact(Level.TRIAL_RUN, os.fspath(path), artifact_type)

    def close(self) -> None:
        """End the open run; in drop-in mode also end TRIAL/EXPERIMENT and close the trackers.

        In runner mode (``tracker_manager`` given) only the run is ended: the runner owns the rest.
        Safe to call several times; the next fit reopens everything. A run used without a Trainer
        (``log_metrics`` ... ``close()``) ends COMPLETED; one whose fit is still running (or one
        left open at process exit) ends ABORTED. Every thread the logger started is joined.
        """
        self._close(explicit=True)

    def _close(self, explicit: bool) -> None:
        if rank_zero_only.rank > 0 or self._manager is None:
            return
        if explicit and self._run_open and not self._settled:
            trainer = self._trainer()
            if trainer is None or trainer.state.status != "running":
                self._settle(RunStatus.COMPLETED)
        manager = self.manager
        try:
            self._end_run()
        finally:
            if self._external_manager is None:
                try:
                    if self._parents_open:
                        self._parents_open = False
                        manager.on_end(Level.TRIAL, status=RunStatus.COMPLETED)
                        manager.on_end(Level.EXPERIMENT, status=RunStatus.COMPLETED)
                finally:
                    manager.close()
            else:
                manager.flush()

    # ------------------------------------------------------------------ fallback (no hooks)
    def _fallback_log(self, values: dict[str, Any], step: int | None, epoch: Any) -> None:
        """Classify values from what Lightning passes when no LevelHooks tells the phase."""
        manager = self.manager
        if self._fb_fit_done:
            # After the fit: evaluation results of the same run.
            manager.track_dict(values, None, level=Level.TRIAL_RUN)
            return
        if epoch is None:
            # No Lightning epoch key: a direct call (or a user-logged "step"): take it as given.
            level = Level.BATCH if step is not None else Level.TRIAL_RUN
            manager.track_dict(values, step, level=level, epoch=self._fb_epoch)
            return
        idx = int(epoch)
        if idx != self._fb_epoch:
            self._fallback_resolve_epoch()
            self._fb_epoch = idx
        steps = {k: v for k, v in values.items() if k.endswith("_step")}
        epochs = {k: v for k, v in values.items() if k.endswith("_epoch")}
        if steps:
            manager.track_dict(steps, step, level=Level.BATCH, epoch=self._fb_epoch)
        if epochs and self._fb_epoch is not None:
            self._fallback_open_epoch()
            manager.track_dict(epochs, step, level=Level.EPOCH, epoch=self._fb_epoch)
        for name, value in values.items():
            if name not in steps and name not in epochs:
                self._fb_values.setdefault(name, []).append((step, value))

    def _fallback_open_epoch(self) -> None:
        if not self._epoch_open or self._epoch != self._fb_epoch:
            manager = self.manager
            if self._epoch_open:
                manager.on_end(Level.EPOCH, status=RunStatus.COMPLETED)
            self._epoch = self._fb_epoch
            manager.on_create(Level.EPOCH, epoch_idx=self._epoch)
            manager.on_start(Level.EPOCH)
            self._epoch_open = True

    def _fallback_resolve_epoch(self) -> None:
        """A name logged once in an epoch is an epoch value; several times, a step series."""
        if not self._fb_values:
            return
        pending, self._fb_values = self._fb_values, {}
        manager = self.manager
        epoch_values = {name: points[0][1] for name, points in pending.items() if len(points) == 1}
        if epoch_values and self._fb_epoch is not None:
            self._fallback_open_epoch()
            manager.track_dict(epoch_values, None, level=Level.EPOCH, epoch=self._fb_epoch)
        for name, points in pending.items():
            if len(points) > 1:
                for step, value in points:
                    manager.track_dict({name: value}, step, level=Level.BATCH, epoch=self._fb_epoch)


def _is_file(path: str) -> bool:
    """Whether a checkpoint file exists: local paths, and fsspec URLs (``memory://``, ``s3://``...)
    through the file system Lightning itself saved them with."""
    if "://" not in path:
        return os.path.isfile(path)
    from lightning.fabric.utilities.cloud_io import get_filesystem

    try:
        return bool(get_filesystem(path).isfile(path))
    except Exception:  # an unreachable store: the checkpoint is not recorded, the fit goes on
        log.debug("ExpmanLogger: cannot check checkpoint %s", path, exc_info=True)
        return False


def _checkpoint_metrics(cb: ModelCheckpoint, path: str) -> dict[str, float] | None:
    score = cb.best_k_models.get(path)
    if cb.monitor and score is not None:
        return {cb.monitor: float(score)}
    return None


def _trainer_in_caller_frames(depth: int = 6) -> pl.Trainer | None:
    """The Trainer of the Lightning function reading ``logger.experiment`` (``_call_setup_hook``)."""
    frame = sys._getframe(2)
    for _ in range(depth):
        if frame is None:
            return None
        candidate = frame.f_locals.get("trainer")
        if isinstance(candidate, pl.Trainer):
            return candidate
        frame = frame.f_back
    return None


def _closer_at_exit(ref: weakref.ReferenceType[ExpmanLogger]) -> Callable[[], None]:
    """The atexit handler of one logger: end a run still open (settled status, else ABORTED)."""

    def close_at_exit() -> None:
        logger = ref()
        if logger is None or logger._manager is None:
            return
        try:
            logger._close(explicit=False)
        except Exception as e:  # never turn a clean exit into a traceback
            log.error("ExpmanLogger: closing at exit failed: %s", e)

    return close_at_exit
