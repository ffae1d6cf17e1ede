"""Aggregates over repeats: each run's value of a metric, per-trial mean/std/min/max, the best
trial and run, and the differences between two runs.

Aggregates use each finished run's *best* value by default (``value="best"``) or its *final*
value; ``std`` is the sample standard deviation (``None`` when n < 2), computed in Python
(SQLite has no ``STDDEV``). Only COMPLETED and STOPPED runs count unless ``statuses=None``.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..enums import MetricKey, metric_name
from ..errors import QueryError
from .runs import RunQueries
from .table import Table, _MetaTable
from .tags import _tags_match, parse_tags
from .values import (
    FINISHED_STATUSES,
    ExperimentRef,
    Mode,
    ValueKind,
    _loads,
    _mean_std,
    _resolve_mode,
    flatten,
)

__all__ = ["AggregateQueries"]


class AggregateQueries(RunQueries):
    """``run_values()``, ``trial_summary()``, ``best_trial()``, ``best_run()``, ``diff()``."""

    def run_values(
        self,
        experiment: ExperimentRef,
        metric: MetricKey,
        mode: Mode = "auto",
        *,
        statuses: Sequence[str] | None = FINISHED_STATUSES,
        tags: Mapping[str, Any] | Iterable[str] | None = None,
    ) -> Table:
        """Each run's final and best value of ``metric`` (the input of every aggregate).

        Returns:
            Table ``trial_id, trial, run_id, repeat, seed, status, final, best`` (runs that never
            recorded the metric are left out).
        """
        exp = self.experiment(experiment)
        name = metric_name(metric)
        rmode = _resolve_mode(name, mode)
        values = self._metric_values([name], exp["id"], modes={name: rmode})
        if not values:
            raise self._unknown_metric(name, exp["id"], f"experiment {exp['title']!r}")
        wanted = parse_tags(tags)
        rows = self._lean_runs(exp["id"], statuses, with_tags=bool(wanted))
        out = []
        for r in rows:
            if wanted and not _tags_match(r["tags"], wanted):
                continue
            v = values.get(r["run_id"], {}).get(name)
            if v is None:
                continue
            out.append(
                {**{k: r[k] for k in ("trial_id", "trial", "run_id", "repeat", "seed", "status")}, **v}
            )
        cols = ["trial_id", "trial", "run_id", "repeat", "seed", "status", "final", "best"]
        return Table(cols, out)

    def trial_summary(
        self,
        experiment: ExperimentRef,
        metric: MetricKey,
        mode: Mode = "auto",
        *,
        value: ValueKind = "best",
        statuses: Sequence[str] | None = FINISHED_STATUSES,
        tags: Mapping[str, Any] | Iterable[str] | None = None,
    ) -> Table:
        """Aggregate ``metric`` per trial over its repeats: mean, std, n, min, max.

        Args:
            experiment: title or id.
            metric: metric name.
            mode: ``"min"``, ``"max"`` or ``"auto"`` (:func:`default_mode`): decides each run's
                best value and which trial is best.
            value: aggregate each run's ``"best"`` value (default) or its ``"final"`` value.
            statuses: runs counted (default COMPLETED and STOPPED; ``None`` for all).
            tags: effective-tag filter on runs.

        Returns:
            Table ``trial_id, trial, n, mean, std, min, max, best_run_id, best_run_value, is_best,
            params`` (params: the trial's ``{key: value}`` for keys that differ between trials and
            are constant within each trial), ordered by trial id; ``meta`` describes the choice:
            ``table.meta = {"metric", "mode", "value", "differing_params"}``.
        """
        if value not in ("best", "final"):
            raise QueryError(f"unknown value kind {value!r}; valid: best, final")
        exp = self.experiment(experiment)
        name = metric_name(metric)
        rmode = _resolve_mode(name, mode)
        per_run = self.run_values(exp["id"], name, rmode, statuses=statuses, tags=tags)
        params = self._params(None, exp["id"], decode=False)
        trial_names = dict(
            self._raw(
                self.m.Trial.select(self.m.Trial.id, self.m.Trial.name).where(
                    self.m.Trial.experiment == exp["id"]
                )
            )
        )
        by_trial: dict[int, list[dict]] = defaultdict(list)
        for r in per_run:
            by_trial[r["trial_id"]].append(r)
        differing = _differing_params(params, self._run_trials(exp["id"]))
        pick = min if rmode == "min" else max
        rows = []
        for tid in sorted(by_trial):
            runs = by_trial[tid]
            vals = [r[value] for r in runs if r[value] is not None]
            mean, std = _mean_std(vals)
            best_run = pick((r for r in runs if r[value] is not None), key=lambda r: r[value], default=None)
            first = params.get(runs[0]["run_id"], {})
            rows.append(
                {
                    "trial_id": tid,
                    "trial": trial_names.get(tid, runs[0]["trial"]),
                    "n": len(vals),
                    "mean": mean,
                    "std": std,
                    "min": min(vals) if vals else None,
                    "max": max(vals) if vals else None,
                    "best_run_id": best_run["run_id"] if best_run else None,
                    "best_run_value": best_run[value] if best_run else None,
                    "is_best": False,
                    "params": {k: _loads(first.get(k)) for k in differing},
                }
            )
        scored = [r for r in rows if r["mean"] is not None]
        if scored:
            pick(scored, key=lambda r: r["mean"])["is_best"] = True
        cols = ["trial_id", "trial", "n", "mean", "std", "min", "max", "best_run_id", "best_run_value"]
        table = _MetaTable([*cols, "is_best", "params"], rows)
        table.meta = {
            "experiment": exp["title"],
            "experiment_id": exp["id"],
            "metric": name,
            "mode": rmode,
            "value": value,
            "differing_params": differing,
        }
        return table

    def _run_trials(self, experiment_id: int) -> dict[int, int]:
        TR, T = self.m.TrialRun, self.m.Trial
        q = TR.select(TR.id, TR.trial).join(T, on=(TR.trial == T.id)).where(T.experiment == experiment_id)
        return dict(self._raw(q))

    def best_trial(
        self, experiment: ExperimentRef, metric: MetricKey, mode: Mode = "auto", *, value: ValueKind = "best"
    ) -> dict[str, Any]:
        """The trial with the best mean (over repeats) of ``metric``; a row of :meth:`trial_summary`."""
        table = self.trial_summary(experiment, metric, mode, value=value)
        for row in table.rows:
            if row["is_best"]:
                return row
        raise QueryError(f"no finished run of experiment {experiment!r} recorded {metric_name(metric)!r}")

    def best_run(
        self, experiment: ExperimentRef, metric: MetricKey, mode: Mode = "auto", *, value: ValueKind = "best"
    ) -> dict[str, Any]:
        """The single run with the best ``value`` (best or final) of ``metric``; a :meth:`run_values` row."""
        name = metric_name(metric)
        rmode = _resolve_mode(name, mode)
        rows = [r for r in self.run_values(experiment, name, rmode) if r[value] is not None]
        if not rows:
            raise QueryError(f"no finished run of experiment {experiment!r} recorded {name!r}")
        return (min if rmode == "min" else max)(rows, key=lambda r: r[value])

    def diff(self, run_a: int | str, run_b: int | str) -> dict[str, Any]:
        """Config, param and metric differences between two runs.

        Returns:
            ``{"a": run_id, "b": run_id, "config": [(key, a, b)...], "metrics": [(name, kind, a, b)...]}``
            where config covers the flattened config, params, trial, seed and repeat; metrics covers
            final and best values of every metric either run recorded.
        """
        a, b = self.run(run_a), self.run(run_b)
        fa, fb = _run_settings(a), _run_settings(b)
        for k in ("experiment", "trial", "seed", "repeat", "status"):
            fa[k], fb[k] = a[k], b[k]
        config = [(k, fa.get(k), fb.get(k)) for k in sorted(set(fa) | set(fb)) if fa.get(k) != fb.get(k)]
        metrics = []
        for name in sorted(set(a["metrics"]) | set(b["metrics"])):
            ma, mb = a["metrics"].get(name, {}), b["metrics"].get(name, {})
            for kind in ("final", "best"):
                va, vb = ma.get(kind), mb.get(kind)
                if va != vb:
                    metrics.append((name, kind, va, vb))
        return {"a": a["run_id"], "b": b["run_id"], "config": config, "metrics": metrics}


def _run_settings(run: Mapping[str, Any]) -> dict[str, Any]:
    """A run's flattened config, plus params that the config does not already hold."""
    out = flatten(run.get("config") or {})
    for key, value in (run.get("params") or {}).items():
        out.setdefault(key, value)
    return out


def _differing_params(params: Mapping[int, Mapping[str, Any]], run_trial: Mapping[int, int]) -> list[str]:
    """Keys whose value is constant within each trial but differs between trials."""
    per_trial: dict[str, dict[int, set[str]]] = defaultdict(lambda: defaultdict(set))
    for rid, p in params.items():
        tid = run_trial.get(rid)
        if tid is None:
            continue
        for key, value in p.items():
            per_trial[key][tid].add(value if isinstance(value, str) else json.dumps(value, sort_keys=True))
    n_trials = len(set(run_trial.values()))
    out = []
    for key, trials in per_trial.items():
        if any(len(v) > 1 for v in trials.values()):
            continue  # varies within a trial: a repeat-level value such as the seed
        distinct = {next(iter(v)) for v in trials.values()}
        if len(distinct) > 1 or (len(trials) < n_trials and len(trials) > 0):
            out.append(key)
    return sorted(out)
