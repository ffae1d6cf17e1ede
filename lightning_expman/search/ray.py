"""Searches on a Ray cluster: ``expman run CONFIG_DIR --executor ray [--address ...]``.

The driver (this process) is the planner: it asks Optuna for as many trials as the cluster has
room for, submits each sampled trial as one Ray task (reserving the template's
``settings.resources``, default one CPU), keeps the trial's Optuna heartbeat while the task runs
and tells Optuna what the task reports. The task rebuilds the trial from the study (the same
database), claims and runs its repeats like the in-process loop
(:func:`~lightning_expman.search.trial.run_trial`: repeat 1 reports to the pruner there) and
returns the :class:`~lightning_expman.search.trial.TrialOutcome`.

Decisions:

* **Budget.** Asking is the planner's (:meth:`Planner.ask`), so the budget is exact whatever
  mix of Ray drivers, ``--workers`` and ``expman run`` processes shares the study.
* **A task that dies** (its worker or node) is not retried by Ray: its trial is told FAIL as
  *not counted* and a new trial replaces it (the dead attempt's run is reaped LOST by the next
  claimer), which is what a resumed study does with a stale trial anyway.
* **Ctrl-C** cancels the tasks (a running one records its run ABORTED) and tells their trials
  FAIL, not counted: the next run replaces them.
* Database, code shipping and SQLite on several nodes: as for grids
  (:mod:`lightning_expman.experiment.ray_executor`).
"""

from __future__ import annotations

import contextlib
import copy
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..enums import RunStatus
from ..experiment.claims import ClaimOptions
from ..experiment.logs import _quiet_lightning
from ..experiment.ray_executor import _check_database, _connect, _ray, task_resources
from ..experiment.results import RunResult
from ..experiment.runner import _Runner
from .trial import TrialOutcome, run_trial

if TYPE_CHECKING:  # pragma: no cover
    from ..config import ExperimentSpec
    from ..experiment import Experiment
    from .planner import Planner

__all__ = ["search_ray"]

log = logging.getLogger(__name__)


def search_ray(
    experiment: Experiment,
    planners: list[Planner],
    claims: ClaimOptions,
    on_result: Callable[[RunResult], None] | None,
    fail_fast: bool,
    first_index: int,
    address: str | None,
) -> tuple[list[RunResult], bool, str]:
    """Run the searches as Ray tasks. Returns ``(results, interrupted, workdir)``.

    Raises:
        ConfigError: Ray is not installed, or SQLite on a multi-node cluster.
    """
    ray = _ray()
    spec = experiment.spec
    _connect(ray, address, spec.source_dir)
    try:
        _check_database(ray, experiment)
        driver = _Driver(ray, experiment, claims, on_result, fail_fast, first_index)
        for pos, planner in enumerate(planners):
            if driver.interrupted or driver.stop:
                break
            driver.search(pos, planner)
        return driver.results, driver.interrupted, str(spec.workspace / spec.name)
    finally:
        ray.shutdown()


class _Driver:
    """Keeps up to a cluster's worth of sampled trials in flight, one Ray task each."""

    def __init__(
        self,
        ray: Any,
        experiment: Experiment,
        claims: ClaimOptions,
        on_result: Callable[[RunResult], None] | None,
        fail_fast: bool,
        first_index: int,
    ) -> None:
        self.ray = ray
        self.spec = experiment.spec
        self.factory = experiment.factory
        self.claims = claims
        self.on_result = on_result
        self.fail_fast = fail_fast
        self.index = first_index
        self.total = first_index + sum(s.num_trials * t.repeat for t, s in self.spec.searches)
        self.results: list[RunResult] = []
        self.interrupted = False
        self.stop = False
        self.remote = ray.remote(max_retries=0)(_trial_task)

    def search(self, pos: int, planner: Planner) -> None:
        """Run search ``pos`` (``spec.searches[pos]``) to its budget."""
        resources = task_resources(planner.template.settings)
        window = max(1, int(self.ray.cluster_resources().get("CPU", 1) // max(1.0, resources["num_cpus"])))
        in_flight: dict[Any, tuple[Any, contextlib.ExitStack]] = {}  # task -> (trial, its heartbeat)
        asking = True
        try:
            while True:
                while asking and not self.stop and len(in_flight) < window:
                    trial = planner.ask()
                    if trial is None:
                        asking = False
                        break
                    beat = contextlib.ExitStack()
                    beat.enter_context(planner.heartbeat(trial))
                    ref = self.remote.options(**resources).remote(
                        self.spec, self.factory, pos, trial._trial_id, self.index, self.total, self.claims
                    )
                    self.index += planner.template.repeat
                    in_flight[ref] = (trial, beat)
                if not in_flight:
                    return
                done, _ = self.ray.wait(list(in_flight), num_returns=1)
                for ref in done:
                    self._finish(planner, ref, *in_flight.pop(ref))
        except KeyboardInterrupt:
            self.interrupted = True
            self._cancel(planner, in_flight)

    def _finish(self, planner: Planner, ref: Any, trial: Any, beat: contextlib.ExitStack) -> None:
        try:
            outcome: TrialOutcome = self.ray.get(ref)
        except Exception as e:  # the task died or was cancelled: the trial is replaced
            last = (str(e).strip().splitlines() or [""])[-1][:300]
            log.warning("search trial %s: its Ray task failed (%s: %s)", trial.number, type(e).__name__, last)
            outcome = TrialOutcome(state="aborted")
        finally:
            beat.close()
        planner.tell(trial, outcome.values, outcome.state)
        for result in outcome.results:
            self.results.append(result)
            if self.on_result is not None:
                self.on_result(result)
        self.interrupted = self.interrupted or outcome.interrupted
        self.stop = self.stop or self.interrupted or (self.fail_fast and outcome.state == "failed")

    def _cancel(self, planner: Planner, in_flight: dict[Any, tuple[Any, contextlib.ExitStack]]) -> None:
        """Ctrl-C: cancel every task (a running one records its run ABORTED), wait up to 60 s."""
        for ref in in_flight:
            with contextlib.suppress(Exception):
                self.ray.cancel(ref)
        deadline = time.monotonic() + 60
        while in_flight and time.monotonic() < deadline:
            timeout = max(0.1, deadline - time.monotonic())
            done, _ = self.ray.wait(list(in_flight), num_returns=1, timeout=timeout)
            for ref in done:
                self._finish(planner, ref, *in_flight.pop(ref))
        for trial, beat in in_flight.values():  # never came back: replaced on the next run
            beat.close()
            planner.tell(trial, [], "aborted")


def _trial_task(
    spec: ExperimentSpec,
    factory: Any,
    search_pos: int,
    trial_id: int,
    first_index: int,
    total: int,
    claims: ClaimOptions,
) -> TrialOutcome:
    """One sampled trial inside a Ray task: its repeats, claimed and recorded here."""
    import torch

    from .execute import _db_url
    from .planner import Planner

    template, search = spec.searches[search_pos]
    torch.set_num_threads(max(1, int(task_resources(template.settings)["num_cpus"])))
    planner = Planner(spec, template, search, _db_url(spec), claims.stale_after)
    trial = planner.optuna.trial.Trial(planner.study, trial_id)
    run_spec = copy.copy(spec)
    run_spec.trials = []  # the runner reads trials by position: this task's one sampled trial
    runner = _Runner(run_spec, factory, save_configs=False, claims=claims)
    outcome = TrialOutcome(state="aborted", interrupted=True)
    with _quiet_lightning(bool(getattr(spec.env, "verbose", False))):
        try:
            runner.open()
            outcome = run_trial(runner, planner, trial, first_index=first_index, total=total)
        finally:
            runner.close(RunStatus.ABORTED if outcome.interrupted else RunStatus.COMPLETED)
            planner.close()
    return outcome
