"""Executing searches: the loop every process runs (ask -> TRIAL -> claimed repeats -> tell),
in this process or in ``--workers N`` spawned processes, each an independent planner.

Runs go through the experiment runner (:class:`~lightning_expman.experiment.runner._Runner`):
every (trial, repeat) is claimed in the database before it runs, recorded like a grid run, and
leased; only the planning is new here.
"""

from __future__ import annotations

import copy
import logging
import multiprocessing as mp
import os
import queue as _queue
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..enums import RunStatus
from ..errors import ConfigError
from ..experiment.claims import ClaimOptions
from ..experiment.logs import _quiet_lightning
from ..experiment.results import RunResult
from ..experiment.runner import _Runner

if TYPE_CHECKING:  # pragma: no cover
    from ..config import ExperimentSpec
    from .planner import Planner

__all__ = ["search_loop", "search_parallel"]

log = logging.getLogger(__name__)


class _Loop:
    """One process's search loop over every searched trial of the experiment."""

    def __init__(
        self,
        spec: ExperimentSpec,
        factory: Any,
        claims: ClaimOptions,
        on_result: Callable[[RunResult], None] | None,
        fail_fast: bool,
        first_index: int,
        planners: list[Planner] | None = None,
    ) -> None:
        self.planners = planners  # built by the caller already (in-process runs), else here
        # The runner reads trials by position: give it a spec whose trials are the sampled ones.
        self.spec = spec
        self.run_spec = copy.copy(spec)
        self.run_spec.trials = []
        self.runner = _Runner(self.run_spec, factory, claims=claims)
        self.claims = claims
        self.on_result = on_result
        self.fail_fast = fail_fast
        self.index = first_index
        self.total = first_index + sum(s.num_trials * t.repeat for t, s in spec.searches)
        self.results: list[RunResult] = []
        self.interrupted = False
        self.failed = False

    def run(self) -> None:
        from .planner import Planner

        runner = self.runner
        db_url = _db_url(self.spec)
        own: list[Planner] = []  # built here (a worker process): closed here
        with _quiet_lightning(bool(getattr(self.spec.env, "verbose", False))):
            status = RunStatus.COMPLETED
            try:
                runner.open()
                if self.planners is None:
                    own = [
                        Planner(self.spec, template, search, db_url, self.claims.stale_after)
                        for template, search in self.spec.searches
                    ]
                for planner in self.planners or own:
                    while not self.interrupted and not (self.fail_fast and self.failed):
                        trial = planner.ask()
                        if trial is None:
                            break
                        self._trial(planner, trial)
            except KeyboardInterrupt:
                self.interrupted = True
            finally:
                if self.interrupted:
                    status = RunStatus.ABORTED
                runner.close(status)
                for planner in own:
                    planner.close()

    def _trial(self, planner: Planner, trial: Any) -> None:
        from .trial import run_trial

        outcome = None
        try:
            with planner.heartbeat(trial):
                outcome = run_trial(
                    self.runner,
                    planner,
                    trial,
                    first_index=self.index,
                    total=self.total,
                    on_result=self._report,
                )
        finally:
            state = outcome.state if outcome is not None else "aborted"
            planner.tell(trial, outcome.values if outcome is not None else [], state)
        self.index += planner.template.repeat
        self.interrupted = self.interrupted or outcome.interrupted
        self.failed = self.failed or state == "failed"

    def _report(self, result: RunResult) -> None:
        self.results.append(result)
        if self.on_result is not None:
            self.on_result(result)


def _db_url(spec: ExperimentSpec) -> str:
    from ..experiment.plan import spec_db_url

    url = spec_db_url(spec)
    if url is None:
        raise ConfigError(
            "a search: / hpo: block needs a db tracker in env.yaml: the Optuna study lives in the "
            "experiment's database"
        )
    return url


def search_loop(
    spec: ExperimentSpec,
    factory: Any,
    claims: ClaimOptions,
    on_result: Callable[[RunResult], None] | None,
    fail_fast: bool,
    first_index: int = 0,
    planners: list[Planner] | None = None,
) -> tuple[list[RunResult], bool, str]:
    """Run the searches in this process. Returns ``(results, interrupted, workdir)``."""
    loop = _Loop(spec, factory, claims, on_result, fail_fast, first_index, planners)
    loop.run()
    workdir = str(loop.runner.exp_env.workdir) if loop.runner.exp_env is not None else ""
    return loop.results, loop.interrupted, workdir


def _worker(
    spec: Any, factory: Any, claims: ClaimOptions, fail_fast: bool, first: int, out: Any, workers: int
) -> None:
    """Entry point of a spawned search worker: its own planner, runner and claims."""
    error = None
    try:
        import torch

        torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))
        search_loop(spec, factory, claims, lambda r: out.put(("result", r)), fail_fast, first)
    except KeyboardInterrupt:
        out.put(("interrupted", None))
    except BaseException as e:  # reported by the parent
        error = f"{type(e).__name__}: {e}"
    out.put(("exit", error))


def search_parallel(
    spec: ExperimentSpec,
    factory: Any,
    claims: ClaimOptions,
    on_result: Callable[[RunResult], None] | None,
    fail_fast: bool,
    workers: int,
    first_index: int = 0,
) -> tuple[list[RunResult], bool, str]:
    """Run the searches in ``workers`` spawned processes (each asks, runs and tells on its own)."""
    from ..experiment.workers import _cwd_importable

    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    results: list[RunResult] = []
    interrupted = False
    errors: list[str] = []
    with _cwd_importable():
        procs = [
            ctx.Process(
                target=_worker,
                args=(spec, factory, claims, fail_fast, first_index + 100_000 * (i + 1), out, workers),
                daemon=False,
            )
            for i in range(workers)
        ]
        for p in procs:
            p.start()
    alive = workers
    try:
        while alive:
            try:
                kind, payload = out.get(timeout=1.0)
            except _queue.Empty:
                if not any(p.is_alive() for p in procs):
                    break
                continue
            if kind == "result":
                results.append(payload)
                payload.index = first_index + len(results)
                if on_result is not None:
                    on_result(payload)
            elif kind == "interrupted":
                interrupted = True
            elif kind == "exit":
                alive -= 1
                if payload:
                    errors.append(payload)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        for p in procs:
            p.join()
    if errors:
        log.error("search worker failed: %s", "; ".join(errors))
        if not results:
            raise ConfigError(errors[0])
    return results, interrupted, str(spec.workspace / spec.name)
