"""Experiments: the list with counts, resolving one by title or id, tagging."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

import peewee as pw

from ..errors import QueryError
from .base import QueryBase
from .table import Table
from .tags import _effective_tags, _tags_dict, _tags_match, parse_tags, set_tags
from .values import ExperimentRef

__all__ = ["ExperimentQueries"]


class ExperimentQueries(QueryBase):
    """``experiments()``, ``experiment(ref)``, ``set_tags()``; the layer every other query builds on."""

    def experiments(self, tags: Mapping[str, Any] | Iterable[str] | None = None) -> Table:
        """Every experiment with trial and run counts and run status counts.

        Args:
            tags: keep experiments with at least one run (or, with no runs, own tags) matching.
                Counts then cover the matching runs only.

        Returns:
            Table with columns ``id, title, start_time, update_time, trials, runs, statuses``
            (``{"COMPLETED": 3, ...}``), ``tags`` and ``desc``; oldest first.
        """
        m = self.m
        E, T, TR = m.Experiment, m.Trial, m.TrialRun
        wanted = parse_tags(tags)
        exps = self._rows(
            E.select(E.id, E.title, E.start_time, E.update_time, E.tags, E.desc).order_by(E.start_time, E.id)
        )
        trials: dict[int, set[int]] = defaultdict(set)
        runs: dict[int, int] = defaultdict(int)
        statuses: dict[int, dict[str, int]] = defaultdict(dict)
        if wanted:
            # Effective tags need each run's trial and experiment tags: one joined query, filtered here.
            etags = {eid: _tags_dict(t) for eid, _, _, _, t, _ in exps}
            rows = self._rows(
                TR.select(T.experiment, T.id, self._status, T.tags, TR.tags).join(T, on=(TR.trial == T.id))
            )
            for eid, tid, status, ttags, rtags in rows:
                eff = _effective_tags(etags.get(eid), ttags, rtags)
                if _tags_match(eff, wanted):
                    trials[eid].add(tid)
                    runs[eid] += 1
                    statuses[eid][status] = statuses[eid].get(status, 0) + 1
            with_runs = {row[0] for row in rows}
            keep = set(runs) | {
                eid for eid, *_ in exps if eid not in with_runs and _tags_match(etags[eid], wanted)
            }
            trial_counts = {eid: len(ids) for eid, ids in trials.items()}
        else:
            trial_counts = dict(self._rows(T.select(T.experiment, pw.fn.COUNT(T.id)).group_by(T.experiment)))
            for eid, status, count in self._rows(
                TR.select(T.experiment, self._status, pw.fn.COUNT(TR.id))
                .join(T, on=(TR.trial == T.id))
                .group_by(T.experiment, self._status)
            ):
                runs[eid] += count
                statuses[eid][status] = count
            keep = {eid for eid, *_ in exps}
        out = []
        for eid, title, start, update, etag, desc in exps:
            if eid not in keep:
                continue
            out.append(
                {
                    "id": eid,
                    "title": title,
                    "start_time": start,
                    "update_time": update,
                    "trials": trial_counts.get(eid, 0),
                    "runs": runs.get(eid, 0),
                    "statuses": dict(sorted(statuses.get(eid, {}).items())),
                    "tags": _tags_dict(etag),
                    "desc": desc or "",
                }
            )
        cols = ["id", "title", "start_time", "update_time", "trials", "runs", "statuses", "tags", "desc"]
        return Table(cols, out)

    def experiment(self, ref: ExperimentRef) -> dict[str, Any]:
        """Resolve an experiment by title (the latest of that title) or id.

        Returns:
            ``{"id", "title", "desc", "start_time", "update_time", "config", "tags"}``.

        Raises:
            QueryError: unknown title/id, listing the experiments that exist.
        """
        E = self.m.Experiment
        cols = (E.id, E.title, E.desc, E.start_time, E.update_time, E.config, E.tags)
        keys = ("id", "title", "desc", "start_time", "update_time", "config", "tags")
        rows: list[tuple] = []
        if isinstance(ref, str):
            rows = self._rows(
                E.select(*cols).where(E.title == ref).order_by(E.start_time.desc(), E.id.desc())
            )
        if not rows and (isinstance(ref, int) or (isinstance(ref, str) and ref.strip().isdigit())):
            rows = self._rows(E.select(*cols).where(E.id == int(ref)))
        if not rows:
            existing = self._rows(E.select(E.id, E.title).order_by(E.id))
            listing = ", ".join(f"{t} (id {i})" for i, t in existing[-20:]) or "none"
            more = f" and {len(existing) - 20} more" if len(existing) > 20 else ""
            raise QueryError(f"unknown experiment {ref!r} in {self.name}; existing: {listing}{more}")
        out = dict(zip(keys, rows[0]))
        out["tags"] = _tags_dict(out["tags"])
        return out

    def set_tags(self, level: str, id: int, tags: Mapping[str, Any], *, merge: bool = True) -> dict[str, Any]:
        """Set tags on an experiment, trial or run; see :func:`set_tags`."""
        return set_tags(self.db, level, id, tags, merge=merge)
