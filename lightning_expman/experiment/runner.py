"""Executing runs in this process: :class:`_Runner` opens the levels and trackers and runs one job
at a time, recording every outcome (failures and Ctrl-C included). Serial runs use it in the
parent (:func:`~lightning_expman.experiment.serial.run_serial`), parallel runs in each worker
process (``workers.py``), Ray tasks and searches likewise, so the recorded rows are the same
either way. What a run recorded is read back through :class:`~.probe._RunProbe`.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from ..config._util import to_plain
from ..enums import Level, RunStatus
from ..masking import mask_text
from ..progress import ProgressTracker
from ..seeding import seed_everything
from ..tracking.base import TrackerManager, status_for_exception
from .claims import ClaimOptions, _GridClaims
from .logs import _lightning_log_to
from .plan import _container, _Job, _trial_config, new_result
from .probe import _db_tracker, _RunProbe
from .results import RunResult

if TYPE_CHECKING:  # pragma: no cover
    from ..config import ExperimentSpec, TrialSpec
    from ..coordination import Claim
    from ..workspace import Environment

log = logging.getLogger(__name__)


class _Runner:
    """Executes jobs in the current process: owns the environment, trackers and open levels.

    Used in the parent for serial runs and in each worker process for parallel ones, so the
    recorded rows are the same either way.
    """

    def __init__(
        self,
        spec: ExperimentSpec,
        factory: Any,
        *,
        save_configs: bool = True,
        on_run_open: Callable[[int | None], None] | None = None,
        claims: ClaimOptions | None = None,
        on_progress: Callable[[str, Any], None] | None = None,
    ) -> None:
        self.spec = spec
        self.factory = factory
        self.save_configs = save_configs  # workers: the parent already saved them
        self.on_run_open = on_run_open
        self.claims = claims
        self.on_progress = on_progress  # live progress: ("start", RunResult), ("epoch", EpochProgress)
        self.progress: ProgressTracker | None = None
        self.grid: _GridClaims | None = None  # set by open() when a db tracker records the runs
        self.env: Environment | None = None
        self.exp_env: Environment | None = None
        self.manager: TrackerManager | None = None
        self.probe: _RunProbe | None = None
        self._trial_pos: int | None = None
        self._trial_env: Environment | None = None
        self._pipeline: Any = None
        self._plain_settings: bool | None = None

    # -- levels
    def open(self) -> None:
        from ..workspace import Environment

        spec = self.spec
        self.env = Environment.from_config(spec.env)
        trackers = to_plain(spec.env.trackers) or []
        manager = TrackerManager.from_config(trackers, workspace=str(self.env.workdir))
        self.probe = _RunProbe(manager, self.on_run_open)
        manager.add_tracker(self.probe)
        if self.on_progress is not None:
            on_progress = self.on_progress
            self.progress = ProgressTracker(lambda event: on_progress("epoch", event))
            manager.add_tracker(self.progress)
        self.env.tracker_manager = manager
        self.manager = manager
        self.exp_env = self.env.create_child(spec.name)
        if self.save_configs:
            self.exp_env.save_config(spec, "experiment.yaml")
        manager.on_create(
            Level.EXPERIMENT,
            name=spec.name,
            desc=spec.desc or "",
            config=spec.to_container(),
            config_hash=spec.config_hash,
            tags=to_plain(spec.tags),
            workdir=str(self.exp_env.workdir),
        )
        manager.on_start(Level.EXPERIMENT)
        db = _db_tracker(manager)
        if self.claims is not None and db is not None and db.experiment_id is not None:
            self.grid = _GridClaims(
                db.manager,
                spec,
                db.experiment_id,
                stale_after=self.claims.stale_after,
                started=self.claims.started,
                wait=self.claims.wait,
                continue_runs=self.claims.continue_runs,
            )

    def jobs(self, todo: list[_Job]) -> Iterator[tuple[_Job, Claim | None]]:
        """The jobs this process runs: those it claims (with a db tracker), else all of them."""
        if self.grid is None:
            yield from ((job, None) for job in todo)
            return
        self.grid.prepare(todo)
        yield from self.grid.claimed(todo)

    def _enter_trial(self, trial_pos: int) -> Environment:
        if self._trial_pos == trial_pos and self._trial_env is not None:
            return self._trial_env
        self._leave_trial()
        assert self.exp_env is not None and self.manager is not None
        trial = self.spec.trials[trial_pos]
        trial_env = self.exp_env.create_child(trial.name)
        if self.save_configs:
            trial_env.save_config(trial, "trial.yaml")
        self.manager.on_create(
            Level.TRIAL,
            name=trial.name,
            config=_trial_config(trial),
            tags=to_plain(trial.tags),
            workdir=str(trial_env.workdir),
        )
        self.manager.on_start(Level.TRIAL)
        self._trial_pos, self._trial_env = trial_pos, trial_env
        return trial_env

    def open_trial(self, trial_pos: int) -> int | None:
        """Open trial ``trial_pos``'s level now (if not open) and return its database id (``None``
        without a db tracker): a caller that claims the trial's runs itself needs no second
        get-or-create of the trial row (:meth:`_GridClaims.claim_new`)."""
        self._enter_trial(trial_pos)
        return getattr(_db_tracker(self.manager), "trial_id", None) if self.manager is not None else None

    def _leave_trial(self, status: RunStatus = RunStatus.COMPLETED) -> None:
        if self._trial_env is None:
            return
        trial_env, self._trial_env, self._trial_pos = self._trial_env, None, None
        try:
            if self.manager is not None:
                self.manager.on_end(Level.TRIAL, status=status)
        finally:
            _close_env(trial_env)

    def close(self, status: RunStatus = RunStatus.COMPLETED) -> None:
        try:
            self._leave_trial(status)
            if self.manager is not None:
                self.manager.on_end(Level.EXPERIMENT, status=status)
        finally:
            if self.manager is not None:
                self.manager.close()
            for env in (self.exp_env, self.env):
                _close_env(env)

    # -- one run
    def run_job(self, job: _Job, total: int, claim: Claim | None = None) -> RunResult:
        """Execute one job; never raises except for Ctrl-C (after recording the run ABORTED).

        With a ``claim`` the run records into the claimed trial run, whose lease is renewed
        until the run is recorded.
        """
        lease = self.grid.lease(claim).start() if claim is not None and self.grid is not None else None
        try:
            return self._run_job(job, total, claim)
        finally:
            if lease is not None:
                lease.stop()

    def _takes_plain_settings(self) -> bool:
        """Whether runs get their settings as a plain dict: a Lightning pipeline built by the
        default factory (it builds the ``DictConfig`` only if ``pipeline.config`` is used)."""
        if self._plain_settings is None:
            from ..pipeline import LightningPipeline, pipeline_factory
            from .seed import is_default_factory

            try:
                built = pipeline_factory(self.spec.pipeline)
            except Exception:  # reported by the run that builds it
                built = None
            self._plain_settings = (
                is_default_factory(self.factory)
                and isinstance(built, type)
                and issubclass(built, LightningPipeline)
            )
        return self._plain_settings

    def _run_job(self, job: _Job, total: int, claim: Claim | None) -> RunResult:
        from omegaconf import OmegaConf

        trial = self.spec.trials[job.trial_pos]
        result = new_result(self.spec, job, total)
        if self.progress is not None and self.on_progress is not None:
            self.progress.index = job.index
            self.on_progress("start", new_result(self.spec, job, total))
        start = time.perf_counter()
        assert self.manager is not None and self.probe is not None
        self.probe.reset()
        pipeline = None
        interrupt: BaseException | None = None
        run_info: dict[str, Any] = {}
        run_env: Environment | None = None
        original_sigint = signal.getsignal(signal.SIGINT)
        try:
            trial_env = self._enter_trial(job.trial_pos)
            run_env = trial_env.create_child(f"run_{job.repeat_idx}")
            # The run's own settings: seed = the run's seed, and every ${seed} follows it.
            # Saved and stored from the plain dict: converting the DictConfig back costs more.
            data = trial.run_settings_data(job.seed)
            run_env.save_config(data)
            config = data if self._takes_plain_settings() else OmegaConf.create(data)
            run_info = {
                "repeat_idx": job.repeat_idx,
                "seed": job.seed,
                "config": _container(data),
                # The logger / collect_context add versions, host, git commit and argv to this.
                "context": {"config_dir": str(self.spec.source_dir), "params": result.params},
                "tags": to_plain(trial.tags),
                "workdir": str(run_env.workdir),
            }
            if claim is not None:
                run_info.update(claimed_run_id=claim.run_id, lease_owner=claim.owner)
                if self.grid is not None and claim.run_id in self.grid.continue_from:
                    run_info["continue_from"] = self.grid.continue_from.pop(claim.run_id)  # its last.ckpt
            with _lightning_log_to(run_env):
                status = self._execute(run_env, config, run_info, trial)
            pipeline = self._pipeline
        except BaseException as e:
            status = status_for_exception(e)
            if status is RunStatus.STOPPED:
                status = RunStatus.FAILED  # a StopIteration escaping a pipeline is a bug, not early stopping
            if isinstance(e, (KeyboardInterrupt, SystemExit)):
                interrupt = e
            error = mask_text(f"{type(e).__name__}: {e}")
            pipeline = self._pipeline
            logger = getattr(pipeline, "env", None) or self._trial_env or self.exp_env
            _logger_of(logger).error(
                "run %s/%s of %s %s: %s", job.repeat_idx, trial.repeat, trial.name, status, error
            )
            self._record_failure(run_info, status, error)
            if self.probe.ended and self.probe.status in (RunStatus.COMPLETED, RunStatus.STOPPED):
                # The run ended well but recording its end failed (database gone, disk full):
                # its data is incomplete, so it is not shown as a success.
                self.probe.status, self.probe.error = status, error
            if claim is not None and self.grid is not None and not self.probe.ended:
                self.grid.settle(claim, status, error)
        finally:
            # Lightning ignores SIGINT after a Ctrl-C during fit; restore the handler for the next run.
            with contextlib.suppress(ValueError, TypeError):
                signal.signal(signal.SIGINT, original_sigint)
            _close_env(run_env)
        result.elapsed = time.perf_counter() - start
        result.status = self.probe.status if self.probe.ended else status
        result.error = self.probe.error if self.probe.ended else None
        if result.error is None and result.status in (RunStatus.FAILED, RunStatus.ABORTED):
            result.error = getattr(pipeline, "error", None)
        result.run_id = self.probe.run_id or (claim.run_id if claim is not None else None)
        if interrupt is not None:
            result.status = RunStatus.ABORTED
        if self.exp_env is not None:
            self.exp_env.logger.info("%s", result.progress_line())
        if interrupt is not None:
            raise _Interrupted(result) from interrupt
        return result

    def _execute(
        self, run_env: Environment, config: Any, run_info: dict[str, Any], trial: TrialSpec
    ) -> RunStatus:
        """Build the pipeline and run it; the Lightning pipeline's logger records the TRIAL_RUN,
        the runner records it for custom pipelines."""
        from ..pipeline import LightningPipeline

        assert self.manager is not None and self.probe is not None
        self._pipeline = None
        seed_everything(run_info["seed"])
        pipeline = self._pipeline = self.factory.create(self.spec.pipeline, config, run_env, trial.id)
        pipeline.run_info = run_info
        if isinstance(pipeline, LightningPipeline):
            if self._plain_settings and type(pipeline).run is not LightningPipeline.run:
                config = pipeline.config  # an overridden run() gets the DictConfig, as before
            return pipeline.run(config)
        from ..lightning.context import collect_context

        run_info["context"] = collect_context(seed=run_info["seed"], extra=run_info["context"])
        self.manager.on_create(Level.TRIAL_RUN, **run_info)
        self.manager.on_start(Level.TRIAL_RUN)
        status = pipeline.run(config)
        status = RunStatus.parse(status) if status is not None else RunStatus.COMPLETED
        if not self.probe.ended:
            self.manager.on_end(Level.TRIAL_RUN, status=status, error=getattr(pipeline, "error", None))
        return status

    def _record_failure(self, run_info: dict[str, Any], status: RunStatus, error: str) -> None:
        """Make sure a failed run has a finished TRIAL_RUN row (even one that never started)."""
        assert self.manager is not None and self.probe is not None
        try:
            if not self.probe.opened:
                if not run_info:  # failed before the run could even be described
                    return
                self.manager.on_create(Level.TRIAL_RUN, **run_info)
                self.manager.on_start(Level.TRIAL_RUN)
            if not self.probe.ended:
                self.manager.on_end(Level.TRIAL_RUN, status=status, error=error)
            elif status is RunStatus.ABORTED and self.probe.status is not RunStatus.ABORTED:
                # Lightning reports Ctrl-C to loggers as a plain failure: correct the row.
                self._set_status(self.probe.run_id, status, error)
                self.probe.status = status
        except Exception as e:  # recording must not hide the run's own error
            log.error("could not record the failed run: %s", e)

    def _set_status(self, run_id: int | None, status: RunStatus, error: str | None) -> None:
        tracker = _db_tracker(self.manager) if self.manager is not None else None
        if tracker is None or run_id is None:
            return
        tracker.manager.finish_trial_run(run_id, status.value, error=error)


class _Interrupted(Exception):
    """Ctrl-C during a run; carries the (recorded ABORTED) result."""

    def __init__(self, result: RunResult) -> None:
        super().__init__("interrupted")
        self.result = result


def _logger_of(env: Any) -> logging.Logger:
    return getattr(env, "logger", None) or log


def _close_env(env: Any) -> None:
    if env is not None and hasattr(env, "close"):
        try:
            env.close()
        except Exception as e:  # pragma: no cover - closing log files
            log.debug("closing environment failed: %s", e)


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"received signal {signum}")


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM ends the runs like Ctrl-C does (recorded ABORTED, grid stopped), not silently.

    During a fit Lightning's own SIGTERM handler calls this one too (it chains existing handlers).
    """
    try:
        previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    except ValueError:  # not the main thread: signals cannot be handled here
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
