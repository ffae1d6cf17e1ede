"""Metrics: per-run reductions (final, best, min, max) computed in the database, the names
recorded, and histories (per-epoch and per-step series).

A metric's *final* value in a run is its value at the last epoch that recorded it; its *best*
value the minimum or maximum over all epochs. Epoch series win over results, which win over
step series, for the same (run, name).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import peewee as pw

from ..enums import MetricKey, metric_name
from ..errors import QueryError
from .experiments import ExperimentQueries
from .table import Table
from .values import ExperimentRef, _resolve_mode

__all__ = ["MetricQueries"]


class MetricQueries(ExperimentQueries):
    """Per-run metric values in one query per kind, ``metric_names()`` and ``history()``."""

    def _scoped(
        self,
        query: Any,
        run_field: pw.Field,
        name_field: pw.Field,
        names: Sequence[str] | None,
        experiment_id: int | None,
        run_ids: Sequence[int] | None,
    ) -> Any:
        """``query`` restricted to one experiment's runs, to ``run_ids`` and to metric ``names``
        (each only when given)."""
        if experiment_id is not None:
            query = self._in_experiment(query, run_field, experiment_id)
        if run_ids is not None:
            query = query.where(run_field.in_(list(run_ids)))
        if names is not None:
            query = query.where(name_field.in_(list(names)))
        return query

    def _epoch_stats(
        self, names: Sequence[str] | None, experiment_id: int | None, run_ids: Sequence[int] | None
    ) -> list[tuple]:
        """``(run_id, name, min, max, n, last_epoch, final)`` per run and epoch metric; one query."""
        m = self.m
        EM, M = m.EpochMetric, m.MetricRecord
        agg = (
            EM.select(
                EM.trial_run.alias("rid"),
                M.type.alias("name"),
                pw.fn.MIN(M.total_val).alias("lo"),
                pw.fn.MAX(M.total_val).alias("hi"),
                pw.fn.COUNT(M.total_val).alias("n"),
                pw.fn.MAX(EM.epoch_idx).alias("last"),
            )
            .join(M, on=(EM.metric == M.id))
            .group_by(EM.trial_run, M.type)
        )
        agg = self._scoped(agg, EM.trial_run, M.type, names, experiment_id, run_ids).alias("agg")
        EM2, M2 = EM.alias("em2"), M.alias("m2")
        # Join back on (run, last epoch, name) for the final value: one pass, no per-run query.
        q = (
            EM2.select(agg.c.rid, agg.c.name, agg.c.lo, agg.c.hi, agg.c.n, agg.c.last, M2.total_val)
            .from_(agg)
            .join(EM2, on=((EM2.trial_run == agg.c.rid) & (EM2.epoch_idx == agg.c.last)))
            .join(M2, on=((M2.id == EM2.metric) & (M2.type == agg.c.name)))
        )
        return self._raw(q)

    def _results_stats(
        self, names: Sequence[str] | None, experiment_id: int | None, run_ids: Sequence[int] | None
    ) -> list[tuple]:
        """``(run_id, name, value)`` for result metrics (``trainer.test()`` and final results)."""
        m = self.m
        RM, M = m.ResultsMetric, m.MetricRecord
        q = RM.select(RM.results, M.type, M.total_val).join(M, on=(RM.metric == M.id))
        return self._raw(self._scoped(q, RM.results, M.type, names, experiment_id, run_ids))

    def _step_stats(
        self, names: Sequence[str] | None, experiment_id: int | None, run_ids: Sequence[int] | None
    ) -> list[tuple]:
        """``(run_id, name, min, max, n, last_step, final)`` per run for step-only series."""
        m = self.m
        SM = m.StepMetric
        agg = SM.select(
            SM.trial_run.alias("rid"),
            SM.name.alias("name"),
            pw.fn.MIN(SM.value).alias("lo"),
            pw.fn.MAX(SM.value).alias("hi"),
            pw.fn.COUNT(SM.value).alias("n"),
            pw.fn.MAX(SM.step).alias("last"),
        ).group_by(SM.trial_run, SM.name)
        agg = self._scoped(agg, SM.trial_run, SM.name, names, experiment_id, run_ids).alias("agg")
        SM2 = SM.alias("sm2")
        q = (
            SM2.select(agg.c.rid, agg.c.name, agg.c.lo, agg.c.hi, agg.c.n, agg.c.last, SM2.value)
            .from_(agg)
            .join(
                SM2, on=((SM2.trial_run == agg.c.rid) & (SM2.name == agg.c.name) & (SM2.step == agg.c.last))
            )
        )
        return self._raw(q)

    def _metric_values(
        self,
        names: Sequence[str] | None,
        experiment_id: int | None = None,
        run_ids: Sequence[int] | None = None,
        modes: Mapping[str, str] | None = None,
        include_steps: bool = False,
    ) -> dict[int, dict[str, dict[str, Any]]]:
        """``{run_id: {name: {"final", "best", "min", "max", "n", "last", "source"}}}``.

        Epoch series win over results, which win over step series, for the same (run, name).
        """
        out: dict[int, dict[str, dict[str, Any]]] = defaultdict(dict)
        modes = modes or {}

        def add(
            rid: int, name: str, lo: Any, hi: Any, n: int, last: int | None, final: Any, src: str
        ) -> None:
            if name in out[rid]:
                return
            mode = _resolve_mode(name, modes.get(name))
            out[rid][name] = {
                "final": final,
                "best": lo if mode == "min" else hi,
                "min": lo,
                "max": hi,
                "n": n,
                "last": last,
                "source": src,
            }

        for rid, name, lo, hi, n, last, final in self._epoch_stats(names, experiment_id, run_ids):
            add(rid, name, lo, hi, n, last, final, "epoch")
        for rid, name, value in self._results_stats(names, experiment_id, run_ids):
            add(rid, name, value, value, int(value is not None), None, value, "results")
        wanted_left = None if names is None else [n for n in names if not any(n in v for v in out.values())]
        if include_steps or wanted_left:
            for rid, name, lo, hi, n, last, final in self._step_stats(
                None if include_steps else wanted_left, experiment_id, run_ids
            ):
                add(rid, name, lo, hi, n, last, final, "step")
        return out

    def metric_names(
        self, experiment: ExperimentRef | None = None, run_id: int | None = None
    ) -> dict[str, list]:
        """Metric names recorded, by kind: ``{"epoch": [...], "results": [...], "step": [...]}``."""
        m = self.m
        EM, M, RM, SM = m.EpochMetric, m.MetricRecord, m.ResultsMetric, m.StepMetric
        eid = None if experiment is None else self.experiment(experiment)["id"]
        epoch_q = M.select(M.type).join(EM, on=(EM.metric == M.id))
        res_q = M.select(M.type).join(RM, on=(RM.metric == M.id))
        step_q = SM.select(SM.name)
        if eid is not None:
            epoch_q = self._in_experiment(epoch_q, EM.trial_run, eid)
            res_q = self._in_experiment(res_q, RM.results, eid)
            step_q = self._in_experiment(step_q, SM.trial_run, eid)
        if run_id is not None:
            epoch_q = epoch_q.where(EM.trial_run == run_id)
            res_q = res_q.where(RM.results == run_id)
            step_q = step_q.where(SM.trial_run == run_id)
        return {
            "epoch": sorted(r[0] for r in self._rows(epoch_q.distinct())),
            "results": sorted(r[0] for r in self._rows(res_q.distinct())),
            "step": sorted(r[0] for r in self._rows(step_q.distinct())),
        }

    def _unknown_metric(self, metric: str, experiment: ExperimentRef | None, where: str) -> QueryError:
        names = self.metric_names(experiment)
        listing = sorted(set(names["epoch"]) | set(names["results"]) | set(names["step"]))
        return QueryError(f"unknown metric {metric!r} in {where}; recorded: {', '.join(listing) or 'none'}")

    # ------------------------------------------------------------------ histories

    def history(
        self,
        run_ids: int | Sequence[int],
        metrics: MetricKey | Sequence[MetricKey] | None = None,
        *,
        by: Literal["epoch", "step"] = "epoch",
    ) -> Table:
        """Metric series of one or more runs, in one query.

        Args:
            run_ids: a run id or several.
            metrics: a name or names; ``None`` for all.
            by: ``"epoch"`` (columns ``run_id, metric, epoch, value, per_label``) or ``"step"``
                (columns ``run_id, metric, step, epoch, value``).

        Raises:
            QueryError: a named metric has no series of that kind in these runs.
        """
        ids = [int(run_ids)] if isinstance(run_ids, int | str) else [int(r) for r in run_ids]
        names = None
        if metrics is not None:
            names = [metric_name(metrics)] if isinstance(metrics, str) else [metric_name(x) for x in metrics]
        m = self.m
        if by == "epoch":
            EM, M = m.EpochMetric, m.MetricRecord
            q = (
                EM.select(EM.trial_run, M.type, EM.epoch_idx, M.total_val, M.per_label_val)
                .join(M, on=(EM.metric == M.id))
                .where(EM.trial_run.in_(ids))
                .order_by(EM.trial_run, M.type, EM.epoch_idx)
            )
            if names is not None:
                q = q.where(M.type.in_(names))
            cols = ["run_id", "metric", "epoch", "value", "per_label"]
        elif by == "step":
            SM = m.StepMetric
            q = (
                SM.select(SM.trial_run, SM.name, SM.step, SM.epoch, SM.value)
                .where(SM.trial_run.in_(ids))
                .order_by(SM.trial_run, SM.name, SM.step)
            )
            if names is not None:
                q = q.where(SM.name.in_(names))
            cols = ["run_id", "metric", "step", "epoch", "value"]
        else:
            raise QueryError(f"unknown history axis {by!r}; valid: epoch, step")
        rows = [dict(zip(cols, r)) for r in self._rows(q)]
        if names is not None:
            found = {r["metric"] for r in rows}
            missing = [n for n in names if n not in found]
            if missing:
                have = self.metric_names(run_id=ids[0]) if len(ids) == 1 else None
                listing = ", ".join(have[by]) if have else "see `expman show RUN_ID`"
                raise QueryError(
                    f"no {by} series for metric {missing[0]!r} in run(s) {ids}; recorded: {listing}"
                )
        return Table(cols, rows)
