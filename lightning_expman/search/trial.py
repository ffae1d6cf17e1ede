"""One sampled trial's repeats, in whichever process runs them: the in-process loop, a
``--workers`` process, or a Ray task (:mod:`.ray`). The caller asks and tells Optuna; this
module claims each repeat, runs it through the experiment runner, marks a pruned fit ``PRUNED``
and reads each repeat's objective value.

Example (what :class:`~lightning_expman.search.execute._Loop` does per trial):
    >>> trial = planner.ask()
    >>> with planner.heartbeat(trial):
    ...     outcome = run_trial(runner, planner, trial, first_index=0, total=20)
    >>> planner.tell(trial, outcome.values, outcome.state)
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..enums import RunStatus
from ..experiment.plan import _Job
from ..experiment.probe import _db_tracker
from ..experiment.results import RunResult
from ..experiment.runner import _Interrupted

if TYPE_CHECKING:  # pragma: no cover
    from ..experiment.runner import _Runner
    from .planner import Planner

__all__ = ["TrialOutcome", "run_trial"]

_OK = (RunStatus.COMPLETED, RunStatus.STOPPED)


@dataclass
class TrialOutcome:
    """What a sampled trial's repeats gave: what to tell Optuna, and the runs' results.

    Attributes:
        state: ``complete``, ``pruned``, ``failed`` (counted) or ``aborted`` (replaced later).
        values: per finished repeat, the objective value per metric.
        results: the runs' results, in order.
        interrupted: Ctrl-C / SIGTERM stopped it.
    """

    state: str = "complete"
    values: list[list[float]] = field(default_factory=list)
    results: list[RunResult] = field(default_factory=list)
    interrupted: bool = False


def run_values(manager: Any, run_id: int, planner: Planner) -> list[float] | str:
    """The run's objective value per metric (best or last epoch), or why there is none."""
    from ..db import models as m

    EM, M = m.EpochMetric, m.MetricRecord
    out = []
    for metric, direction in zip(planner.search.metrics, planner.search.directions):
        q = (
            EM.select(EM.epoch_idx, M.total_val)
            .join(M, on=(EM.metric == M.id))
            .where((EM.trial_run == run_id) & (M.type == metric))
            .order_by(EM.epoch_idx)
            .tuples()
        )
        values = [float(v) for _, v in q.execute(manager.database) if v is not None]
        if not values:
            return f"metric {metric!r} was not logged per epoch by run {run_id}"
        if planner.search.objective == "last":
            out.append(values[-1])
        else:
            out.append(max(values) if direction == "maximize" else min(values))
    return out


def run_trial(
    runner: _Runner,
    planner: Planner,
    trial: Any,
    *,
    first_index: int,
    total: int,
    on_result: Callable[[RunResult], None] | None = None,
) -> TrialOutcome:
    """Run the repeats of Optuna trial ``trial`` (an ``optuna.Trial``) with ``runner`` (opened,
    on a spec whose ``trials`` list the sampled trials run so far: this one is appended).

    Repeat 1 reports to the pruner; a pruned or unsuccessful repeat ends the trial (see the
    package docstring). Never raises for a run's failure or Ctrl-C: both are in the outcome.
    """
    from .pruning import active, pruned_epoch

    tspec = planner.trial_spec(trial, len(runner.spec.trials))
    runner.spec.trials.append(tspec)
    out = TrialOutcome()
    try:
        for k in range(1, tspec.repeat + 1):
            job = _Job(index=first_index + k, trial_pos=tspec.index, repeat_idx=k, seed=tspec.seed + k - 1)
            with active(planner.name, trial) if k == 1 else contextlib.nullcontext():
                result = _run(runner, job, total, out)
            if result is None:  # claimed elsewhere: cannot happen for a fresh trial name
                out.state = "aborted"
                break
            if result.status is RunStatus.PRUNED:  # ended PRUNED by the logger (pruning.py)
                pruned_epoch(planner.name, trial.number)
                out.state = "pruned"
            elif pruned_epoch(planner.name, trial.number) is not None and result.status in _OK:
                _mark_pruned(runner, result)  # a pipeline whose logger is not ExpmanLogger
                out.state = "pruned"
            elif out.interrupted or result.status is RunStatus.ABORTED:
                out.state = "aborted"
            elif result.status in _OK:
                got = run_values(_db_tracker(runner.manager).manager, result.run_id, planner)
                if isinstance(got, str):
                    result.error, out.state = got, "failed"
                else:
                    out.values.append(got)
            else:
                out.state = "failed"
            out.results.append(result)
            if on_result is not None:
                on_result(result)
            if out.state != "complete":
                break
    except KeyboardInterrupt:
        out.interrupted, out.state = True, "aborted"
    return out


def _run(runner: _Runner, job: _Job, total: int, out: TrialOutcome) -> RunResult | None:
    """Claim and run one repeat (``None``: the unit is taken, which a fresh trial never is)."""
    claim = None
    if runner.grid is not None:
        claim = runner.grid.claim_new(job, trial_id=runner.open_trial(job.trial_pos))
        if claim is None:
            return None
    try:
        return runner.run_job(job, total, claim)
    except _Interrupted as e:
        out.interrupted = True
        return e.result


def _mark_pruned(runner: _Runner, result: RunResult) -> None:
    tracker = _db_tracker(runner.manager)
    tracker.flush()
    tracker.manager.finish_trial_run(result.run_id, RunStatus.PRUNED.value)
    result.status = RunStatus.PRUNED
