"""The experiment runner: every trial x repeat of a config folder as one recorded trial run.

``Experiment.create(config_dir)`` loads and validates the folder (see :mod:`lightning_expman.config`);
``Experiment.run()`` executes the runs serially or in local worker processes and returns an
:class:`ExperimentSummary`.

Per run *k* (1..repeat) of a trial: the seed is ``settings.seed + k - 1``
(``seed_everything(seed, workers=True)`` before the pipeline is built), the workspace gets
``<workspace>/<experiment>/trials/<trial>/run_<k>/``, the resolved config is saved at every level,
and one TRIAL_RUN is recorded through env.yaml's trackers (EXPERIMENT and TRIAL are opened by the
runner; the experiment's config and ``config_hash`` are stored with it).

Decisions where the issue is silent:

* **Failures.** A run that raises — even while its model is being built — is recorded FAILED with
  the error text, and the grid goes on (``fail_fast=True`` stops after the first failure; runs not
  started are reported as not run).
* **Resume** (``resume=True``, the default: running a grid again never repeats finished work)
  looks at the latest recorded run of each (trial, repeat): COMPLETED
  and STOPPED runs are skipped (no new row; reported SKIPPED in the summary), FAILED and ABORTED
  runs are run again (a new row; the old one stays as history), RUNNING runs are run again only
  when their heartbeat is older than ``stale_after`` seconds (default 120; a fresher one is
  assumed to be running elsewhere and is skipped). A changed configuration (``config_hash``
  differs from the stored experiment's) is refused with a one-line :class:`ConfigError` unless
  ``force=True``, which then stores the new config and hash.
* **Running into an existing experiment with ``resume=False``** (``--no-resume``) is refused when it
  already has recorded runs; ``force=True`` then records the whole grid again as new rows.
* **Workers.** ``workers=N`` runs trial runs in N ``spawn`` processes; each opens its own trackers
  (and database connection). The parent creates the experiment and trial rows first, so the rows
  are the same as a serial run's. The working directory is importable in workers as in the parent.
* **Ctrl-C** ends the current run(s) ABORTED (recorded), stops the grid and returns a summary with
  ``interrupted=True`` (the CLI exits 130).

Example:
    >>> from lightning_expman import Experiment
    >>> experiment = Experiment.create("configs/digits", overrides=["trainer.max_epochs=2"])
    >>> summary = experiment.run(workers=2)
    >>> print(summary.table())
    >>> summary.exit_code
    0
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import logging
import os
import queue
import signal
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .enums import Level, RunStatus
from .errors import ConfigError, ExpmanError
from .tracking.base import Tracker, TrackerManager, status_for_exception

if TYPE_CHECKING:  # pragma: no cover
    from .config import ExperimentSpec, TrialSpec
    from .workspace import Environment

__all__ = ["DEFAULT_STALE_AFTER", "Experiment", "ExperimentSummary", "RunResult"]

log = logging.getLogger(__name__)

DEFAULT_STALE_AFTER = 120.0
"""Seconds without a heartbeat after which a RUNNING run is considered crashed (resume re-runs it)."""


# --------------------------------------------------------------------------- results


@dataclass
class RunResult:
    """The outcome of one (trial, repeat) of the grid.

    Attributes:
        index: 1-based position in the grid (trial-major order).
        total: number of runs in the grid.
        trial: trial name.
        repeat_idx: 1..repeat.
        repeat: the trial's repeat count.
        seed: the run's seed.
        params: the trial's grid values (``{"model.init_args.lr": 0.1}``).
        status: the recorded status; SKIPPED when resume skipped it; ``None`` when it was not run
            (fail-fast or Ctrl-C stopped the grid first).
        elapsed: seconds the run took (0 when skipped / not run).
        error: the error text of a FAILED/ABORTED run.
        run_id: the database id of the trial_run row, when a db tracker recorded it.
        previous: for SKIPPED runs, the status recorded before.
    """

    index: int
    total: int
    trial: str
    repeat_idx: int
    repeat: int
    seed: int
    params: dict[str, Any] = field(default_factory=dict)
    status: RunStatus | None = None
    elapsed: float = 0.0
    error: str | None = None
    run_id: int | None = None
    previous: RunStatus | None = None

    @property
    def status_text(self) -> str:
        if self.status is None:
            return "NOT RUN"
        if self.status is RunStatus.SKIPPED and self.previous is RunStatus.RUNNING:
            return "SKIPPED (RUNNING elsewhere)"
        if self.status is RunStatus.SKIPPED and self.previous is not None:
            return f"SKIPPED ({self.previous.value} before)"
        return self.status.value

    def progress_line(self) -> str:
        """``[3/8] lr=0.1-hidden=32 run 1/2 seed 43 COMPLETED 4.2s``."""
        line = (
            f"[{self.index}/{self.total}] {self.trial} run {self.repeat_idx}/{self.repeat} "
            f"seed {self.seed} {self.status_text}"
        )
        if self.status not in (None, RunStatus.SKIPPED):
            line += f" {self.elapsed:.1f}s"
        if self.error and self.status in (RunStatus.FAILED, RunStatus.ABORTED):
            line += f": {_one_line(self.error)}"
        return line


@dataclass
class ExperimentSummary:
    """What :meth:`Experiment.run` did.

    Attributes:
        experiment: the experiment's name.
        results: one :class:`RunResult` per (trial, repeat), in grid order.
        workdir: the experiment's workspace directory.
        db_url: the database the runs were recorded in (password masked), if any.
        interrupted: Ctrl-C stopped the grid.
        elapsed: wall time of the whole run in seconds.
    """

    experiment: str
    results: list[RunResult]
    workdir: str = ""
    db_url: str | None = None
    interrupted: bool = False
    elapsed: float = 0.0

    def count(self, status: RunStatus | None) -> int:
        return sum(1 for r in self.results if r.status is status)

    @property
    def failed(self) -> list[RunResult]:
        return [r for r in self.results if r.status is RunStatus.FAILED]

    @property
    def ok(self) -> bool:
        """Every run completed or stopped early (now or, for skipped runs, before)."""
        return not self.interrupted and all(
            r.status in (RunStatus.COMPLETED, RunStatus.STOPPED, RunStatus.SKIPPED) for r in self.results
        )

    @property
    def exit_code(self) -> int:
        """0 every run completed/stopped early; 1 a run failed (or was not run); 130 interrupted."""
        if self.interrupted:
            return 130
        return 0 if self.ok else 1

    def counts_line(self) -> str:
        parts = [
            f"{self.count(s)} {s.value.lower()}"
            for s in (
                RunStatus.COMPLETED,
                RunStatus.STOPPED,
                RunStatus.FAILED,
                RunStatus.ABORTED,
                RunStatus.SKIPPED,
            )
            if self.count(s)
        ]
        if self.count(None):
            parts.append(f"{self.count(None)} not run")
        return ", ".join(parts) or "no runs"

    def table(self) -> str:
        """A plain-text table: one line per run, then the totals."""
        header = ("#", "trial", "run", "seed", "status", "time", "run id")
        rows = [
            (
                str(r.index),
                r.trial,
                f"{r.repeat_idx}/{r.repeat}",
                str(r.seed),
                r.status_text,
                f"{r.elapsed:.1f}s" if r.status not in (None, RunStatus.SKIPPED) else "-",
                str(r.run_id) if r.run_id is not None else "-",
            )
            for r in self.results
        ]
        widths = [
            max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(header)
        ]
        lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths))]
        lines.append("  ".join("-" * w for w in widths))
        lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in rows]
        lines.append(
            f"{self.experiment}: {len(self.results)} runs: {self.counts_line()} in {self.elapsed:.1f}s"
            + (" (interrupted)" if self.interrupted else "")
        )
        if self.workdir:
            lines.append(f"workspace: {self.workdir}")
        if self.db_url:
            lines.append(f"database:  {self.db_url}")
        return "\n".join(lines)


def _one_line(text: str, limit: int = 200) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


# --------------------------------------------------------------------------- jobs


@dataclass(frozen=True)
class _Job:
    """One (trial, repeat) to execute; small and picklable (sent to workers)."""

    index: int
    trial_pos: int
    repeat_idx: int
    seed: int


# --------------------------------------------------------------------------- run probe


class _RunProbe(Tracker):
    """Listens to TRIAL_RUN events so the runner knows what was recorded, whoever opened the run.

    The Lightning pipeline's logger opens and ends TRIAL_RUN itself; a custom pipeline's run is
    opened by the runner; a run whose model fails to build never opens one. The probe tells them
    apart and captures the recorded status, error and database id.
    """

    def __init__(self, manager: TrackerManager, on_open: Callable[[int | None], None] | None = None) -> None:
        self.manager = manager
        self.on_open = on_open  # workers tell the parent which row they are writing
        self.reset()

    def reset(self) -> None:
        self.opened = False
        self.ended = False
        self.status: RunStatus | None = None
        self.error: str | None = None
        self.run_id: int | None = None

    def on_create(self, level: Level, **kwargs: Any) -> None:
        if level is Level.TRIAL_RUN:
            self.reset()
            self.opened = True
            self.run_id = _db_run_id(self.manager)
            if self.on_open is not None:
                self.on_open(self.run_id)

    def on_end(self, level: Level, **kwargs: Any) -> None:
        if level is Level.TRIAL_RUN and self.opened:
            self.ended = True
            self.status = RunStatus.parse(kwargs.get("status") or RunStatus.COMPLETED)
            self.error = kwargs.get("error")


def _db_tracker(manager: TrackerManager) -> Any:
    from .tracking.db import DBTracker

    return manager.get(DBTracker)


def _db_run_id(manager: TrackerManager) -> int | None:
    tracker = _db_tracker(manager)
    return getattr(tracker, "trial_run_id", None)


# --------------------------------------------------------------------------- configs


def _container(cfg: Any) -> Any:
    """Plain, resolved, secrets masked: what is stored in the database."""
    from .config import mask_secrets

    return mask_secrets(_plain(cfg))


# --------------------------------------------------------------------------- executing runs


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
    ) -> None:
        self.spec = spec
        self.factory = factory
        self.save_configs = save_configs  # workers: the parent already saved them
        self.on_run_open = on_run_open
        self.env: Environment | None = None
        self.exp_env: Environment | None = None
        self.manager: TrackerManager | None = None
        self.probe: _RunProbe | None = None
        self._trial_pos: int | None = None
        self._trial_env: Environment | None = None
        self._pipeline: Any = None

    # -- levels
    def open(self) -> None:
        from .workspace import Environment

        spec = self.spec
        self.env = Environment.from_config(spec.env)
        manager = TrackerManager.from_config(_plain(spec.env.trackers) or [], workspace=str(self.env.workdir))
        self.probe = _RunProbe(manager, self.on_run_open)
        manager.add_tracker(self.probe)
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
            tags=_plain(spec.tags),
            workdir=str(self.exp_env.workdir),
        )
        manager.on_start(Level.EXPERIMENT)

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
            config=_container(trial.settings),
            tags=_plain(trial.tags),
            workdir=str(trial_env.workdir),
        )
        self.manager.on_start(Level.TRIAL)
        self._trial_pos, self._trial_env = trial_pos, trial_env
        return trial_env

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
    def run_job(self, job: _Job, total: int) -> RunResult:
        """Execute one job; never raises except for Ctrl-C (after recording the run ABORTED)."""
        from omegaconf import OmegaConf

        trial = self.spec.trials[job.trial_pos]
        result = RunResult(
            index=job.index,
            total=total,
            trial=trial.name,
            repeat_idx=job.repeat_idx,
            repeat=trial.repeat,
            seed=job.seed,
            params=dict(_plain(trial.params) or {}),
        )
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
            config = OmegaConf.create(OmegaConf.to_container(trial.settings, resolve=True))
            config.seed = job.seed
            run_env.save_config(config)
            run_info = {
                "repeat_idx": job.repeat_idx,
                "seed": job.seed,
                "config": _container(config),
                # The logger / collect_context add versions, host, git commit and argv to this.
                "context": {"config_dir": str(self.spec.source_dir), "params": result.params},
                "tags": _plain(trial.tags),
                "workdir": str(run_env.workdir),
            }
            with _lightning_log_to(run_env):
                status = self._execute(run_env, config, run_info, trial)
            pipeline = self._pipeline
        except BaseException as e:
            status = status_for_exception(e)
            if status is RunStatus.STOPPED:
                status = RunStatus.FAILED  # a StopIteration escaping a pipeline is a bug, not early stopping
            if isinstance(e, (KeyboardInterrupt, SystemExit)):
                interrupt = e
            error = f"{type(e).__name__}: {e}"
            pipeline = self._pipeline
            logger = getattr(pipeline, "env", None) or self._trial_env or self.exp_env
            _logger_of(logger).error(
                "run %s/%s of %s %s: %s", job.repeat_idx, trial.repeat, trial.name, status, error
            )
            self._record_failure(run_info, status, error)
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
        result.run_id = self.probe.run_id
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
        from .pipeline import LightningPipeline

        assert self.manager is not None and self.probe is not None
        self._pipeline = None
        _seed_everything(run_info["seed"])
        pipeline = self._pipeline = self.factory.create(self.spec.pipeline, config, run_env, trial.id)
        pipeline.run_info = run_info
        if isinstance(pipeline, LightningPipeline):
            return pipeline.run(config)
        from .lightning.context import collect_context

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


def _seed_everything(seed: int) -> None:
    from lightning.fabric.utilities.seed import seed_everything

    seed_everything(int(seed), workers=True, verbose=False)


def _plain(value: Any) -> Any:
    from omegaconf import DictConfig, ListConfig, OmegaConf

    if isinstance(value, (DictConfig, ListConfig)):
        return OmegaConf.to_container(value, resolve=True)
    return value


def _logger_of(env: Any) -> logging.Logger:
    return getattr(env, "logger", None) or log


def _close_env(env: Any) -> None:
    if env is not None and hasattr(env, "close"):
        try:
            env.close()
        except Exception as e:  # pragma: no cover - closing log files
            log.debug("closing environment failed: %s", e)


# --------------------------------------------------------------------------- worker processes


def _worker_main(
    spec: ExperimentSpec,
    factory: Any,
    total: int,
    tasks: Any,
    results: Any,
    stop: Any,
    ready: Any,
    worker_id: int,
    workers: int,
) -> None:
    """Entry point of a worker process (spawned): run jobs from ``tasks`` until a ``None``.

    Imports torch/lightning first, then waits until the parent has created the experiment and
    trial rows (``ready``). Each worker uses ``cpu_count // workers`` torch threads (at least 1)
    so that N workers do not oversubscribe the cores.
    """

    def on_sigint(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # one Ctrl-C is enough; let cleanup finish
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_sigint)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    runner = _Runner(
        spec, factory, save_configs=False, on_run_open=lambda run_id: results.put(("run", worker_id, run_id))
    )
    status = RunStatus.COMPLETED
    quiet = contextlib.ExitStack()
    try:
        import torch

        torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))
        quiet.enter_context(_quiet_lightning(bool(getattr(spec.env, "verbose", False))))
        ready.wait()
        if stop.is_set():
            return
        runner.open()
        while not stop.is_set():
            job = tasks.get()
            if job is None:
                break
            results.put(("start", worker_id, job.index))
            try:
                result = runner.run_job(job, total)
            except _Interrupted as e:
                results.put(("done", worker_id, e.result))
                status = RunStatus.ABORTED
                break
            results.put(("done", worker_id, result))
    except KeyboardInterrupt:
        status = RunStatus.ABORTED
    except BaseException as e:
        results.put(("error", worker_id, f"{type(e).__name__}: {e}"))
        status = RunStatus.FAILED
    finally:
        try:
            runner.close(status)
        except BaseException as e:
            results.put(("error", worker_id, f"closing trackers failed: {type(e).__name__}: {e}"))
        quiet.close()
        results.put(("exit", worker_id, None))
        # Everything is closed and flushed above; skip the interpreter's teardown of torch and
        # lightning (about a second per worker, on the critical path of every parallel run).
        results.close()
        results.join_thread()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(0 if status is not RunStatus.FAILED else 1)


@contextlib.contextmanager
def _quiet_lightning(verbose: bool) -> Iterator[None]:
    """Keep the console to one progress line per run unless env.yaml says ``verbose: true``.

    Lightning's info lines still reach each run's ``run.log`` (see :func:`_lightning_log_to`).
    Logger levels and warning filters are restored on exit.
    """
    if verbose:
        yield
        return
    import warnings

    import lightning  # noqa: F401 -- its import sets the levels we override here

    loggers = [logging.getLogger(n) for n in ("lightning.pytorch", "lightning.fabric")]
    levels = [lg.level for lg in loggers]
    with warnings.catch_warnings():
        for pattern in (
            r".*does not have many workers.*",
            r".*Checkpoint directory .* exists and is not empty.*",
            r".*smaller than the logging interval.*",
            r".*isinstance\(treespec, LeafSpec\)` is deprecated.*",
        ):
            warnings.filterwarnings("ignore", message=pattern)
        for lg in loggers:
            lg.setLevel(logging.WARNING)
        try:
            yield
        finally:
            for lg, level in zip(loggers, levels):
                lg.setLevel(level)


@contextlib.contextmanager
def _lightning_log_to(env: Any) -> Iterator[None]:
    """Copy Lightning's log lines (INFO and up) into the run's log file while it runs."""
    handlers = list(getattr(env.logger, "handlers", []))
    loggers = [logging.getLogger(n) for n in ("lightning.pytorch", "lightning.fabric")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        for h in handlers:
            lg.addHandler(h)
    # The handlers filter by their own level; the logger must let INFO through to reach them,
    # while the console handler Lightning installed keeps only warnings in quiet mode.
    console = [h for lg in loggers for h in lg.handlers if h not in handlers]
    console_levels = [h.level for h in console]
    quiet = any(lv >= logging.WARNING for lv in levels)
    if quiet:
        for h in console:
            h.setLevel(max(h.level, logging.WARNING))
        for lg in loggers:
            lg.setLevel(logging.INFO)
    try:
        yield
    finally:
        for lg, lv in zip(loggers, levels):
            lg.setLevel(lv)
            for h in handlers:
                lg.removeHandler(h)
        for h, lv in zip(console, console_levels):
            h.setLevel(lv)


# --------------------------------------------------------------------------- the experiment


class Experiment:
    """A loaded experiment: its spec (trials expanded from grids) and the pipeline factory.

    Create it with :meth:`create`; run it with :meth:`run`.

    Attributes:
        spec: the validated :class:`~lightning_expman.config.ExperimentSpec`.
        factory: the pipeline factory (:class:`~lightning_expman.pipeline.PipelineFactory` or a
            subclass / object with the same ``create(name, config, env, id)``).
    """

    def __init__(self, spec: ExperimentSpec, factory: Any = None) -> None:
        if factory is None:
            from .pipeline import PipelineFactory

            factory = PipelineFactory
        self.spec = spec
        self.factory = factory

    @classmethod
    def create(
        cls,
        config_dir: str | Path,
        factory: Any = None,
        *,
        overrides: list[str] | None = None,
        db_url: str | None = None,
    ) -> Experiment:
        """Load ``config_dir`` (env.yaml, experiment.yaml, base.yaml, trials.yaml).

        Args:
            config_dir: the config folder.
            factory: pipeline factory for custom pipelines (default: :class:`PipelineFactory`).
            overrides: ``key=value`` settings overrides (as ``expman run --set``).
            db_url: database URL replacing env.yaml's db tracker URL.

        Raises:
            ConfigError: one line naming the file, key and bad value. Nothing is written.
        """
        from .config import load

        return cls(load(config_dir, overrides=list(overrides or []), db_url=db_url), factory)

    # -- planning
    def _jobs(self) -> list[_Job]:
        """Every (trial, repeat) of the grid in trial-major order."""
        return [
            _Job(index=i, trial_pos=run.trial.index, repeat_idx=run.repeat_idx, seed=run.seed)
            for i, run in enumerate(self.spec.runs(), 1)
        ]

    def _result(self, job: _Job, total: int) -> RunResult:
        trial = self.spec.trials[job.trial_pos]
        return RunResult(
            index=job.index,
            total=total,
            trial=trial.name,
            repeat_idx=job.repeat_idx,
            repeat=trial.repeat,
            seed=job.seed,
            params=dict(_plain(trial.params) or {}),
        )

    @property
    def db_url(self) -> str | None:
        """The URL of env.yaml's db tracker (``None`` when none is configured)."""
        return spec_db_url(self.spec)

    # -- running
    def run(
        self,
        resume: bool = True,
        workers: int = 1,
        fail_fast: bool = False,
        force: bool = False,
        *,
        stale_after: float = DEFAULT_STALE_AFTER,
        on_result: Callable[[RunResult], None] | None = None,
    ) -> ExperimentSummary:
        """Run every trial x repeat (see the module docstring for resume/force/workers semantics).

        Args:
            resume: skip runs already COMPLETED/STOPPED, re-run FAILED/ABORTED/stale RUNNING ones
                (default). ``False`` refuses an experiment that already has recorded runs.
            workers: number of local worker processes (1 = in this process).
            fail_fast: stop after the first FAILED run.
            force: with ``resume``, accept a changed configuration; without it, run the whole grid
                again even though the experiment already has recorded runs.
            stale_after: seconds without heartbeat after which a RUNNING run counts as crashed.
            on_result: called with each :class:`RunResult` as it is known (progress output).

        Returns:
            The :class:`ExperimentSummary`.

        Raises:
            ConfigError: a bad ``workers`` value, a changed config on resume without ``force``,
                or existing runs without ``resume``/``force``.
        """
        if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
            raise ConfigError(f"workers must be an integer >= 1, got {workers!r}", key="workers")
        started = time.perf_counter()
        jobs = self._jobs()
        total = len(jobs)
        ledger = _Ledger.open(self.db_url)
        try:
            previous = ledger.plan(self.spec, resume=resume, force=force, stale_after=stale_after)
        finally:
            ledger.close()

        results: dict[int, RunResult] = {}
        todo: list[_Job] = []
        for job in jobs:
            trial = self.spec.trials[job.trial_pos]
            prev = previous.get((trial.name, job.repeat_idx))
            if prev is not None:
                result = self._result(job, total)
                result.status, result.previous, result.run_id = RunStatus.SKIPPED, prev[0], prev[1]
                results[job.index] = result
                if on_result:
                    on_result(result)
            else:
                todo.append(job)

        interrupted = False
        workdir = ""
        if todo:
            workers = min(workers, len(todo))
            execute = self._run_serial if workers == 1 else self._run_parallel
            with _sigterm_as_interrupt():
                interrupted, workdir = execute(todo, total, workers, fail_fast, results, on_result)
        for job in jobs:
            results.setdefault(job.index, self._result(job, total))
        return ExperimentSummary(
            experiment=self.spec.name,
            results=[results[j.index] for j in jobs],
            workdir=workdir or str(self.spec.workspace / self.spec.name),
            db_url=_masked(self.db_url),
            interrupted=interrupted,
            elapsed=time.perf_counter() - started,
        )

    def _run_serial(
        self,
        todo: list[_Job],
        total: int,
        workers: int,
        fail_fast: bool,
        results: dict[int, RunResult],
        on_result: Callable[[RunResult], None] | None,
    ) -> tuple[bool, str]:
        runner = _Runner(self.spec, self.factory)
        interrupted = False
        with _quiet_lightning(bool(getattr(self.spec.env, "verbose", False))):
            try:
                runner.open()
                for job in todo:
                    try:
                        result = runner.run_job(job, total)
                    except _Interrupted as e:
                        result, interrupted = e.result, True
                    results[job.index] = result
                    if on_result:
                        on_result(result)
                    if interrupted or (fail_fast and result.status is RunStatus.FAILED):
                        break
            except KeyboardInterrupt:
                interrupted = True  # between runs: nothing is open below TRIAL
            finally:
                runner.close(RunStatus.ABORTED if interrupted else RunStatus.COMPLETED)
        return interrupted, str(runner.exp_env.workdir) if runner.exp_env is not None else ""

    def _run_parallel(
        self,
        todo: list[_Job],
        total: int,
        workers: int,
        fail_fast: bool,
        results: dict[int, RunResult],
        on_result: Callable[[RunResult], None] | None,
    ) -> tuple[bool, str]:
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        tasks, events, stop, ready = ctx.Queue(), ctx.Queue(), ctx.Event(), ctx.Event()
        for job in todo:
            tasks.put(job)
        for _ in range(workers):
            tasks.put(None)
        # Workers start first: importing torch/lightning (seconds) overlaps the work below.
        with _cwd_importable():
            procs = [
                ctx.Process(
                    target=_worker_main,
                    args=(self.spec, self.factory, total, tasks, events, stop, ready, i, workers),
                    name=f"expman-worker-{i}",
                    daemon=False,
                )
                for i in range(workers)
            ]
            for p in procs:
                p.start()
        # Create the experiment and trial rows (in grid order) and folders once, here, before
        # the workers open them, so that no two processes race to create the same row.
        runner = _Runner(self.spec, self.factory)
        try:
            runner.open()
            for pos in sorted({job.trial_pos for job in todo}):
                runner._enter_trial(pos)
            runner._leave_trial()
        except BaseException:
            stop.set()
            ready.set()
            for p in procs:
                p.join(timeout=30)
            raise
        finally:
            workdir = str(runner.exp_env.workdir) if runner.exp_env is not None else ""
            runner.close()
        ready.set()
        in_flight: dict[int, int] = {}  # worker -> job index
        run_ids: dict[int, int | None] = {}  # worker -> trial_run id of its job
        alive = set(range(workers))
        interrupted = False
        errors: list[str] = []
        deadline: float | None = None
        original_sigint = signal.getsignal(signal.SIGINT)
        try:
            while alive:
                try:
                    try:
                        kind, worker, payload = events.get(timeout=0.5)
                    except queue.Empty:
                        for i in list(alive):
                            if not procs[i].is_alive():  # died without saying goodbye (killed, segfault)
                                alive.discard(i)
                                job = in_flight.pop(i, None)
                                self._worker_died(
                                    procs[i], job, run_ids.pop(i, None), total, results, on_result
                                )
                        if deadline is not None and time.monotonic() > deadline:
                            break
                        continue
                    if kind == "start":
                        in_flight[worker] = payload
                        run_ids.pop(worker, None)
                    elif kind == "run":
                        run_ids[worker] = payload
                    elif kind == "done":
                        in_flight.pop(worker, None)
                        results[payload.index] = payload
                        if on_result:
                            on_result(payload)
                        if payload.status is RunStatus.ABORTED:
                            interrupted = True
                            stop.set()
                        if fail_fast and payload.status is RunStatus.FAILED:
                            stop.set()
                    elif kind == "error":
                        errors.append(payload)
                    elif kind == "exit":
                        alive.discard(worker)
                except KeyboardInterrupt:
                    # Ctrl-C reaches the workers too (same process group); make sure it does even
                    # when only this process was signalled, then wait for them to record ABORTED.
                    interrupted = True
                    stop.set()
                    signal.signal(signal.SIGINT, signal.SIG_IGN)
                    for i in alive:
                        with contextlib.suppress(OSError):
                            if procs[i].pid is not None:
                                os.kill(procs[i].pid, signal.SIGINT)
                    deadline = time.monotonic() + 60
        finally:
            for p in procs:
                p.join(timeout=10)
                if p.is_alive():
                    p.terminate()
                    p.join(timeout=5)
            with contextlib.suppress(ValueError, TypeError):
                signal.signal(signal.SIGINT, original_sigint)
        if errors and not interrupted:
            raise ExpmanError(f"worker failed: {errors[0]}")
        return interrupted, workdir

    def _worker_died(
        self,
        proc: Any,
        job_index: int | None,
        run_id: int | None,
        total: int,
        results: dict[int, RunResult],
        on_result: Callable[[RunResult], None] | None,
    ) -> None:
        """A worker was killed (OOM killer, segfault...) during a run: record that run FAILED."""
        log.error("worker process %s died (exit code %s)", proc.name, proc.exitcode)
        if job_index is None:
            return
        job = next(j for j in self._jobs() if j.index == job_index)
        result = self._result(job, total)
        result.status, result.run_id = RunStatus.FAILED, run_id
        result.error = f"worker process {proc.name} died (exit code {proc.exitcode})"
        if run_id is not None and self.db_url is not None:
            from .db.manager import DatabaseManager

            try:
                with DatabaseManager(self.db_url) as db:
                    db.finish_trial_run(run_id, RunStatus.FAILED.value, error=result.error)
            except ExpmanError as e:  # the row stays RUNNING; resume re-runs it once stale
                log.error("could not record run %s as FAILED: %s", run_id, e)
        results[job_index] = result
        if on_result:
            on_result(result)


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


@contextlib.contextmanager
def _cwd_importable() -> Iterator[None]:
    """Spawned workers rebuild ``sys.path`` from the parent's: make sure the CWD is on it."""
    cwd = os.getcwd()
    added = cwd not in sys.path and "" not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        yield
    finally:
        if added:
            with contextlib.suppress(ValueError):
                sys.path.remove(cwd)


def spec_db_url(spec: ExperimentSpec) -> str | None:
    """The URL of the experiment's db tracker (``None`` when env.yaml configures none)."""
    for tracker in _plain(spec.env.trackers) or []:
        if isinstance(tracker, dict) and str(tracker.get("type", "")).lower() == "db":
            return tracker.get("url") or f"sqlite:///{spec.workspace / 'expman.db'}"
    return None


def _masked(url: str | None) -> str | None:
    if url is None:
        return None
    from .db.connect import mask_url

    return mask_url(url)


# --------------------------------------------------------------------------- the database ledger


class _Ledger:
    """Reads what the database already holds about an experiment (for resume and refusals)."""

    def __init__(self, url: str | None, manager: Any) -> None:
        self.url = url
        self.manager = manager

    @classmethod
    def open(cls, url: str | None) -> _Ledger:
        if url is None:
            return cls(None, None)
        from .db.connect import parse_url

        parsed = parse_url(url)
        if (
            parsed.backend == "sqlite"
            and parsed.database != ":memory:"
            and not Path(parsed.database).exists()
        ):
            return cls(url, None)  # nothing recorded yet; do not create the file just to look
        from .db.manager import DatabaseManager

        return cls(url, DatabaseManager(url))

    def close(self) -> None:
        if self.manager is not None:
            self.manager.close()

    def plan(
        self, spec: ExperimentSpec, *, resume: bool, force: bool, stale_after: float
    ) -> dict[tuple[str, int], tuple[RunStatus, int]]:
        """Decide what to skip: ``{(trial name, repeat_idx): (recorded status, run id)}``.

        Raises:
            ConfigError: changed config on resume without force; existing runs without resume/force.
        """
        if self.manager is None:
            return {}
        from .db import models as m

        with self.manager.database.bind_ctx(m.ALL_MODELS):
            return self._plan(m, spec, resume=resume, force=force, stale_after=stale_after)

    def _plan(
        self, m: Any, spec: ExperimentSpec, *, resume: bool, force: bool, stale_after: float
    ) -> dict[tuple[str, int], tuple[RunStatus, int]]:
        experiment = (
            m.Experiment.select().where(m.Experiment.title == spec.name).order_by(m.Experiment.id).first()
        )
        if experiment is None:
            return {}
        runs = list(
            m.TrialRun.select(m.TrialRun, m.Trial)
            .join(m.Trial)
            .where(m.Trial.experiment == experiment.id)
            .order_by(m.TrialRun.id)
        )
        where = f"experiment {spec.name!r} in {_masked(self.url)}"
        if not resume:
            if runs and not force:
                counts: dict[str, int] = {}
                for run in runs:
                    counts[run.status] = counts.get(run.status, 0) + 1
                detail = ", ".join(f"{n} {s.lower()}" for s, n in sorted(counts.items()))
                raise ConfigError(
                    f"{where} already has {len(runs)} recorded runs ({detail}); drop --no-resume to run only "
                    "what is unfinished, add --force to record the whole grid again, "
                    "or use another experiment name"
                )
            return {}
        if experiment.config_hash and experiment.config_hash != spec.config_hash:
            if not force:
                raise ConfigError(
                    f"{where}: the configuration changed since it was recorded (config_hash "
                    f"{experiment.config_hash[:12]} -> {spec.config_hash[:12]}); pass --force to resume "
                    "with the new configuration, or use another experiment name"
                )

            def store_new_config() -> None:
                m.Experiment.update(
                    config=spec.to_container(), config_hash=spec.config_hash, update_time=m.utcnow()
                ).where(m.Experiment.id == experiment.id).execute()

            self.manager.run_in_transaction(store_new_config, what="storing the new experiment config")
        latest: dict[tuple[str, int], Any] = {}
        for run in runs:  # ordered by id: the last one wins
            latest[(run.trial.name, run.repeat_idx)] = run
        now = m.utcnow()
        skip: dict[tuple[str, int], tuple[RunStatus, int]] = {}
        for key, run in latest.items():
            try:
                status = RunStatus.parse(run.status)
            except ValueError:
                continue
            if status.finished:
                skip[key] = (status, run.id)
            elif status is RunStatus.RUNNING:
                beat = run.heartbeat or run.update_time or run.start_time
                if beat is not None and (now - beat) < _dt.timedelta(seconds=stale_after):
                    skip[key] = (status, run.id)  # alive elsewhere: do not run it twice
        return skip
