"""The executor seam: where a grid's runs execute. One request in, one outcome out.

An executor receives the grid's unfinished jobs (:class:`Batch`), runs those this launcher wins
(every executor claims through :mod:`lightning_expman.coordination`, so any mix of executors,
processes and hosts on one database splits the grid exactly), reports each result as it is known
(``Batch.on_result``) and returns an :class:`Outcome`. Three exist:

========== =============================================================== ======================
name       where                                                           module
========== =============================================================== ======================
``local``  this process (``workers=1``) or ``workers`` spawned processes   ``serial``, ``workers``
``ray``    one Ray task per run, with the run's ``settings.resources``     ``ray_executor``
========== =============================================================== ======================

Example:
    >>> outcome = executor("local", workers=2)(Batch(experiment, todo, total=8, workers=2))
    >>> outcome.interrupted, outcome.state.complete
    (False, True)
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..enums import RunStatus
from ..errors import ConfigError
from .claims import ClaimOptions, GridState
from .plan import _Job
from .results import RunResult

if TYPE_CHECKING:  # pragma: no cover
    from . import Experiment

__all__ = ["EXECUTORS", "Batch", "Executor", "Outcome", "executor"]

EXECUTORS = ("local", "ray")
"""Where runs execute: this machine (serially or in ``workers`` processes), or a Ray cluster."""


@dataclass
class Batch:
    """What an executor is asked to run.

    Attributes:
        experiment: the experiment (spec and pipeline factory).
        todo: the grid's jobs not finished before (each is claimed before it runs).
        total: the number of runs in the grid (for ``[i/total]`` progress lines).
        workers: local worker processes (``local`` executor).
        fail_fast: stop claiming after the first FAILED run.
        results: filled with each run's :class:`RunResult`, by job index.
        on_result: called with each result as it is known.
        claims: how runs are claimed (lease length, session start, waiting, restart).
        on_progress: called with live-progress events (see :meth:`progress`).
    """

    experiment: Experiment
    todo: list[_Job]
    total: int
    workers: int = 1
    fail_fast: bool = False
    results: dict[int, RunResult] = field(default_factory=dict)
    on_result: Callable[[RunResult], None] | None = None
    claims: ClaimOptions | None = None
    on_progress: Callable[[str, Any], None] | None = None

    def progress(self, kind: str, payload: Any) -> None:
        """Pass a live-progress event on (``"start"`` with the run's RunResult, ``"epoch"`` with an
        :class:`~lightning_expman.progress.EpochProgress`)."""
        if self.on_progress:
            self.on_progress(kind, payload)

    def report(self, result: RunResult) -> None:
        """Record ``result`` and pass it to ``on_result``."""
        self.results[result.index] = result
        if self.on_result:
            self.on_result(result)

    def stops_after(self, result: RunResult) -> bool:
        """Whether ``fail_fast`` ends the grid after ``result``."""
        return self.fail_fast and result.status is RunStatus.FAILED


@dataclass(frozen=True)
class Outcome:
    """What an executor did: interrupted by Ctrl-C, the experiment's workspace folder, and the
    grid's units as the database holds them afterwards (``None`` without a db tracker)."""

    interrupted: bool
    workdir: str
    state: GridState | None


Executor = Callable[[Batch], Outcome]


def executor(name: str, *, workers: int = 1, address: str | None = None) -> Executor:
    """The executor called ``name`` (see :data:`EXECUTORS`).

    Raises:
        ConfigError: an unknown name.
    """
    if name == "ray":
        from .ray_executor import run_ray

        return functools.partial(run_ray, address=address)
    if name == "local":
        if workers > 1:
            from .workers import run_parallel

            return run_parallel
        from .serial import run_serial

        return run_serial
    raise ConfigError(f"unknown executor {name!r}; valid: {', '.join(EXECUTORS)}", key="executor")
