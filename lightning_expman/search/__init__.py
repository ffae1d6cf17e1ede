"""Hyperparameter search with Optuna: a trial with a ``search:`` (or the guide's ``hpo:``) block
is a *template*; its trials are sampled by an Optuna study and each runs like a grid trial.

A search is a planner, not a runner: it asks Optuna for the next parameters, turns them into a
TRIAL (settings = the template's with the sampled values, name ``<template>-t<number>``), runs
its repeats through the experiment runner (claims, leases, trackers: the same rows as a grid
trial), and tells Optuna the mean over the repeats of the search's metric.

Decisions where the issue is silent:

* **Objective.** Each repeat contributes its *best* epoch value of ``metric`` (what a checkpoint
  keeps; ``objective: last`` takes the final epoch instead); Optuna is told the mean over the
  repeats; with several repeats each one's value is kept in the trial's user attribute
  ``expman_repeat_values``.
* **Pruning** (:mod:`.pruning`): repeat 1 reports per epoch; a pruned repeat 1 prunes the trial
  (status ``PRUNED``, its epochs kept) and the other repeats are not run.
* **Failures.** A trial with a FAILED repeat is told FAIL and counts towards ``num_trials`` (so
  a broken configuration is not retried forever); an ABORTED one (Ctrl-C) and a stale one (its
  process died: no Optuna heartbeat within the grace period) do not count and
  are replaced on the next run.
* **Resume.** Running the experiment again continues the same study (one study per searched
  trial, ``<experiment>/<trial>``, in the experiment's database) up to ``num_trials``: finished
  trials are untouched. A changed search block is a changed configuration (refused without
  ``--force``, as for grids).
* **A new study** needs a new experiment name: ``--no-resume --force`` re-runs the grid trials
  but the study continues (Optuna cannot empty a study; its finished trials are results).
* **DDP.** The pruning callback reports from global rank zero and broadcasts the decision, so
  every rank stops at the same epoch (tested with ``ddp``, 2 CPU processes); the planner itself
  runs in the launching process.
* **Workers / processes / Ray.** Each process (``--workers N`` spawns N) is an independent
  planner on the shared study; with ``--executor ray`` the driver plans and each sampled trial
  runs as a Ray task (:mod:`.ray`). The budget is exact across any mix of them (see
  :mod:`.planner`).
* **Grid trials beside searches** run first, as usual; then the searches.

Layout: ``space.py`` (distributions, sampler, pruner), ``planner.py`` (the study, ask/tell,
budget, trial names), ``pruning.py`` (the Lightning callback), ``trial.py`` (one sampled
trial's repeats, in any process), ``execute.py`` (the loop, in this process or in workers),
``ray.py`` (the Ray driver and task); the report's charts are in
:mod:`lightning_expman.report.search`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from ..experiment import Experiment
    from ..experiment.results import ExperimentSummary, RunResult

__all__ = ["run_searches"]


def run_searches(
    experiment: Experiment,
    summary: ExperimentSummary,
    *,
    workers: int,
    fail_fast: bool,
    stale_after: float,
    on_result: Callable[[RunResult], None] | None = None,
    executor: str = "local",
    address: str | None = None,
) -> ExperimentSummary:
    """Run the experiment's searches after its grid trials; the summary gains their runs.

    Raises:
        ConfigError: no db tracker, Optuna missing, a bad sampler/pruner option (before any
            search trial is written).
    """
    from ..experiment.claims import ClaimOptions
    from .execute import _db_url, search_loop, search_parallel
    from .planner import Planner

    spec = experiment.spec
    started = time.perf_counter()
    db_url = _db_url(spec)
    # The studies (and Optuna's tables) are created here once, before any worker starts.
    planners = [Planner(spec, template, search, db_url, stale_after) for template, search in spec.searches]
    claims = ClaimOptions(stale_after)
    first = len(summary.results)
    try:
        if executor == "ray":
            from .ray import search_ray

            results, interrupted, workdir = search_ray(
                experiment, planners, claims, on_result, fail_fast, first, address
            )
        elif workers > 1:
            results, interrupted, workdir = search_parallel(
                spec, experiment.factory, claims, on_result, fail_fast, workers, first
            )
        else:
            results, interrupted, workdir = search_loop(
                spec, experiment.factory, claims, on_result, fail_fast, first, planners
            )
    finally:
        for planner in planners:
            planner.close()
    if not results and not summary.results and interrupted:
        raise ConfigError("interrupted before the search started")
    return dataclasses.replace(
        summary,
        results=[*summary.results, *results],
        interrupted=summary.interrupted or interrupted,
        workdir=summary.workdir or workdir,
        elapsed=summary.elapsed + time.perf_counter() - started,
    )
