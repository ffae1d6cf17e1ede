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
  looks at each (trial, repeat): COMPLETED and STOPPED runs are skipped (no new row; reported
  SKIPPED), FAILED, ABORTED and LOST runs are run again (a new row; the old one stays as
  history) — except that ABORTED, LOST and faulted FAILED runs with a usable last checkpoint
  continue in their own row (``continue_runs``; see :mod:`lightning_expman.continuation`).
  A changed configuration (``config_hash`` differs from the stored experiment's) is refused
  with a one-line :class:`ConfigError` unless ``force=True``, which then stores the new
  config and hash.
* **Several processes, one grid** (see :mod:`lightning_expman.coordination`). With a db tracker,
  each (trial, repeat) is claimed in the database before it runs, so any number of
  ``expman run`` processes, ``--workers`` and hosts pointed at one database split the grid with
  no duplicate and no gap; each reports only the runs it ran (``ExperimentSummary.elsewhere``
  counts the others). A run whose process died is declared LOST — at once on its own host,
  after ``stale_after`` seconds without a heartbeat elsewhere — and claimed again. A failure that
  happens while this process runs is not retried by it (run the command again to retry).
  Exit code 3 says the grid is unfinished because runs are still in progress elsewhere;
  ``wait=True`` instead polls them and takes over any that are lost.
* **Running into an existing experiment with ``resume=False``** (``--no-resume``) is refused when it
  already has recorded runs; ``force=True`` then records the whole grid again as new rows.
* **Workers.** ``workers=N`` runs trial runs in N ``spawn`` processes; each opens its own trackers
  (and database connection) and claims its runs. The parent creates the experiment, trial and
  claim rows first, so the rows are the same as a serial run's. The working directory is
  importable in workers as in the parent.
* **Ctrl-C** ends the current run(s) ABORTED (recorded), stops the grid and returns a summary with
  ``interrupted=True`` (the CLI exits 130).

Example:
    >>> from lightning_expman import Experiment
    >>> experiment = Experiment.create("configs/digits", overrides=["trainer.max_epochs=2"])
    >>> summary = experiment.run(workers=2)
    >>> print(summary.table())
    >>> summary.exit_code
    0

Layout:

* ``__init__.py``: :class:`Experiment` (loading, planning, :meth:`Experiment.run`);
* ``results.py``: :class:`RunResult`, :class:`ExperimentSummary`;
* ``plan.py``: the grid as picklable jobs, plain configs, the database URL;
* ``ledger.py``: what the database holds already (resume, refusals);
* ``claims.py``: the grid's units registered, claimed and leased (coordination between processes);
* ``runner.py``: executing one run at a time in this process (the parent, each worker, each Ray
  task), signals; ``probe.py``: what the trackers recorded of the run; ``serial.py``: the
  ``local`` executor with one worker;
* ``workers.py``: parallel runs in spawned worker processes;
* ``executors.py``: the executor seam (:class:`Batch` in, :class:`Outcome` out; ``local`` and ``ray``);
* ``ray_executor.py``: runs as Ray tasks on a cluster (``executor="ray"``);
* ``logs.py``: Lightning's console output and per-run log files;
* ``seed.py``: the seed's constructor and factories that read the seed's nested config shape.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..coordination import DEFAULT_STALE_AFTER
from ..enums import RunStatus
from ..errors import ConfigError
from .claims import ClaimOptions
from .executors import EXECUTORS, Batch, Outcome
from .executors import executor as executor_for
from .ledger import _Ledger
from .plan import _Job, _masked, new_result, plan_jobs, spec_db_url
from .results import ExperimentSummary, RunResult
from .runner import _sigterm_as_interrupt
from .seed import SeedShapedFactory, is_default_factory, load_seed_spec

if TYPE_CHECKING:  # pragma: no cover
    from ..config import ExperimentSpec

__all__ = ["DEFAULT_STALE_AFTER", "EXECUTORS", "Experiment", "ExperimentSummary", "RunResult", "spec_db_url"]


class Experiment:
    """A loaded experiment: its spec (trials expanded from grids) and the pipeline factory.

    Create it with :meth:`create`, or the seed's way::

        experiment = Experiment(name="my_experiment", id=1, desc="...", env=env,
                                config_dir_path="path/to/configs")

    (the folder's experiment.yaml, base.yaml and trials.yaml; ``env`` gives the workspace and
    trackers instead of env.yaml; ``factory=`` may be added). Run it with :meth:`run`.

    A custom factory is called with the run's config in the seed's shape: the settings flat
    (``config.epochs``) and under ``settings`` (``config.settings.model_type``), plus the trial's
    ``name``, ``id`` and ``repeat`` (see :mod:`.seed`).

    Attributes:
        spec: the validated :class:`~lightning_expman.config.ExperimentSpec`.
        factory: the pipeline factory (:class:`~lightning_expman.pipeline.PipelineFactory`, or a
            custom one wrapped in :class:`~.seed.SeedShapedFactory`).
    """

    def __init__(
        self,
        spec: ExperimentSpec | None = None,
        factory: Any = None,
        *,
        name: str | None = None,
        id: int | None = None,
        desc: str | None = None,
        env: Any = None,
        config_dir_path: str | Path | None = None,
    ) -> None:
        seed_args = (name, id, desc, env, config_dir_path)
        if spec is None:
            if config_dir_path is None:
                raise TypeError(
                    "Experiment needs config_dir_path= (the seed's constructor) or a loaded spec; "
                    "or use Experiment.create(config_dir)"
                )
            spec = load_seed_spec(config_dir_path, env=env, name=name, id=id, desc=desc)
        elif any(a is not None for a in seed_args):
            raise TypeError(
                "Experiment: give a loaded spec or the seed's name=/env=/config_dir_path=, not both"
            )
        if is_default_factory(factory):
            from ..pipeline import PipelineFactory

            factory = PipelineFactory
        elif not isinstance(factory, SeedShapedFactory):
            factory = SeedShapedFactory(factory, spec)
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
                A custom one decides what the settings mean, so they are checked for ``seed``
                only, and it receives the config in the seed's shape (see the class docstring).
            overrides: ``key=value`` settings overrides (as ``expman run --set``).
            db_url: database URL replacing env.yaml's db tracker URL.

        Raises:
            ConfigError: one line naming the file, key and bad value. Nothing is written.
        """
        from ..config import load

        spec = load(
            config_dir, overrides=list(overrides or []), db_url=db_url, standard=is_default_factory(factory)
        )
        return cls(spec, factory)

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
        wait: bool = False,
        executor: str = "local",
        address: str | None = None,
        on_result: Callable[[RunResult], None] | None = None,
        on_progress: Callable[[str, Any], None] | None = None,
        continue_runs: bool = True,
    ) -> ExperimentSummary:
        """Run every trial x repeat this process claims (see the module docstring for
        resume/force/workers semantics and coordination between processes).

        Args:
            resume: skip runs already COMPLETED/STOPPED, re-run FAILED/ABORTED/LOST ones
                (default). ``False`` refuses an experiment that already has recorded runs.
            workers: number of local worker processes (1 = in this process).
            fail_fast: stop after the first FAILED run.
            force: with ``resume``, accept a changed configuration; without it, run the whole grid
                again even though the experiment already has recorded runs.
            stale_after: the lease of the runs started here: silent for longer (no heartbeat),
                another process declares them LOST and runs them again.
            wait: when nothing is left to claim but runs are in progress elsewhere, wait for them
                (taking over any that are lost) instead of returning with exit code 3.
            executor: ``"local"`` (this process, or ``workers`` local processes) or ``"ray"`` (one
                Ray task per run; see :mod:`lightning_expman.experiment.ray_executor`).
            address: the Ray cluster to use (``"auto"``, ``"ray://host:10001"``); default: start a
                local Ray instance.
            on_result: called with each :class:`RunResult` as it is known (progress output).
            on_progress: live progress of the runs in progress: ``("start", RunResult)`` and
                ``("epoch", EpochProgress)`` (see :mod:`lightning_expman.progress`; local executors).
            continue_runs: continue an interrupted run (ABORTED, LOST, FAILED by a fault) from its
                last checkpoint in the same row (see :mod:`lightning_expman.continuation`);
                ``False`` starts it over as a new row (``expman run --restart``).

        Returns:
            The :class:`ExperimentSummary`.

        Raises:
            ConfigError: a bad ``workers`` value or ``$EXPMAN_DB_RETRY_FOR``, a changed config on
                resume without ``force``, or existing runs without ``resume``/``force``.
        """
        if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
            raise ConfigError(f"workers must be an integer >= 1, got {workers!r}", key="workers")
        if executor not in EXECUTORS:
            raise ConfigError(f"unknown executor {executor!r}; valid: {', '.join(EXECUTORS)}", key="executor")
        from .._env import env_seconds
        from ..db.base import RETRY_FOR_ENV, ManagerBase

        env_seconds(RETRY_FOR_ENV, ManagerBase.retry_for)  # refused before anything is written
        started = time.perf_counter()
        requested_workers = workers
        jobs = plan_jobs(self.spec)
        total = len(jobs)
        ledger = _Ledger.open(self.db_url)
        try:
            previous = ledger.plan(self.spec, resume=resume, force=force)
        finally:
            ledger.close()

        results: dict[int, RunResult] = {}
        todo: list[_Job] = []
        for job in jobs:
            trial = self.spec.trials[job.trial_pos]
            prev = previous.get((trial.name, job.repeat_idx))
            if prev is not None and not (force and not resume):
                result = new_result(self.spec, job, total)
                result.status, result.previous, result.run_id = RunStatus.SKIPPED, prev[0], prev[1]
                results[job.index] = result
                if on_result:
                    on_result(result)
            else:
                todo.append(job)

        outcome = Outcome(False, "", None)
        if todo:
            workers = min(workers, len(todo))  # no idle processes
            execute = executor_for(executor, workers=workers, address=address)
            claims = ClaimOptions(
                stale_after, wait=wait, restart=force and not resume, continue_runs=continue_runs
            )
            batch = Batch(self, todo, total, workers, fail_fast, results, on_result, claims, on_progress)
            with _sigterm_as_interrupt():
                outcome = execute(batch)
        state = outcome.state
        for job in jobs:
            if job.index not in results:
                results[job.index] = new_result(self.spec, job, total)
                unit = state.units.get(job.index) if state is not None else None
                if unit is not None and unit.status is not None:  # another process ran it
                    results[job.index].elsewhere = RunStatus.parse(unit.status)
                    results[job.index].run_id = unit.run_id
        summary = ExperimentSummary(
            experiment=self.spec.name,
            results=[results[j.index] for j in jobs],
            workdir=outcome.workdir or str(self.spec.workspace / self.spec.name),
            db_url=_masked(self.db_url),
            interrupted=outcome.interrupted,
            elapsed=time.perf_counter() - started,
        )
        if self.spec.searches and not outcome.interrupted:  # searched trials: see lightning_expman.search
            from ..search import run_searches

            with _sigterm_as_interrupt():
                summary = run_searches(
                    self,
                    summary,
                    workers=requested_workers,
                    fail_fast=fail_fast,
                    stale_after=stale_after,
                    on_result=on_result,
                    executor=executor,
                    address=address,
                )
        return summary
