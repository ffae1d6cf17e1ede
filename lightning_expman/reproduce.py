"""Reproduce a recorded run from its record alone, and compare the final metrics.

:func:`reproduce` reads trial run ``RUN_ID`` from the database — its resolved settings (an
``expman run`` run's config: class paths, init args, Trainer arguments, callbacks) or a drop-in
run's recipe (``context["recipe"]``, see :mod:`lightning_expman.lightning.recipe`), and its seed —
fits it again with the standard :class:`~lightning_expman.pipeline.LightningPipeline` (seeded as
``expman run`` seeds: ``seed_everything(seed)`` before the model is built) and records it as a new
run. :func:`compare` puts the two runs' final metrics side by side.

Decisions:

* **Where the new run goes.** Experiment ``<experiment>-reproduce``, trial of the same name, run
  tagged ``reproduces=<id>`` (the original's id; also in its context). The original experiment's
  runs, aggregates and resume are untouched. Files go to
  ``<workspace>/<experiment>-reproduce/trials/<trial>/reproduces_<id>[_<n>]``.
* **Final metrics** of a run: the values of its last recorded epoch, overridden by its RESULTS
  (test metrics), as ``expman show`` lists them. Every final metric of the original must be
  reproduced within ``tolerance`` (absolute; default 0: bit-for-bit); one that is missing counts as
  different.
* **Environment drift** is reported, not refused: a different git commit or Python / torch /
  lightning version gives a warning line each.

Example:
    >>> from lightning_expman.reproduce import reproduce
    >>> outcome = reproduce("sqlite:///expman_runs/expman.db", 5)
    >>> outcome.ok, outcome.rows[0]
    (True, ('test_acc', 0.9629, 0.9629, 0.0))
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import QueryError

__all__ = ["Outcome", "Record", "compare", "final_metrics", "load_record", "reproduce"]


@dataclass
class Record:
    """What the database holds about a run that is needed to fit it again."""

    run_id: int
    experiment: str
    trial: str
    repeat_idx: int | None
    seed: int | None
    settings: dict[str, Any]
    context: dict[str, Any]
    git_commit: str | None


@dataclass
class Outcome:
    """A reproduction: the new run, the metric table and whether every metric matched."""

    run_id: int | None
    status: str | None
    rows: list[tuple[str, float | None, float | None, float | None]] = field(default_factory=list)
    ok: bool = False
    warnings: list[str] = field(default_factory=list)
    experiment: str = ""


def load_record(manager: Any, run_id: int) -> Record:
    """The record of trial run ``run_id``.

    Raises:
        QueryError: no such run, or a run with neither settings nor a recipe to rebuild it from.
    """
    from .db import models as m

    TR, T, E = m.TrialRun, m.Trial, m.Experiment
    rows = list(
        TR.select(TR, T.name, E.title)
        .join(T, on=(TR.trial == T.id))
        .join(E, on=(T.experiment == E.id))
        .where(TR.id == run_id)
        .execute(manager.database)
    )
    if not rows:
        raise QueryError(f"no trial run {run_id} in {manager.url}")
    run = rows[0]
    config, context = run.config or {}, run.context or {}
    model = config.get("model") if isinstance(config, dict) else None
    if isinstance(model, dict) and "class_path" in model:
        settings = dict(config)  # an `expman run` run: its resolved settings
    elif isinstance(context.get("recipe"), dict) and context["recipe"].get("model"):
        settings = {**context["recipe"], "callbacks": []}  # a drop-in run's recipe
    else:
        raise QueryError(
            f"trial run {run_id} has no settings to rebuild it from (neither an `expman run` config with "
            "model.class_path nor a drop-in recipe: it was recorded by a custom pipeline or an older version)"
        )
    if run.seed is not None:
        settings["seed"] = int(run.seed)
    return Record(
        run_id,
        run.trial.experiment.title,
        run.trial.name,
        run.repeat_idx,
        run.seed,
        settings,
        context,
        run.git_commit,
    )


def final_metrics(manager: Any, run_id: int) -> dict[str, float | None]:
    """The run's final metrics: its last recorded epoch's values, overridden by its RESULTS."""
    from .db import models as m

    last = m.Epoch.select(m.Epoch.idx).where(m.Epoch.trial_run == run_id).order_by(m.Epoch.idx.desc())
    found = last.tuples().first(manager.database)
    values: dict[str, float | None] = {}
    if found is not None:
        values.update({r.type: r.total_val for r in manager.get_epoch_metrics(found[0], run_id)})
    RM, MR = m.ResultsMetric, m.MetricRecord
    q = MR.select(MR.type, MR.total_val).join(RM, on=(RM.metric == MR.id)).where(RM.results == run_id)
    values.update(dict(q.tuples().execute(manager.database)))
    return values


def _differs(a: float | None, b: float | None, tolerance: float) -> float | None:
    """``b - a`` (``None`` when either is missing); NaN-safe."""
    if a is None or b is None:
        return None
    return float(b) - float(a)


def compare(
    recorded: dict[str, float | None], reproduced: dict[str, float | None], tolerance: float = 0.0
) -> tuple[list[tuple[str, float | None, float | None, float | None]], bool]:
    """Rows ``(metric, recorded, reproduced, difference)`` for every recorded final metric, and
    whether all are equal within ``tolerance`` (absolute; both missing/NULL counts as equal)."""
    rows, ok = [], True
    for name in sorted(recorded):
        a, b = recorded[name], reproduced.get(name)
        diff = _differs(a, b, tolerance)
        if a is None and b is None and name in reproduced:
            same = True
        elif diff is None or math.isnan(diff):
            same = False
        else:
            same = abs(diff) <= tolerance
        ok &= same
        rows.append((name, a, b, diff))
    return rows, ok


def drift(record: Record) -> list[str]:
    """Warnings for a git commit or library versions that differ from the recorded ones."""
    from .lightning.context import collect_context

    now = collect_context()
    out = []
    then_commit = record.git_commit or record.context.get("git_commit")
    if then_commit and now.get("git_commit") and then_commit != now["git_commit"]:
        out.append(f"git commit differs: recorded {then_commit[:12]}, now {str(now['git_commit'])[:12]}")
    for key in ("python", "torch", "lightning"):
        then = record.context.get(key)
        if then and now.get(key) and str(then) != str(now[key]):
            out.append(f"{key} version differs: recorded {then}, now {now[key]}")
    return out


def reproduce(
    url: str, run_id: int, *, workspace: str | os.PathLike[str] = "expman_runs", tolerance: float = 0.0
) -> Outcome:
    """Fit run ``run_id`` of database ``url`` again from its record and compare (module docstring)."""
    from omegaconf import OmegaConf

    from .db.manager import DatabaseManager
    from .enums import Level
    from .lightning.context import collect_context
    from .pipeline import LightningPipeline
    from .tracking.base import TrackerManager
    from .tracking.db import DBTracker
    from .workspace import Environment

    with DatabaseManager(url) as manager:
        record = load_record(manager, run_id)
        recorded = final_metrics(manager, run_id)
    outcome = Outcome(None, None, warnings=drift(record), experiment=f"{record.experiment}-reproduce")
    tracker = DBTracker(url)
    trackers = TrackerManager([tracker])
    env = Environment.from_config({"workspace": str(workspace), "verbose": False})
    env.tracker_manager = trackers
    exp_env = env.create_child(outcome.experiment)
    trial_env = exp_env.create_child(record.trial)
    run_env = trial_env.create_child(_free_name(trial_env.workdir, f"reproduces_{run_id}"))
    tag = {"reproduces": run_id}
    try:
        trackers.on_create(
            Level.EXPERIMENT,
            name=outcome.experiment,
            desc=f"reproductions of runs of {record.experiment}",
            tags=tag,
        )
        trackers.on_start(Level.EXPERIMENT)
        trackers.on_create(Level.TRIAL, name=record.trial)
        trackers.on_start(Level.TRIAL)
        import lightning as L

        if record.seed is not None:
            L.seed_everything(int(record.seed), workers=True, verbose=False)
        pipeline = LightningPipeline(run_env, OmegaConf.create(record.settings))
        pipeline.run_info = {
            "repeat_idx": record.repeat_idx,
            "seed": record.seed,
            "config": record.settings,
            "tags": tag,
            "context": collect_context(seed=record.seed, extra={"reproduces": run_id}),
            "workdir": str(run_env.workdir),
        }
        from .experiment.logs import _quiet_lightning

        with _quiet_lightning(False):
            status = pipeline.run(pipeline.config)
        outcome.status = getattr(status, "value", str(status))
        outcome.run_id = pipeline.trainer.expman_logger.run_id
    finally:
        try:
            trackers.on_end(Level.TRIAL)
            trackers.on_end(Level.EXPERIMENT)
        finally:
            trackers.close()
            for e in (run_env, trial_env, exp_env, env):
                e.close()
    if outcome.run_id is not None:
        with DatabaseManager(url) as manager:
            reproduced = final_metrics(manager, outcome.run_id)
        outcome.rows, outcome.ok = compare(recorded, reproduced, tolerance)
    return outcome


def _free_name(folder: Path, name: str) -> str:
    """``name``, or ``name_2``, ``name_3``... when that folder exists (two runs never share one)."""
    if not (Path(folder) / name).exists():
        return name
    n = 2
    while (Path(folder) / f"{name}_{n}").exists():
        n += 1
    return f"{name}_{n}"
