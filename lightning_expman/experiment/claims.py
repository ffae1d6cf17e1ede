"""The runner's side of coordination: the grid's units registered, claimed one by one, held by a lease.

Every executor (serial, each local worker process, and any number of other ``expman run``
processes on any host) runs the same loop over the whole grid: :meth:`_GridClaims.claimed`
yields only the jobs this process won (see :mod:`lightning_expman.coordination`), so the grid
is split with no duplicate and no gap, whoever and however many take part.
"""

from __future__ import annotations

import datetime as _dt
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..config._util import to_plain
from ..continuation import ContinuePlan, plan_continue, run_folder, set_aside
from ..coordination import Claim, Claimer, Lease, UnitState, heartbeat_interval, reap
from ..enums import RunStatus
from .plan import _container, _Job, _trial_config

if TYPE_CHECKING:  # pragma: no cover
    from ..config import ExperimentSpec
    from ..db.manager import DatabaseManager

__all__ = ["ClaimOptions", "GridState", "_GridClaims"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClaimOptions:
    """How an executor claims: the lease of its runs, the shared session start, waiting, restarting.

    Attributes:
        stale_after: lease length (seconds) of the runs this process starts.
        started: the session's start on the database clock (a launcher's workers share it).
        wait: keep polling units running elsewhere and claim those that are lost.
        restart: hand every unit not running back first (``--no-resume --force``).
        continue_runs: continue an interrupted unit's run from its last checkpoint (see
            :mod:`lightning_expman.continuation`); ``False`` (``--restart``): a new row from scratch.
    """

    stale_after: float
    started: _dt.datetime | None = None
    wait: bool = False
    restart: bool = False
    continue_runs: bool = True


@dataclass(frozen=True)
class GridState:
    """The grid's units as the database holds them after this process's work."""

    units: dict[int, UnitState]  # job index -> state

    def count(self, *statuses: RunStatus) -> int:
        wanted = {s.value for s in statuses}
        return sum(1 for s in self.units.values() if s.status in wanted)

    @property
    def running(self) -> int:
        return self.count(RunStatus.RUNNING)

    @property
    def complete(self) -> bool:
        return all(s.done for s in self.units.values())


class _GridClaims:
    """Claims the grid's (trial, repeat) units for this process, in grid order.

    Args:
        manager: the experiment's database.
        spec: the experiment.
        experiment_id: its database id.
        stale_after: lease length of the runs this process starts.
        started: the claiming session's start on the database clock (parent and workers share one).
        wait: after the first pass, keep polling units running elsewhere and claim those that are lost.
    """

    def __init__(
        self,
        manager: DatabaseManager,
        spec: ExperimentSpec,
        experiment_id: int,
        *,
        stale_after: float,
        started: _dt.datetime | None = None,
        wait: bool = False,
        continue_runs: bool = True,
    ) -> None:
        self.manager = manager
        self.spec = spec
        self.experiment_id = experiment_id
        self.claimer = Claimer(manager, stale_after=stale_after, started=started)
        self.wait = wait
        self.trial_ids: dict[int, int] = {}  # trial position -> trial id
        self.continue_runs = continue_runs
        self.continue_from: dict[int, str] = {}  # continued run id -> its last checkpoint
        self._next_reap = 0.0  # claim_new: when it reaps next (time.monotonic)

    @property
    def started(self) -> _dt.datetime:
        return self.claimer.started

    def prepare(self, jobs: list[_Job]) -> None:
        """Create the jobs' trial rows and claim rows (idempotent; any process may do it)."""
        from ..db import models as m

        for pos in sorted({job.trial_pos for job in jobs}):
            trial = self.spec.trials[pos]
            self.trial_ids[pos] = self.manager.get_or_create_trial(
                self.experiment_id, trial.name, config=_trial_config(trial), tags=to_plain(trial.tags)
            ).id
        # A unit recorded before claims existed (release 1) starts from its latest run.
        TR = m.TrialRun
        latest = dict(
            ((t, r), run)
            for t, r, run in TR.select(TR.trial, TR.repeat_idx, TR.id)
            .where(TR.trial.in_(list(self.trial_ids.values())))
            .order_by(TR.id)
            .tuples()
            .execute(self.manager.database)
        )
        units = [(self.trial_ids[j.trial_pos], j.repeat_idx) for j in jobs]
        self.claimer.register(units, latest)

    def claim_new(self, job: _Job, trial_id: int | None = None) -> Claim | None:
        """Claim ``job``'s unit of a trial that no other process runs (a sampled search trial:
        its Optuna trial number is this process's alone). ``None``: the unit is done or taken.

        The short path of :meth:`prepare` + :meth:`claimed` (a search pays it for every sampled
        trial): the trial row is created once, no run predates the unit and there is nothing to
        wait for, so no unit states are read and the unit is registered in its claim's
        transaction. Runs of dead processes are still reaped, as every claimer does, at most
        once per heartbeat interval (nothing here waits for them: their units are not retried).
        """
        if time.monotonic() >= self._next_reap:
            reap(self.manager)
            self._next_reap = time.monotonic() + heartbeat_interval(self.claimer.stale_after)
        if trial_id is not None:  # the trial's row exists already (the runner opened its level)
            self.trial_ids[job.trial_pos] = trial_id
        if job.trial_pos not in self.trial_ids:
            trial = self.spec.trials[job.trial_pos]
            self.trial_ids[job.trial_pos] = self.manager.get_or_create_trial(
                self.experiment_id, trial.name, config=_trial_config(trial), tags=to_plain(trial.tags)
            ).id
        return self.claimer.claim(self.trial_ids[job.trial_pos], job.repeat_idx, register=True, seed=job.seed)

    def restart(self) -> None:
        """``--no-resume --force``: hand every unit not running now back to be claimed again."""
        before = self.claimer.states(self.trial_ids.values())
        self.claimer.release(self.trial_ids.values())
        # Their new runs start in empty folders: the files there now are moved aside with their run.
        names = {tid: self.spec.trials[pos].name for pos, tid in self.trial_ids.items()}
        for (tid, repeat), unit in before.items():
            if unit.run_id is not None and not unit.running:
                set_aside(self.manager, unit.run_id, run_folder(self.spec, names[tid], repeat))

    def claimed(self, jobs: list[_Job]) -> Iterator[tuple[_Job, Claim]]:
        """Yield ``(job, claim)`` for each job this process wins, in order (prepare first).

        A unit is tried at most once per call. With ``wait``, units running elsewhere are polled
        until they end; lost ones are claimed here.
        """
        tried: set[int] = set()
        settle_by = time.monotonic() + 30
        while True:
            reap(self.manager)
            states = self.states(jobs)
            for job in jobs:
                if job.index in tried or not self.claimer.claimable(states.get(job.index)):
                    continue
                plan = self._continue_plan(job, states.get(job.index))
                tid = self.trial_ids[job.trial_pos]
                if plan is not None and plan.continues:
                    claim = self.claimer.claim(tid, job.repeat_idx, continue_run=plan.run_id)
                else:
                    claim = self.claimer.claim(tid, job.repeat_idx, seed=job.seed)
                if claim is None:
                    continue
                if plan is not None and plan.continues and plan.ckpt_path is not None:
                    self.continue_from[claim.run_id] = plan.ckpt_path
                elif plan is not None and plan.run_id is not None:  # a new row: never in the old files
                    trial = self.spec.trials[job.trial_pos]
                    set_aside(self.manager, plan.run_id, run_folder(self.spec, trial.name, job.repeat_idx))
                tried.add(job.index)
                yield job, claim
            states = self.states(jobs)
            # A unit with no run yet was being claimed by another process right then (its row
            # locked, SKIP LOCKED passed it by): look again until its claim commits, or take it.
            unsettled = [j for j in jobs if j.index not in tried and states[j.index].status is None]
            if unsettled and time.monotonic() < settle_by:
                time.sleep(0.05)
                continue
            if not self.wait:
                return
            waiting = [
                j for j in jobs if states[j.index].running or self._lost_untried(states[j.index], j, tried)
            ]
            if not waiting:
                return
            time.sleep(max(0.5, heartbeat_interval(self.claimer.stale_after)))

    def _continue_plan(self, job: _Job, state: UnitState | None) -> ContinuePlan | None:
        """Whether the unit's interrupted run is continued from its last checkpoint (``None``: no run)."""
        if state is None or state.run_id is None:
            return None
        if not self.continue_runs:
            return ContinuePlan(state.run_id, None, "--restart: a new run from scratch")
        trial = self.spec.trials[job.trial_pos]
        run_dir = run_folder(self.spec, trial.name, job.repeat_idx)
        plan = plan_continue(
            self.manager, state.run_id, state.status, run_dir, _container(trial.run_settings(job.seed))
        )
        log.info("%s run %s: %s", trial.name, job.repeat_idx, plan.reason)
        return plan

    def _lost_untried(self, state: UnitState, job: _Job, tried: set[int]) -> bool:
        return state.status == RunStatus.LOST.value and job.index not in tried

    def states(self, jobs: list[_Job]) -> dict[int, UnitState]:
        """The jobs' units as the database holds them (one query; LOST shown, nothing written)."""
        found = self.claimer.states(self.trial_ids.values())
        out = {}
        for job in jobs:
            tid = self.trial_ids[job.trial_pos]
            out[job.index] = found.get((tid, job.repeat_idx)) or UnitState(
                tid, job.repeat_idx, None, None, None
            )
        return out

    def grid_state(self, jobs: list[_Job]) -> GridState:
        return GridState(self.states(jobs))

    def lease(self, claim: Claim) -> Lease:
        """The heartbeat of a claimed run (started by the caller, stopped when the run is recorded)."""
        return Lease(self.manager, claim.run_id, claim.owner, stale_after=claim.stale_after)

    def settle(self, claim: Claim, status: RunStatus, error: str | None) -> None:
        """End a claimed run the pipeline never recorded (it failed before its run opened)."""
        run = self.manager._get_run(claim.run_id)
        if run.status == RunStatus.RUNNING.value and run.owner == claim.owner:
            self.manager.finish_trial_run(claim.run_id, status.value, error=error, owner=claim.owner)
