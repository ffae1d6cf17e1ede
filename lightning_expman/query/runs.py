"""Runs: the runs table (one row per run with params and final/best metric values), one run in
full (config, params, metrics, artifacts), and the lean run lists aggregates start from."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import peewee as pw

from ..enums import MetricKey, metric_name
from ..errors import QueryError
from .metrics import MetricQueries
from .table import Table
from .tags import _effective_tags, _tags_match, parse_tags
from .values import ExperimentRef, _seconds, _status_values

__all__ = ["RunQueries"]


class RunQueries(MetricQueries):
    """``runs()``, ``run()``, ``artifacts()`` and the run/param lookups behind them."""

    def _lean_runs(self, experiment_id: int, statuses: Sequence[str] | None, with_tags: bool) -> list[dict]:
        """``run_id, trial_id, trial, repeat, seed, status`` (+ effective ``tags``) of the runs."""
        E, T, TR = self.m.Experiment, self.m.Trial, self.m.TrialRun
        cols = [TR.id, T.id, T.name, TR.repeat_idx, TR.seed, self._status]
        if with_tags:
            cols += [E.tags, T.tags, TR.tags]
        q = TR.select(*cols).join(T, on=(TR.trial == T.id))
        if with_tags:
            q = q.join(E, on=(T.experiment == E.id))
        q = q.where(T.experiment == experiment_id).order_by(T.id, TR.repeat_idx, TR.id)
        if statuses:
            q = q.where(self._status.in_(_status_values(statuses)))
        out = []
        for row in self._raw(q):
            r = dict(zip(("run_id", "trial_id", "trial", "repeat", "seed", "status"), row[:6]))
            if with_tags:
                r["tags"] = _effective_tags(*(None if v is None else json.loads(v) for v in row[6:9]))
            out.append(r)
        return out

    def _run_rows(
        self,
        experiment_id: int | None = None,
        run_ids: Sequence[int] | None = None,
        statuses: Sequence[str] | None = None,
    ) -> list[dict[str, Any]]:
        m = self.m
        E, T, TR = m.Experiment, m.Trial, m.TrialRun
        fields = {
            "experiment_id": E.id,
            "experiment": E.title,
            "experiment_tags": E.tags,
            "trial_id": T.id,
            "trial": T.name,
            "trial_tags": T.tags,
            "run_id": TR.id,
            "repeat": TR.repeat_idx,
            "seed": TR.seed,
            "status": self._status,
            "start_time": TR.start_time,
            "end_time": TR.end_time,
            "stop_epoch": TR.stop_epoch,
            "host": TR.host,
            "run_tags": TR.tags,
        }
        q = TR.select(*fields.values()).join(T, on=(TR.trial == T.id)).join(E, on=(T.experiment == E.id))
        if experiment_id is not None:
            q = q.where(T.experiment == experiment_id)
        if run_ids is not None:
            q = q.where(TR.id.in_(list(run_ids)))
        if statuses:
            q = q.where(self._status.in_(_status_values(statuses)))
        out = []
        for values in self._rows(q.order_by(T.id, TR.repeat_idx, TR.id)):
            row = dict(zip(fields, values))
            tags = [row.pop(k) for k in ("experiment_tags", "trial_tags", "run_tags")]
            row["duration_s"] = _seconds(row["start_time"], row["end_time"])
            row["tags"] = _effective_tags(*tags)
            out.append(row)
        return out

    def _params(
        self, run_ids: Sequence[int] | None, experiment_id: int | None = None, *, decode: bool = True
    ) -> dict[int, dict]:
        """``{run_id: {key: value}}``; with ``decode=False`` values stay JSON text (canonical:
        written with sorted keys), which is all equality checks need."""
        RP = self.m.RunParam
        q = RP.select(RP.trial_run, RP.key, RP.value)
        if experiment_id is not None:
            q = self._in_experiment(q, RP.trial_run, experiment_id)
        elif run_ids is not None:
            q = q.where(RP.trial_run.in_(list(run_ids)))
        params: dict[int, dict] = defaultdict(dict)
        loads = json.loads
        for rid, key, value in self._raw(q):
            params[rid][key] = value if not decode or value is None else loads(value)
        return params

    def runs(
        self,
        experiment: ExperimentRef | None = None,
        *,
        metrics: Sequence[MetricKey] | None = None,
        modes: Mapping[str, str] | None = None,
        tags: Mapping[str, Any] | Iterable[str] | None = None,
        statuses: Sequence[str] | None = None,
        run_ids: Sequence[int] | None = None,
        include_steps: bool = False,
    ) -> Table:
        """The runs table: one row per run with params and the final/best value of each metric.

        Args:
            experiment: title or id; ``None`` for every experiment.
            metrics: restrict metric columns to these names (default: all epoch and result metrics).
            modes: per-metric ``"min"``/``"max"`` deciding ``best``; default :func:`default_mode`.
            tags: effective-tag filter (see module docs).
            statuses: keep runs with these statuses only.
            run_ids: keep these runs only.
            include_steps: also summarise step-only series (slower on big databases).

        Returns:
            Table with columns ``experiment, trial, run_id, repeat, seed, status, start_time,
            end_time, duration_s, stop_epoch, host``, then ``param.<key>`` for every param, then
            ``<metric>.final`` and ``<metric>.best`` for every metric, then ``tags``.

        Example:
            >>> Query(url).runs("digits", metrics=["val_loss"]).export("runs.csv")
        """
        eid = None if experiment is None else self.experiment(experiment)["id"]
        names = None if metrics is None else [metric_name(x) for x in metrics]
        rows = self._run_rows(eid, run_ids, statuses)
        wanted = parse_tags(tags)
        if wanted:
            rows = [r for r in rows if _tags_match(r["tags"], wanted)]
        keep = {r["run_id"] for r in rows}
        scope_runs = None if run_ids is None else list(run_ids)
        params = self._params(scope_runs, eid)  # both None: every run's
        values = self._metric_values(names, eid, scope_runs, modes, include_steps)
        if names is not None:
            found = {n for v in values.values() for n in v}
            for n in names:
                if n not in found:
                    raise self._unknown_metric(
                        n, experiment, f"experiment {experiment!r}" if experiment else self.name
                    )
        param_keys = sorted({k for rid in keep for k in params.get(rid, {})})
        metric_keys = names or sorted({n for rid in keep for n in values.get(rid, {})})
        for r in rows:
            p = params.get(r["run_id"], {})
            for k in param_keys:
                r[f"param.{k}"] = p.get(k)
            v = values.get(r["run_id"], {})
            for name in metric_keys:
                s = v.get(name) or {}
                r[f"{name}.final"] = s.get("final")
                r[f"{name}.best"] = s.get("best")
        base = ["experiment", "trial", "run_id", "repeat", "seed", "status", "start_time", "end_time"]
        base += ["duration_s", "stop_epoch", "host"]
        cols = base + [f"param.{k}" for k in param_keys]
        cols += [f"{n}.{kind}" for n in metric_keys for kind in ("final", "best")] + ["tags"]
        return Table(cols, rows)

    def run(self, run_id: int | str) -> dict[str, Any]:
        """Everything about one run: identity, status, config, params, context, metrics, artifacts.

        Returns:
            A dict with the runs-table identity fields plus ``config``, ``context``, ``error``,
            ``params``, ``metrics`` (``{name: {"final", "best", "min", "max", "n", "last",
            "source", "per_label"}}``; ``per_label`` is the final epoch's per-label values, or the
            RESULTS row's for a result metric such as ``test_f1_per_class``) and
            ``artifacts`` (``[{"id", "type", "location", "time", "scope"}]``).

        Raises:
            QueryError: unknown run id.
        """
        rid = self._run_id(run_id)
        m = self.m
        TR = m.TrialRun
        base = self._run_rows(run_ids=[rid])[0]
        extra = self._rows(
            TR.select(TR.config, TR.context, TR.error, TR.heartbeat, TR.git_commit, TR.update_time).where(
                TR.id == rid
            )
        )[0]
        base.update(
            dict(zip(("config", "context", "error", "heartbeat", "git_commit", "update_time"), extra))
        )
        base["params"] = self._params([rid]).get(rid, {})
        metrics = self._metric_values(None, run_ids=[rid], include_steps=True).get(rid, {})
        for name, (_epoch, per_label) in self._final_per_label(rid).items():
            if name in metrics and metrics[name]["source"] == "epoch":
                metrics[name]["per_label"] = per_label
        self._results_per_label(rid, metrics)
        base["metrics"] = dict(sorted(metrics.items()))
        base["artifacts"] = self.artifacts(rid)
        return base

    def _results_per_label(self, rid: int, metrics: dict[str, dict[str, Any]]) -> None:
        """Fill ``per_label`` of the run's result metrics from their RESULTS metric rows.

        A name recorded several times takes the row whose total is the FINAL value, else the latest.
        """
        wanted = [n for n, v in metrics.items() if v.get("source") == "results" and not v.get("per_label")]
        if not wanted:
            return
        RM, M = self.m.ResultsMetric, self.m.MetricRecord
        rows = self._rows(
            M.select(M.type, M.total_val, M.per_label_val)
            .join(RM, on=(RM.metric == M.id))
            .where((RM.results == rid) & M.type.in_(wanted) & M.per_label_val.is_null(False))
            .order_by(M.id)
        )
        chosen: dict[str, tuple[bool, dict]] = {}
        for name, total, per_label in rows:
            if isinstance(per_label, dict) and not (name in chosen and chosen[name][0]):
                chosen[name] = (total == metrics[name].get("final"), per_label)
        for name, (_, per_label) in chosen.items():
            metrics[name]["per_label"] = per_label

    def _run_id(self, run_id: int | str) -> int:
        TR = self.m.TrialRun
        try:
            rid = int(str(run_id).removeprefix("run:"))
        except ValueError:
            raise QueryError(f"bad run id {run_id!r}; run ids are integers (see `expman ls`)") from None
        if not self._rows(TR.select(TR.id).where(TR.id == rid)):
            last = self._rows(TR.select(pw.fn.MIN(TR.id), pw.fn.MAX(TR.id)))
            lo, hi = last[0] if last else (None, None)
            span = f"ids {lo}..{hi}" if lo is not None else "no runs"
            raise QueryError(f"unknown run id {run_id!r} in {self.name}; existing: {span}")
        return rid

    def _final_per_label(self, rid: int) -> dict[str, tuple[int, dict]]:
        EM, M = self.m.EpochMetric, self.m.MetricRecord
        out: dict[str, tuple[int, dict]] = {}
        q = (
            EM.select(M.type, EM.epoch_idx, M.per_label_val)
            .join(M, on=(EM.metric == M.id))
            .where(EM.trial_run == rid, M.per_label_val.is_null(False))
            .order_by(EM.epoch_idx)
        )
        for name, epoch, per_label in self._rows(q):
            out[name] = (epoch, per_label)
        return out

    def artifacts(self, run_id: int) -> list[dict[str, Any]]:
        """Artifacts of a run: its own, its results', its epochs' and its trial's/experiment's."""
        m = self.m
        A, TR, T = m.Artifact, m.TrialRun, m.Trial
        rid = int(run_id)

        def linked_by(link: Any, scope: str) -> Any:
            return A.select(A.id, A.type, A.location, A.time, pw.Value(scope).alias("scope")).join(
                link, on=(link.artifact == A.id)
            )

        parts = [
            linked_by(m.TrialRunArtifact, "run").where(m.TrialRunArtifact.trial_run == rid),
            linked_by(m.ResultsArtifact, "results").where(m.ResultsArtifact.results == rid),
            linked_by(m.EpochArtifact, "epoch").where(m.EpochArtifact.trial_run == rid),
            linked_by(m.TrialArtifact, "trial")
            .join(TR, on=(TR.trial == m.TrialArtifact.trial))
            .where(TR.id == rid),
            linked_by(m.ExperimentArtifact, "experiment")
            .join(T, on=(T.experiment == m.ExperimentArtifact.experiment))
            .join(TR, on=(TR.trial == T.id))
            .where(TR.id == rid),
        ]
        seen: set[int] = set()
        out = []
        for part in parts:
            for aid, typ, loc, time, scope in self._rows(part):
                if aid in seen:
                    continue
                seen.add(aid)
                out.append({"id": aid, "type": typ, "location": loc, "time": time, "scope": scope})
        return out
