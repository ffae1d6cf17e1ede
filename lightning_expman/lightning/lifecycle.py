"""The run-lifecycle concern of :class:`~lightning_expman.lightning.logger.ExpmanLogger`.

The TRIAL_RUN opens when a fit starts (EXPERIMENT and TRIAL, got or created by name, the first
time). When the fit ends its status is settled and written to the database at once, but the run
stays open so that a following ``trainer.test()`` lands in the same run's RESULTS. It is closed
by the next fit, by ``close()`` (or a ``finalize`` call outside a running Trainer), or at process
exit (an ``atexit`` handler: a run still unsettled then ends ABORTED). A failed or interrupted fit
ends it at once. The stage hooks below are called by
:class:`~lightning_expman.lightning.hooks.LevelHooks`; spawned workers hand the run back through
:mod:`~lightning_expman.lightning.spawn`.

What a crash can lose. Values are buffered and written by a background thread soon after
every epoch end (epochs shorter than 0.25 s share a write) and at least every
``flush_interval`` (1 s by default, see :class:`~lightning_expman.tracking.db.DBTracker`);
Ctrl-C, SIGTERM, exceptions and a normal exit flush everything. A process killed with SIGKILL
(or the OOM killer) cannot flush: it loses at most the values logged in its last
``flush_interval`` seconds, and its run keeps the status RUNNING until its heartbeat goes stale
(then it shows LOST).
"""

from __future__ import annotations

import atexit
import logging
import os
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from lightning.pytorch.callbacks import EarlyStopping as _LightningEarlyStopping
from lightning.pytorch.utilities.rank_zero import rank_zero_only

from ..enums import Level, RunStatus
from ..masking import mask_text
from ..tracking.base import TrackerManager, status_for_exception
from .context import collect_context, module_hparams, resolve_seed, write_model_summary
from .recipe import recipe
from .spawn import SpawnHandoff, in_spawned_worker, read_handoff

if TYPE_CHECKING:  # pragma: no cover
    import lightning.pytorch as pl

__all__ = ["RunLifecycle"]

log = logging.getLogger(__name__)


class RunLifecycle(SpawnHandoff):
    """Mixin of ExpmanLogger: TRIAL_RUN open / settle / end, PIPELINE and EPOCH levels, atexit."""

    manager: TrackerManager
    log_dir: str
    artifact_dir: str
    _token: str
    _version: int | str | None
    _experiment_name: str
    _trial_name: str
    _save_dir: str
    _run_info: dict[str, Any]
    _external_manager: TrackerManager | None
    _manager: TrackerManager | None
    _db_tracker: Callable[[], Any]
    _trainer: Callable[[], Any]
    _reconcile_checkpoints: Callable[[], None]
    _record_best_checkpoints: Callable[[Any], None]
    _fallback_resolve_epoch: Callable[[], None]
    root_dir: str

    # per-process state, reset by ExpmanLogger._reset_runtime
    _atexit_registered: bool
    _parents_open: bool
    _run_open: bool
    _settled: bool
    _error: str | None
    _stop_epoch: int | None
    _exception: BaseException | None
    _handoff: bool
    _joinable: bool
    _owner: str | None
    _stage: str | None
    _phase: str | None
    _epoch: int | None
    _epoch_open: bool
    _pipelines: list[str]
    _run_id: int | None
    _status: RunStatus | None

    # ------------------------------------------------------------------ opening
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
        self._release_handoff()  # a run handed back by spawned workers is over: this one is newer
        self._register_atexit()
        self._ensure_parents()
        info = dict(self._run_info)
        seed = resolve_seed(info)
        datamodule = getattr(trainer, "datamodule", None) if trainer is not None else None
        hparams = module_hparams(pl_module, datamodule)
        info["seed"] = seed
        info["context"] = collect_context(seed=seed, hparams=hparams, extra=info.get("context"))
        if self._stage == "fit" and trainer is not None and pl_module is not None:
            info["context"]["recipe"] = recipe(trainer, pl_module)  # what `expman reproduce` rebuilds
        if info.get("config") is None:
            from .lightning_cli import cli_config

            # drop-in: the LightningCLI's resolved config, else the hyperparameters, is the run config
            info["config"] = cli_config(trainer) or hparams or None
        info.setdefault("workdir", self.log_dir)
        manager = self.manager
        manager.on_create(Level.TRIAL_RUN, **info)
        manager.on_start(Level.TRIAL_RUN)
        self._owner = None  # the new run's lease token is the DB tracker's
        self._start_run_state(trainer, RunStatus.RUNNING, settled=False)

    def _reattach(self, trainer: pl.Trainer, state: dict[str, Any]) -> None:
        """Spawned test/validate: continue the run an earlier spawned fit of this logger settled."""
        self._register_atexit()
        self._ensure_parents()
        manager = self.manager
        manager.on_create(
            Level.TRIAL_RUN, claimed_run_id=int(state["run_id"]), lease_owner=state.get("owner")
        )
        manager.on_start(Level.TRIAL_RUN)
        self._owner = state.get("owner")
        self._start_run_state(trainer, RunStatus.parse(state["status"]), settled=True)
        self._error, self._stop_epoch = state.get("error"), state.get("stop_epoch")

    def _start_run_state(self, trainer: pl.Trainer | None, status: RunStatus, settled: bool) -> None:
        self._run_id = getattr(self._db_tracker(), "trial_run_id", None)
        self._status = status
        self._run_open = True
        self._settled = settled
        self._error = None
        self._stop_epoch = None
        self._exception = None
        self._epoch = None
        self._epoch_open = False
        self._pipelines = []
        self._params: dict[str, Any] = {}
        self._ckpt_epochs: dict[str, int | None] = {}
        self._ckpt_callbacks: list[Any] = []
        self._fb_epoch: int | None = None
        self._fb_values: dict[str, list[tuple[int | None, Any]]] = {}
        self._fb_fit_done = False
        self._handoff = in_spawned_worker(trainer)
        self._joinable = settled
        self._publish()

    def _ensure_run(self) -> None:
        if not self._run_open:
            trainer = self._trainer()
            self._open_run(trainer, getattr(trainer, "lightning_module", None) if trainer else None)

    # ------------------------------------------------------------------ settling and ending
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
        self._status = status
        self._error = error
        self._stop_epoch = stop_epoch
        self._settled = True

    def _write_status_now(self) -> None:
        """Flush and write the settled status to the database while the run stays open.

        Without this a fit-only script would show RUNNING until the process exits; the final
        ``on_end`` writes the same status again (with the end time of the last evaluation). In
        runner mode the runner ends the run right after its test: one write, at the end.
        """
        if self._external_manager is None:
            self.manager.flush()
            db = self._db_tracker()
            run = getattr(db, "trial_run_id", None)
            if run is not None and self._status is not None:
                db.manager.finish_trial_run(
                    run, self._status.value, error=self._error, stop_epoch=self._stop_epoch
                )
            from ..tracking.mlflow import MLflowTracker

            mlflow = self.manager.get(MLflowTracker)
            if mlflow is not None and self._status is not None:
                mlflow.settle(self._status, error=self._error, stop_epoch=self._stop_epoch)
        self._joinable = True
        self._publish()

    def _end_run(self, status: RunStatus | None = None, error: str | None = None) -> None:
        """End the open TRIAL_RUN with ``status`` (default: the settled one, else ABORTED)."""
        if not self._run_open:
            return
        if status is None:
            if self._settled and self._status is not None:
                status, error = self._status, self._error
            else:  # the process is leaving (or a new fit starts) while this run never finished
                status, error = RunStatus.ABORTED, error or "the run ended before its fit finished"
        self._run_open = False
        self._settled = True
        self._status = status
        self._error = error
        try:
            self._close_inner(status, error)
        finally:
            self.manager.on_end(Level.TRIAL_RUN, status=status, error=error, stop_epoch=self._stop_epoch)
            self._publish()

    def _fail(self, exc: BaseException | None) -> None:
        """A stage raised: end the run FAILED (ABORTED for Ctrl-C / SIGTERM) with the error text."""
        status = status_for_exception(exc) if exc is not None else RunStatus.FAILED
        if status is RunStatus.STOPPED:
            status = RunStatus.FAILED
        error = "failed (no exception available)"
        if exc is not None:
            error = mask_text(f"{type(exc).__name__}: {exc}")
        self._joinable = False
        if self._run_open:
            self._take_cli_config(self._trainer())  # a fit failing in setup: the next run starts clean
            self._stop_epoch = None
            self._end_run(status, error)
        self._status = status
        self._error = error

    # ------------------------------------------------------------------ closing
    def close(self) -> None:
        """End the open run; in drop-in mode also end TRIAL/EXPERIMENT and close the trackers.

        In runner mode (:meth:`for_runner`) only the run is ended: the runner owns the rest.
        Safe to call several times; the next fit reopens everything. A run used without a Trainer
        (``log_metrics`` ... ``close()``) ends COMPLETED; one whose fit is still running (or one
        left open at process exit) ends ABORTED. Every thread the logger started is joined. After
        spawned stages, a later spawned test no longer reattaches to the run they recorded.
        """
        self._close(explicit=True)

    def _close(self, explicit: bool) -> None:
        if rank_zero_only.rank > 0:
            return
        if explicit:
            self._joinable = False
            self._release_handoff()
        if self._manager is None:
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

    def _stop_writer(self) -> None:
        """Join the database writer thread after each stage: nothing of ours runs between
        ``fit``/``test`` calls or after the last one (the next write starts it again)."""
        if self._external_manager is None:
            db = self._db_tracker()
            if db is not None:
                db.close()

    # ------------------------------------------------------------------ stage hooks (LevelHooks)
    def _on_stage_setup(self, trainer: pl.Trainer, pl_module: Any, stage: str) -> None:
        self._stage = stage
        self._phase = None
        if stage == "fit":
            self._open_run(trainer, pl_module)
        elif stage in ("validate", "test") and not self._run_open:
            # A test/validate without an open run gets its own (predict logs nothing, opens
            # nothing), unless a spawned fit of this logger left its run awaiting the test.
            state = read_handoff(self.log_dir, self._token)
            if state is not None and state.get("open") and state.get("run_id") is not None:
                self._reattach(trainer, state)
            else:
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
        self._take_cli_config(trainer)

    def _take_cli_config(self, trainer: pl.Trainer | None) -> None:
        """LightningCLI's ``config.yaml`` (written in ``save_dir``) -> the run's folder and artifacts."""
        from .lightning_cli import take_config_file

        try:
            path = take_config_file(self, trainer)
        except OSError as e:  # the next CLI run then says why it cannot start
            log.warning("ExpmanLogger: could not move LightningCLI's config file: %s", e)
            return
        if path is not None:
            self.manager.on_add_artifact(Level.TRIAL_RUN, path, "config")

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
            self._settle(*_fit_outcome(trainer))
            self._reconcile_checkpoints()  # the last save may have deleted its predecessor
            self._record_best_checkpoints(trainer)
            self._close_inner(self._status or RunStatus.COMPLETED)
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


def _fit_outcome(trainer: pl.Trainer) -> tuple[RunStatus, str | None, int | None]:
    """COMPLETED, or STOPPED (PRUNED for a search's pruning callback) with the stop epoch when a
    callback asked the trainer to stop."""
    if not trainer.should_stop:
        return RunStatus.COMPLETED, None, None
    # A search's pruning callback stopped it (on every rank: the decision is broadcast).
    pruned = [cb.pruned_epoch for cb in trainer.callbacks if getattr(cb, "pruned_epoch", None) is not None]
    if pruned:
        return RunStatus.PRUNED, None, pruned[0]
    stopped = [
        cb.stopped_epoch
        for cb in trainer.callbacks
        if isinstance(cb, _LightningEarlyStopping) and cb.stopped_epoch
    ]
    # EarlyStopping stores 0 for "not stopped": fall back on the last epoch trained.
    stop_epoch = max(stopped) if stopped else max(trainer.current_epoch - 1, 0)
    return RunStatus.STOPPED, None, stop_epoch


def _closer_at_exit(ref: weakref.ReferenceType[Any]) -> Callable[[], None]:
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
