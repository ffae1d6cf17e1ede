"""Parallel runs in local ``spawn`` worker processes: the parent's event loop
(:func:`run_parallel`), each worker's entry point (:func:`_worker_main`), and recording a run
whose worker died.

Each worker opens its own trackers and database connection and claims its jobs like any other
launcher; the parent creates the experiment, trial and claim rows first and shares its claiming
session's start, so the rows are the same as a serial run's.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import queue
import signal
import sys
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ..enums import RunStatus
from ..errors import ExpmanError
from ..masking import MaskingStream
from .claims import ClaimOptions
from .executors import Batch, Outcome
from .logs import _quiet_lightning
from .plan import _Job, new_result
from .runner import _Interrupted, _raise_interrupt, _Runner

if TYPE_CHECKING:  # pragma: no cover
    from ..config import ExperimentSpec

log = logging.getLogger(__name__)


def _worker_main(
    spec: ExperimentSpec,
    factory: Any,
    total: int,
    todo: list[_Job],
    tasks: Any,
    results: Any,
    stop: Any,
    ready: Any,
    worker_id: int,
    workers: int,
    claims: ClaimOptions | None,
) -> None:
    """Entry point of a worker process (spawned): run the jobs it claims (with a db tracker;
    the launcher's session start comes through ``ready``), else the jobs from ``tasks``.

    Imports torch/lightning first, then waits until the parent has created the experiment and
    trial rows (``ready``). Each worker uses ``cpu_count // workers`` torch threads (at least 1)
    so that N workers do not oversubscribe the cores.
    """

    def on_sigint(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # one Ctrl-C is enough; let cleanup finish
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_sigint)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    # The worker's console is the launcher's: masked like it (the spec brought its secrets along).
    sys.stdout, sys.stderr = MaskingStream(sys.stdout), MaskingStream(sys.stderr)
    status = RunStatus.COMPLETED
    quiet = contextlib.ExitStack()
    runner: _Runner | None = None
    try:
        import torch

        torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))
        quiet.enter_context(_quiet_lightning(bool(getattr(spec.env, "verbose", False))))
        ready.wait()
        if stop.is_set():
            return
        if claims is not None:
            claims = dataclasses.replace(claims, started=tasks.get())  # the shared session start
        runner = _Runner(
            spec,
            factory,
            save_configs=False,
            on_run_open=lambda run_id: results.put(("run", worker_id, run_id)),
            claims=claims,
            on_progress=lambda kind, payload: results.put(("progress", worker_id, (kind, payload))),
        )
        runner.open()
        for job, claim in runner.jobs(todo) if runner.grid is not None else _from_queue(tasks):
            if stop.is_set():
                break
            results.put(("start", worker_id, job.index))
            if claim is not None:
                results.put(("run", worker_id, claim.run_id))
            try:
                result = runner.run_job(job, total, claim)
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
            if runner is not None:
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


def _from_queue(tasks: Any) -> Iterator[tuple[_Job, None]]:
    """Jobs handed out by the parent (no database to claim in): until a ``None``."""
    while (job := tasks.get()) is not None:
        yield job, None


def run_parallel(batch: Batch) -> Outcome:
    """The ``local`` executor with ``batch.workers`` spawned processes.

    With a db tracker every worker claims its jobs like an independent launcher would (so they
    split the grid with any other process); without one the parent hands the jobs out.
    """
    import multiprocessing as mp

    experiment, todo, total, workers, claims = (
        batch.experiment,
        batch.todo,
        batch.total,
        batch.workers,
        batch.claims,
    )

    ctx = mp.get_context("spawn")
    tasks, events, stop, ready = ctx.Queue(), ctx.Queue(), ctx.Event(), ctx.Event()
    # Workers start first: importing torch/lightning (seconds) overlaps the work below.
    with _cwd_importable():
        procs = [
            ctx.Process(
                target=_worker_main,
                args=(
                    experiment.spec,
                    experiment.factory,
                    total,
                    todo,
                    tasks,
                    events,
                    stop,
                    ready,
                    i,
                    workers,
                    claims,
                ),
                name=f"expman-worker-{i}",
                daemon=False,
            )
            for i in range(workers)
        ]
        for p in procs:
            p.start()
    # Create the experiment, trial and claim rows (in grid order) and folders once, here, before
    # the workers open them, so that no two processes race to create the same row.
    runner = _Runner(experiment.spec, experiment.factory, claims=claims)
    try:
        runner.open()
        for pos in sorted({job.trial_pos for job in todo}):
            runner._enter_trial(pos)
        runner._leave_trial()
        if runner.grid is not None:
            runner.grid.prepare(todo)
            if claims is not None and claims.restart:
                runner.grid.restart()
            for _ in range(workers):
                tasks.put(runner.grid.started)
        else:
            for job in todo:
                tasks.put(job)
            for _ in range(workers):
                tasks.put(None)
    except BaseException:
        stop.set()
        ready.set()
        for p in procs:
            p.join(timeout=30)
        runner.close()
        raise
    workdir = str(runner.exp_env.workdir) if runner.exp_env is not None else ""
    ready.set()
    try:
        interrupted = _collect(batch, procs, events, stop)
        state = runner.grid.grid_state(todo) if runner.grid is not None else None
    finally:
        runner.close()
    return Outcome(interrupted, workdir, state)


def _collect(batch: Batch, procs: list[Any], events: Any, stop: Any) -> bool:
    """The parent's event loop: results as they come, dead workers, Ctrl-C; returns ``interrupted``."""
    in_flight: dict[int, int] = {}  # worker -> job index
    run_ids: dict[int, int | None] = {}  # worker -> trial_run id of its job
    alive = set(range(len(procs)))
    interrupted = False
    errors: list[str] = []
    deadline: float | None = None
    next_check = time.monotonic() + 0.5
    original_sigint = signal.getsignal(signal.SIGINT)
    try:
        while alive:
            try:
                # Every 0.5 s, busy or not: the other workers' progress events must not hide
                # one that died without saying goodbye (killed, segfault).
                if time.monotonic() >= next_check:
                    next_check = time.monotonic() + 0.5
                    for i in list(alive):
                        if not procs[i].is_alive():
                            alive.discard(i)
                            job = in_flight.pop(i, None)
                            _worker_died(batch, procs[i], job, run_ids.pop(i, None))
                    if deadline is not None and time.monotonic() > deadline:
                        break
                try:
                    kind, worker, payload = events.get(timeout=0.5)
                except queue.Empty:
                    continue
                if kind == "start":
                    in_flight[worker] = payload
                    run_ids.pop(worker, None)
                elif kind == "run":
                    run_ids[worker] = payload
                elif kind == "progress":
                    batch.progress(*payload)
                elif kind == "done":
                    in_flight.pop(worker, None)
                    batch.report(payload)
                    if payload.status is RunStatus.ABORTED:
                        interrupted = True
                        stop.set()
                    if batch.stops_after(payload):
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
    return interrupted


def _worker_died(batch: Batch, proc: Any, job_index: int | None, run_id: int | None) -> None:
    """A worker was killed (OOM killer, segfault...) during a run: its run is LOST (its process is
    gone), so a later ``expman run`` — or a ``--wait`` launcher — runs it again."""
    log.error("worker process %s died (exit code %s)", proc.name, proc.exitcode)
    if job_index is None:
        return
    experiment = batch.experiment
    job = next(j for j in batch.todo if j.index == job_index)
    result = new_result(experiment.spec, job, batch.total)
    result.status, result.run_id = RunStatus.LOST, run_id
    result.error = f"worker process {proc.name} died (exit code {proc.exitcode})"
    if run_id is not None and experiment.db_url is not None:
        from ..coordination import reap
        from ..db.manager import DatabaseManager

        try:
            with DatabaseManager(experiment.db_url) as db:
                reap(db, [run_id])
        except ExpmanError as e:  # the row stays RUNNING until its lease expires
            log.error("could not record run %s as LOST: %s", run_id, e)
    batch.report(result)


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
