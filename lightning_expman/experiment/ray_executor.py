"""Runs on a Ray cluster: ``expman run CONFIG_DIR --executor ray [--address auto|ray://host:10001]``.

The driver (this process) claims the grid's units in the shared database as the cluster has room
for them, and submits each claimed (trial, repeat) as one Ray task reserving the resources its
settings ask for (``resources: {cpus: 2, gpus: 1, memory: 4e9}``; default one CPU). Ray gives a
GPU task its own devices (``CUDA_VISIBLE_DEVICES``). The task adopts the claim (the lease passes
to it: it renews the heartbeat where the work happens) and records the run like a local worker;
its :class:`~lightning_expman.experiment.results.RunResult` comes back to the driver, which prints
one progress line per run.

Decisions:

* **Database.** Every node writes into the experiment's database, so a multi-node cluster needs
  a server (MySQL/MariaDB or PostgreSQL); SQLite is refused there with a one-line error (it is
  fine on a single-node Ray instance, which ``--executor ray`` without ``--address`` starts).
* **Node failures.** Ray retries a task whose worker or node died (``max_retries``). The retry
  finds its claim already adopted by the dead attempt: that attempt's run is declared LOST and the
  unit is claimed anew, so a unit is never recorded twice (:meth:`Claimer.adopt`).
* **Splitting.** The driver keeps at most as many units in flight as the cluster has CPUs, so
  several drivers (or ``expman run`` processes on other machines) pointed at the same grid and
  database split it.
* **Ctrl-C** cancels the tasks: a running one records its run ABORTED, a queued one never starts
  and the driver records its claimed run ABORTED. Ray delivers a cancel as a KeyboardInterrupt in
  the task's main thread, which is lost when it arrives while the task is still starting (or
  when the task ignores SIGINT), so the driver sends it again every few seconds; a task still
  running after ``EXPMAN_RAY_CANCEL_GRACE`` seconds (default 60) is killed and its run recorded
  ABORTED by the driver.
* **Code.** Tasks import the model classes by class path: the driver's working directory and
  the config folder are put on the tasks' ``PYTHONPATH``; on a multi-machine cluster install
  your package on every node (or share the folder). Run folders (checkpoints, logs) are written
  on the node that ran the task.

Ray is an optional dependency (``pip install 'lightning-expman[ray]'``), imported only here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import time
from typing import TYPE_CHECKING, Any

from .._env import env_seconds
from ..coordination import Claim, declare_lost
from ..enums import RunStatus
from ..errors import ConfigError
from .claims import ClaimOptions
from .executors import Batch, Outcome
from .plan import _Job, new_result
from .results import RunResult
from .runner import _Interrupted, _Runner

if TYPE_CHECKING:  # pragma: no cover
    from ..config import ExperimentSpec
    from . import Experiment

__all__ = ["run_ray"]

log = logging.getLogger(__name__)

MAX_RETRIES = 3
"""How often Ray re-runs a task whose worker process or node died."""

CANCEL_GRACE_ENV = "EXPMAN_RAY_CANCEL_GRACE"
"""Seconds Ctrl-C waits for cancelled tasks to record their runs before it kills them (default 60)."""

_RECANCEL_EVERY_S = 5.0
_CANCELLED = "interrupted: its Ray task was cancelled"


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError(
            "--executor ray needs Ray: pip install 'lightning-expman[ray]'", key="executor"
        ) from None
    return ray


def task_resources(settings: Any) -> dict[str, float]:
    """Ray ``.options()`` for one run from ``settings.resources`` (default: one CPU)."""
    res = dict(getattr(settings, "get", lambda *_: None)("resources") or {})
    options: dict[str, float] = {"num_cpus": float(res.get("cpus", 1)), "num_gpus": float(res.get("gpus", 0))}
    if res.get("memory"):
        options["memory"] = float(res["memory"])
    return options


def _connect(ray: Any, address: str | None, config_dir: str | os.PathLike[str]) -> None:
    # Tasks resolve class paths like the driver: its working directory, then the config folder.
    paths = [os.getcwd(), os.path.abspath(config_dir)]
    paths += filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))
    ray.init(
        address=address,
        runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(dict.fromkeys(paths))}},
        log_to_driver=False,  # one progress line per run, not every task's Lightning output
        logging_level=logging.WARNING,
        include_dashboard=False if address is None else None,
        ignore_reinit_error=True,
    )


def _check_database(ray: Any, experiment: Experiment) -> None:
    from ..db.connect import parse_url
    from .plan import _masked

    url = experiment.db_url
    if url is None:
        raise ConfigError(
            "--executor ray records runs through a db tracker: add one to env.yaml", key="executor"
        )
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    if parse_url(url).backend == "sqlite" and len(nodes) > 1:
        raise ConfigError(
            f"--executor ray: the database {_masked(url)} is a SQLite file, which the {len(nodes)} nodes of "
            "this Ray cluster cannot share; use a MySQL/MariaDB or PostgreSQL URL (--db mysql://user@host/db)",
            key="db",
        )


def run_ray(batch: Batch, *, address: str | None = None) -> Outcome:
    """The ``ray`` executor: the jobs this driver claims, each as a Ray task.

    Raises:
        ConfigError: Ray is not installed, no db tracker, or SQLite on a multi-node cluster.
    """
    grace = env_seconds(CANCEL_GRACE_ENV, 60.0)
    ray = _ray()
    _connect(ray, address, batch.experiment.spec.source_dir)
    try:
        _check_database(ray, batch.experiment)
        return _drive(ray, batch, grace)
    finally:
        ray.shutdown()


def _drive(ray: Any, batch: Batch, grace: float) -> Outcome:
    experiment, todo, total = batch.experiment, batch.todo, batch.total
    spec = experiment.spec
    runner = _Runner(spec, experiment.factory, claims=batch.claims)
    runner.open()
    grid = runner.grid
    assert grid is not None  # _check_database made sure there is a db tracker
    interrupted = False
    in_flight: dict[Any, tuple[_Job, Claim, Any]] = {}  # task ref -> (job, claim, driver lease)
    remote = ray.remote(max_retries=MAX_RETRIES, retry_exceptions=False)(_run_task)
    options = dataclasses.replace(
        batch.claims or ClaimOptions(grid.claimer.stale_after), started=grid.started
    )
    try:
        if batch.claims is not None and batch.claims.restart:
            grid.prepare(todo)
            grid.restart()
        window = max(1, int(ray.cluster_resources().get("CPU", 1)))
        source = runner.jobs(todo)
        stop = False
        while True:
            while not stop and len(in_flight) < window:
                nxt = next(source, None)
                if nxt is None:
                    stop = True
                    break
                job, claim = nxt
                assert claim is not None
                lease = grid.lease(claim).start()  # until the task adopts the claim
                resume_from = grid.continue_from.pop(claim.run_id, None)  # a continued run's last.ckpt
                ref = remote.options(**task_resources(spec.trials[job.trial_pos].settings)).remote(
                    spec, experiment.factory, job, claim, total, options, resume_from
                )
                in_flight[ref] = (job, claim, lease)
            if not in_flight:
                break
            done, _ = ray.wait(list(in_flight), num_returns=1)
            for ref in done:
                result = _collect(ray, grid, ref, in_flight.pop(ref), spec, total)
                batch.report(result)
                stop = stop or batch.stops_after(result)
    except KeyboardInterrupt:
        interrupted = True
        _cancel(ray, grid, in_flight, batch, grace)
    finally:
        state = grid.grid_state(todo)
        runner.close(RunStatus.ABORTED if interrupted else RunStatus.COMPLETED)
    return Outcome(interrupted, str(runner.exp_env.workdir) if runner.exp_env is not None else "", state)


def _collect(
    ray: Any,
    grid: Any,
    ref: Any,
    entry: tuple[_Job, Claim, Any],
    spec: ExperimentSpec,
    total: int,
    interrupted: bool = False,
) -> RunResult:
    """The task's result; a task Ray gave up on (retries spent, cancelled) is recorded here:
    LOST, or ABORTED when cancelled or ``interrupted`` (Ctrl-C on the driver)."""
    job, claim, lease = entry
    lease.stop()
    try:
        return ray.get(ref)
    except Exception as e:  # the task never returned: its run must not stay RUNNING
        cancelled = type(e).__name__ == "TaskCancelledError"
        status = RunStatus.ABORTED if cancelled or interrupted else RunStatus.LOST
        last = (str(e).strip().splitlines() or [""])[-1][:300]  # a task error's own last line
        if cancelled or interrupted:
            reason = _CANCELLED
        else:
            reason = f"its Ray task failed: {type(e).__name__}: {last}"
        if status is RunStatus.LOST:
            grid.settle(claim, status, reason)  # still the driver's: it never started
            declare_lost(grid.manager, claim.run_id, reason)  # adopted by a task that died
        else:
            _abort_if_running(grid.manager, claim.run_id, reason)  # never started, or killed
        result = new_result(spec, job, total)
        result.status, result.run_id, result.error = status, claim.run_id, reason
        return result


def _abort_if_running(manager: Any, run_id: int, reason: str) -> None:
    """Record ABORTED a run left RUNNING by a cancelled or killed task (nothing else writes it now)."""
    if manager._get_run(run_id).status == RunStatus.RUNNING.value:
        manager.finish_trial_run(run_id, RunStatus.ABORTED.value, error=reason)


def _cancel(
    ray: Any, grid: Any, in_flight: dict[Any, tuple[_Job, Claim, Any]], batch: Batch, grace: float
) -> None:
    """Ctrl-C: cancel every task (running ones record ABORTED themselves) and collect them.

    A cancel is sent again every few seconds (one that reached a starting task is lost); after
    ``grace`` seconds (:data:`CANCEL_GRACE_ENV`) the tasks left are killed (``force=True``) and recorded here.
    """
    spec, total = batch.experiment.spec, batch.total
    deadline = time.monotonic() + grace
    force = False
    while in_flight:
        for ref in in_flight:
            with contextlib.suppress(Exception):
                ray.cancel(ref, force=force)
        wait = 30.0 if force else min(_RECANCEL_EVERY_S, max(0.1, deadline - time.monotonic()))
        done, _ = ray.wait(list(in_flight), num_returns=len(in_flight), timeout=wait)
        for ref in done:
            result = _collect(ray, grid, ref, in_flight.pop(ref), spec, total, interrupted=True)
            batch.report(result)
        if force:
            break
        if in_flight and time.monotonic() >= deadline:
            log.warning(
                "%d Ray task(s) still running %.0f s after Ctrl-C: killing them",
                len(in_flight),
                grace,
            )
            force = True
    for _job, claim, lease in in_flight.values():  # killed, but Ray did not report them in time
        lease.stop()
        _abort_if_running(grid.manager, claim.run_id, _CANCELLED)


def _run_task(
    spec: ExperimentSpec,
    factory: Any,
    job: _Job,
    claim: Claim,
    total: int,
    options: ClaimOptions,
    resume_from: str | None = None,
) -> RunResult:
    """One (trial, repeat) inside a Ray task: adopt the driver's claim, run it, return the result."""
    import torch

    cpus = task_resources(spec.trials[job.trial_pos].settings)["num_cpus"]
    torch.set_num_threads(max(1, int(cpus)))
    runner = _Runner(spec, factory, save_configs=False, claims=options)
    status = RunStatus.COMPLETED
    try:
        runner.open()
        assert runner.grid is not None
        runner.grid.prepare([job])
        adopted = runner.grid.claimer.adopt(claim, seed=job.seed)
        if adopted is None:  # the unit went elsewhere while this retry waited
            result = new_result(spec, job, total)
            result.elsewhere = RunStatus.RUNNING
            return result
        if resume_from and adopted.run_id == claim.run_id and os.path.exists(resume_from):
            # A continued run: its checkpoint is readable here (the same node, or a shared folder).
            runner.grid.continue_from[adopted.run_id] = resume_from
        try:
            return runner.run_job(job, total, adopted)
        except _Interrupted as e:
            status = RunStatus.ABORTED
            return e.result
    finally:
        runner.close(status)
