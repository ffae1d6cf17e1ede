"""The ``local`` executor with one worker: the jobs this process claims, one after the other,
through the same :class:`~lightning_expman.experiment.runner._Runner` the workers use."""

from __future__ import annotations

from ..enums import RunStatus
from .claims import GridState
from .executors import Batch, Outcome
from .logs import _quiet_lightning
from .runner import _Interrupted, _Runner

__all__ = ["run_serial"]


def run_serial(batch: Batch) -> Outcome:
    """The ``local`` executor with one worker: the jobs this process claims, one after the other."""
    experiment, claims = batch.experiment, batch.claims
    runner = _Runner(experiment.spec, experiment.factory, claims=claims, on_progress=batch.on_progress)
    interrupted = False
    state: GridState | None = None
    with _quiet_lightning(bool(getattr(experiment.spec.env, "verbose", False))):
        try:
            runner.open()
            if runner.grid is not None and claims is not None and claims.restart:
                runner.grid.prepare(batch.todo)
                runner.grid.restart()
            for job, claim in runner.jobs(batch.todo):
                try:
                    result = runner.run_job(job, batch.total, claim)
                except _Interrupted as e:
                    result, interrupted = e.result, True
                batch.report(result)
                if interrupted or batch.stops_after(result):
                    break
            if runner.grid is not None:
                state = runner.grid.grid_state(batch.todo)
        except KeyboardInterrupt:
            interrupted = True  # between runs: nothing is open below TRIAL
        finally:
            runner.close(RunStatus.ABORTED if interrupted else RunStatus.COMPLETED)
    workdir = str(runner.exp_env.workdir) if runner.exp_env is not None else ""
    return Outcome(interrupted, workdir, state)
