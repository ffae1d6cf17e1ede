"""The read side: runs tables, metric histories, aggregates over repeats, best runs, tags, export.

Everything here works on SQLite, MySQL/MariaDB and PostgreSQL alike, never imports torch or
lightning, and issues a fixed number of SQL queries per call (no per-run queries): per-run
reductions (last epoch, min, max) run in the database; the per-trial mean/std over a handful of
repeats is computed in Python (SQLite has no ``STDDEV``).

Example:
    >>> from lightning_expman.query import Query
    >>> with Query("sqlite:///expman_runs/expman.db") as q:
    ...     q.experiments().rows                     # every experiment with counts
    ...     runs = q.runs("digits")                  # one row per run: params, final/best metrics
    ...     runs.export("runs.parquet")              # or .csv / .jsonl
    ...     summary = q.trial_summary("digits", "val_loss", mode="min")
    ...     best = q.best_run("digits", "val_loss", mode="min")
    ...     curve = q.history(best["run_id"], "val_loss")            # per epoch
    ...     steps = q.history(best["run_id"], "train_loss", by="step")

Conventions:

* **Experiments** are named by title or id (an ``int``, or a string of digits that is no
  title). Titles are not unique: the **latest** experiment (newest ``start_time``, then highest
  id) with that title is used; pass the id to reach an older one.
* **Runs** are ``trial_run`` ids.
* A metric's **final** value in a run is its value at the last epoch that recorded it; its
  **best** value is the minimum (``mode="min"``) or maximum (``mode="max"``) over all epochs.
  Metrics recorded only as results (e.g. ``test_acc`` from ``trainer.test()``) have one value,
  used as both; metrics recorded only per step use the step series the same way.
  ``mode="auto"`` means ``"min"`` for names containing loss/err/mse/mae/rmse/perplexity,
  ``"max"`` otherwise (see :func:`default_mode`).
* **Aggregates over repeats** (:meth:`Query.trial_summary`) are computed from each finished run's
  *best* value by default (``value="best"``: what a checkpoint callback keeps), or its *final*
  value with ``value="final"``; ``std`` is the sample standard deviation (``None`` when n < 2).
  Only COMPLETED and STOPPED runs count unless ``statuses=None``.
* **Tags** are JSON objects on experiments, trials and runs. A run's *effective* tags are its
  experiment's, updated with its trial's, updated with its own; filters
  (``tags={"team": "vision"}`` or ``["team=vision", "baseline"]``) match effective tags: a
  ``key=value`` filter matches when ``str(tag value) == value``, a bare ``key`` when present.
"""

from __future__ import annotations

import csv
import datetime as _dt
import json
import math
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import peewee as pw

from .enums import MetricKey, RunStatus, metric_name
from .errors import ConnectionError, QueryError

__all__ = [
    "FINISHED_STATUSES",
    "Query",
    "Table",
    "default_mode",
    "flatten",
    "parse_tags",
    "set_tags",
]

Mode = Literal["min", "max", "auto"]
ValueKind = Literal["best", "final"]
ExperimentRef = int | str

FINISHED_STATUSES: tuple[str, ...] = (RunStatus.COMPLETED.value, RunStatus.STOPPED.value)
"""Run statuses counted by aggregates over repeats unless told otherwise."""

_MIN_WORDS = ("loss", "err", "mse", "mae", "rmse", "perplexity", "wer", "cer")
_EXPORT_FORMATS = ("csv", "jsonl", "parquet")


def default_mode(metric: MetricKey) -> Literal["min", "max"]:
    """``"min"`` for loss-like metric names (loss, err, mse, mae...), ``"max"`` otherwise.

    Example:
        >>> default_mode("val_loss"), default_mode("val_acc")
        ('min', 'max')
    """
    name = metric_name(metric).lower()
    return "min" if any(w in name for w in _MIN_WORDS) else "max"


def _resolve_mode(metric: str, mode: str | None) -> Literal["min", "max"]:
    if mode in (None, "auto"):
        return default_mode(metric)
    if mode not in ("min", "max"):
        raise QueryError(f"unknown mode {mode!r}; valid: min, max, auto")
    return mode  # type: ignore[return-value]


def flatten(config: Any, prefix: str = "") -> dict[str, Any]:
    """Flatten nested dicts to dotted keys (lists stay values).

    Example:
        >>> flatten({"model": {"lr": 0.1, "layers": [4, 2]}, "seed": 1})
        {'model.lr': 0.1, 'model.layers': [4, 2], 'seed': 1}
    """
    if not isinstance(config, Mapping):
        return {prefix: config} if prefix else {}
    out: dict[str, Any] = {}
    for key, value in config.items():
        full = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, full))
        else:
            out[full] = value
    return out


def parse_tags(tags: Mapping[str, Any] | Iterable[str] | None) -> dict[str, str | None]:
    """Normalise a tag filter: ``{"k": "v"}`` or ``["k=v", "k2"]`` -> ``{"k": "v", "k2": None}``.

    ``None`` as a value means "the key is present, whatever its value".
    """
    if not tags:
        return {}
    if isinstance(tags, Mapping):
        return {str(k): (None if v is None else str(v)) for k, v in tags.items()}
    out: dict[str, str | None] = {}
    for item in tags:
        key, sep, value = str(item).partition("=")
        key = key.strip()
        if not key:
            raise QueryError(f"bad tag filter {item!r}; expected KEY=VALUE or KEY")
        out[key] = value.strip() if sep else None
    return out


def _tags_dict(value: Any) -> dict[str, Any]:
    """Stored tags as a dict (a stored list of names becomes ``{name: True}``)."""
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, list | tuple):
        return {str(v): True for v in value}
    return {}


def _tags_match(tags: Mapping[str, Any], wanted: Mapping[str, str | None]) -> bool:
    for key, value in wanted.items():
        if key not in tags:
            return False
        if value is not None and str(tags[key]) != value and json.dumps(tags[key]) != value:
            return False
    return True


def _iso(value: Any) -> Any:
    return value.isoformat(sep=" ", timespec="seconds") if isinstance(value, _dt.datetime) else value


def _seconds(start: _dt.datetime | None, end: _dt.datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return round((end - start).total_seconds(), 3)


def _mean_std(values: Sequence[float]) -> tuple[float | None, float | None]:
    n = len(values)
    if n == 0:
        return None, None
    mean = math.fsum(values) / n
    if n < 2:
        return mean, None
    var = math.fsum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, math.sqrt(var)


# --------------------------------------------------------------------------- tables


@dataclass
class Table:
    """Rows of dicts with an ordered column list; the unit every query returns and exports.

    Example:
        >>> t = Table(["a", "b"], [{"a": 1, "b": 2.5}])
        >>> t.export("out.csv")          # format from the suffix: .csv, .jsonl/.ndjson, .parquet
        >>> df = t.to_pandas()           # needs pandas (``pip install lightning-expman[export]``)
    """

    columns: list[str]
    rows: list[dict[str, Any]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.rows)

    def column(self, name: str) -> list[Any]:
        """All values of one column."""
        return [row.get(name) for row in self.rows]

    def to_records(self) -> list[dict[str, Any]]:
        """Rows as JSON-ready dicts (every column present, datetimes as ISO strings)."""
        return [{c: _iso(row.get(c)) for c in self.columns} for row in self.rows]

    def to_pandas(self) -> Any:
        """A ``pandas.DataFrame`` with the table's columns."""
        try:
            import pandas as pd
        except ImportError as e:
            raise QueryError(
                "pandas is needed for DataFrames; install it with: pip install 'lightning-expman[export]'"
            ) from e
        return pd.DataFrame(
            [{c: row.get(c) for c in self.columns} for row in self.rows], columns=self.columns
        )

    def export(self, path: str | Path, format: str | None = None) -> Path:
        """Write the table to ``path`` as CSV, JSON lines or Parquet.

        Args:
            path: output file; parent folders are created.
            format: ``"csv"``, ``"jsonl"`` or ``"parquet"``; default from the suffix
                (``.csv``, ``.jsonl``/``.ndjson``/``.json``, ``.parquet``/``.pq``).

        Raises:
            QueryError: unknown format, or pyarrow missing for Parquet (naming the extra).
        """
        path = Path(path)
        fmt = (format or _format_from_suffix(path)).lower()
        if fmt not in _EXPORT_FORMATS:
            raise QueryError(f"unknown export format {fmt!r}; valid: {', '.join(_EXPORT_FORMATS)}")
        path.parent.mkdir(parents=True, exist_ok=True)
        getattr(self, f"_write_{fmt}")(path)
        return path

    def _write_csv(self, path: Path) -> None:
        with path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(self.columns)
            for row in self.rows:
                writer.writerow([_csv_cell(row.get(c)) for c in self.columns])

    def _write_jsonl(self, path: Path) -> None:
        with path.open("w", encoding="utf-8") as fh:
            for record in self.to_records():
                fh.write(json.dumps(record, default=str, allow_nan=False, sort_keys=False) + "\n")

    def _write_parquet(self, path: Path) -> None:
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError as e:
            raise QueryError(
                "Parquet export needs pyarrow; install it with: pip install 'lightning-expman[export]'"
            ) from e
        data = {c: [_parquet_cell(row.get(c)) for row in self.rows] for c in self.columns}
        # Mixed-type columns (a param that is 0.1 in one trial and "auto" in another) become text.
        arrays = {}
        for c, values in data.items():
            try:
                arrays[c] = pa.array(values)
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                arrays[c] = pa.array([None if v is None else json.dumps(v, default=str) for v in values])
        pq.write_table(pa.table(arrays), path)


def _format_from_suffix(path: Path) -> str:
    suffix = path.suffix.lower().lstrip(".")
    return {"ndjson": "jsonl", "json": "jsonl", "pq": "parquet"}.get(suffix, suffix or "csv")


def _csv_cell(value: Any) -> Any:
    if isinstance(value, dict | list):
        return json.dumps(value, default=str)
    if value is None:
        return ""
    return _iso(value)


def _parquet_cell(value: Any) -> Any:
    if isinstance(value, dict | list):
        return json.dumps(value, default=str)
    return value


# --------------------------------------------------------------------------- opening a database


def _open(source: Any) -> tuple[pw.Database, str]:
    """A peewee Database (and a printable name) from a URL, a DatabaseManager or a Database."""
    if isinstance(source, pw.Database):
        return source, type(source).__name__
    db = getattr(source, "database", None) or getattr(source, "db", None)
    if isinstance(db, pw.Database):
        return db, getattr(source, "url", type(source).__name__)
    if not isinstance(source, str | Path):
        raise QueryError(
            f"cannot read from {source!r}; pass a database URL, a DatabaseManager or a peewee Database"
        )
    url = str(source)
    from .db.connect import mask_url, open_database, parse_url

    shown = mask_url(url)
    if url.startswith("sqlite:") and ":memory:" not in url:
        path = parse_url(url).database
        if path and not Path(path).exists():
            raise ConnectionError(
                f"no expman database at {path} (from --db {shown}); run an experiment first or pass --db URL"
            )
    db = open_database(url)
    if not isinstance(db, pw.Database):
        db = getattr(db, "database", db)
    return db, shown


class Query:
    """Read-only access to an expman database.

    Args:
        source: a database URL (``sqlite:///expman_runs/expman.db``, ``mysql://...``,
            ``postgresql://...``), a :class:`~lightning_expman.db.DatabaseManager`, or an open
            peewee ``Database``.

    Every query is executed on this object's database explicitly, so several ``Query`` objects on
    different databases can live in one process.

    Example:
        >>> q = Query("sqlite:///expman_runs/expman.db")
        >>> for row in q.trial_summary("digits", "val_acc", mode="max"):
        ...     print(row["trial"], row["mean"], row["std"], row["n"], row["is_best"])
        >>> q.close()
    """

    def __init__(self, source: Any) -> None:
        self.db, self.name = _open(source)
        # A Database or DatabaseManager passed in belongs to the caller: close() leaves it open.
        self._owned = isinstance(source, str | Path)
        from .db import models

        self.m = models
        self._check_schema()

    # ------------------------------------------------------------------ plumbing

    def __enter__(self) -> Query:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close this thread's connection if this Query opened it (a later query reconnects)."""
        if self._owned and not self.db.is_closed():
            self.db.close()

    def __repr__(self) -> str:
        return f"Query({self.name})"

    def _check_schema(self) -> None:
        try:
            tables = set(self.db.get_tables())
        except pw.PeeweeException as e:
            raise ConnectionError(f"cannot open {self.name}: {str(e).splitlines()[0]}") from e
        if "trial_run" not in tables:
            raise ConnectionError(
                f"{self.name} holds no expman tables; run an experiment first or pass --db URL"
            )

    def _rows(self, query: Any) -> list[tuple]:
        try:
            return list(query.tuples().execute(self.db))
        except pw.PeeweeException as e:
            raise QueryError(f"query failed on {self.name}: {str(e).splitlines()[0]}") from e

    def _raw(self, query: Any) -> list[tuple]:
        """Rows straight from the driver, without Peewee's per-value converters (hot paths only:
        numbers and text; JSON columns are decoded by the caller)."""
        try:
            return self.db.execute(query).fetchall()
        except pw.PeeweeException as e:
            raise QueryError(f"query failed on {self.name}: {str(e).splitlines()[0]}") from e

    def _lean_runs(self, experiment_id: int, statuses: Sequence[str] | None, with_tags: bool) -> list[dict]:
        """``run_id, trial_id, trial, repeat, seed, status`` (+ effective ``tags``) of the runs."""
        E, T, TR = self.m.Experiment, self.m.Trial, self.m.TrialRun
        cols = [TR.id, T.id, T.name, TR.repeat_idx, TR.seed, TR.status]
        if with_tags:
            cols += [E.tags, T.tags, TR.tags]
        q = TR.select(*cols).join(T, on=(TR.trial == T.id))
        if with_tags:
            q = q.join(E, on=(T.experiment == E.id))
        q = q.where(T.experiment == experiment_id).order_by(T.id, TR.repeat_idx, TR.id)
        if statuses:
            q = q.where(TR.status.in_([RunStatus.parse(s).value for s in statuses]))
        out = []
        for row in self._raw(q):
            r = dict(zip(("run_id", "trial_id", "trial", "repeat", "seed", "status"), row[:6]))
            if with_tags:
                e, t, rr = (None if v is None else json.loads(v) for v in row[6:9])
                r["tags"] = {**_tags_dict(e), **_tags_dict(t), **_tags_dict(rr)}
            out.append(r)
        return out

    # ------------------------------------------------------------------ experiments

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
                TR.select(T.experiment, T.id, TR.status, T.tags, TR.tags).join(T, on=(TR.trial == T.id))
            )
            for eid, tid, status, ttags, rtags in rows:
                eff = {**etags.get(eid, {}), **_tags_dict(ttags), **_tags_dict(rtags)}
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
                TR.select(T.experiment, TR.status, pw.fn.COUNT(TR.id))
                .join(T, on=(TR.trial == T.id))
                .group_by(T.experiment, TR.status)
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

    # ------------------------------------------------------------------ runs

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
            "status": TR.status,
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
            q = q.where(TR.status.in_([RunStatus.parse(s).value for s in statuses]))
        out = []
        for values in self._rows(q.order_by(T.id, TR.repeat_idx, TR.id)):
            row = dict(zip(fields, values))
            tags = [_tags_dict(row.pop(k)) for k in ("experiment_tags", "trial_tags", "run_tags")]
            row["duration_s"] = _seconds(row["start_time"], row["end_time"])
            row["tags"] = {**tags[0], **tags[1], **tags[2]}
            out.append(row)
        return out

    def _params(
        self, run_ids: Sequence[int] | None, experiment_id: int | None = None, *, decode: bool = True
    ) -> dict[int, dict]:
        """``{run_id: {key: value}}``; with ``decode=False`` values stay JSON text (canonical:
        written with sorted keys), which is all equality checks need."""
        RP, TR, T = self.m.RunParam, self.m.TrialRun, self.m.Trial
        q = RP.select(RP.trial_run, RP.key, RP.value)
        if experiment_id is not None:
            q = (
                q.join(TR, on=(RP.trial_run == TR.id))
                .join(T, on=(TR.trial == T.id))
                .where(T.experiment == experiment_id)
            )
        elif run_ids is not None:
            q = q.where(RP.trial_run.in_(list(run_ids)))
        params: dict[int, dict] = defaultdict(dict)
        loads = json.loads
        for rid, key, value in self._raw(q):
            params[rid][key] = value if not decode or value is None else loads(value)
        return params

    def _epoch_stats(
        self, names: Sequence[str] | None, experiment_id: int | None, run_ids: Sequence[int] | None
    ) -> list[tuple]:
        """``(run_id, name, min, max, n, last_epoch, final)`` per run and epoch metric; one query."""
        m = self.m
        EM, M, TR, T = m.EpochMetric, m.MetricRecord, m.TrialRun, m.Trial
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
        if experiment_id is not None:
            agg = agg.join_from(EM, TR, on=(EM.trial_run == TR.id)).join(T, on=(TR.trial == T.id))
            agg = agg.where(T.experiment == experiment_id)
        if run_ids is not None:
            agg = agg.where(EM.trial_run.in_(list(run_ids)))
        if names is not None:
            agg = agg.where(M.type.in_(list(names)))
        agg = agg.alias("agg")
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
        RM, M, TR, T = m.ResultsMetric, m.MetricRecord, m.TrialRun, m.Trial
        q = RM.select(RM.results, M.type, M.total_val).join(M, on=(RM.metric == M.id))
        if experiment_id is not None:
            q = q.join_from(RM, TR, on=(RM.results == TR.id)).join(T, on=(TR.trial == T.id))
            q = q.where(T.experiment == experiment_id)
        if run_ids is not None:
            q = q.where(RM.results.in_(list(run_ids)))
        if names is not None:
            q = q.where(M.type.in_(list(names)))
        return self._raw(q)

    def _step_stats(
        self, names: Sequence[str] | None, experiment_id: int | None, run_ids: Sequence[int] | None
    ) -> list[tuple]:
        """``(run_id, name, min, max, n, last_step, final)`` per run for step-only series."""
        m = self.m
        SM, TR, T = m.StepMetric, m.TrialRun, m.Trial
        agg = SM.select(
            SM.trial_run.alias("rid"),
            SM.name.alias("name"),
            pw.fn.MIN(SM.value).alias("lo"),
            pw.fn.MAX(SM.value).alias("hi"),
            pw.fn.COUNT(SM.value).alias("n"),
            pw.fn.MAX(SM.step).alias("last"),
        ).group_by(SM.trial_run, SM.name)
        if experiment_id is not None:
            agg = agg.join(TR, on=(SM.trial_run == TR.id)).join(T, on=(TR.trial == T.id))
            agg = agg.where(T.experiment == experiment_id)
        if run_ids is not None:
            agg = agg.where(SM.trial_run.in_(list(run_ids)))
        if names is not None:
            agg = agg.where(SM.name.in_(list(names)))
        agg = agg.alias("agg")
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
        EM, M, RM, SM, TR, T = (
            m.EpochMetric,
            m.MetricRecord,
            m.ResultsMetric,
            m.StepMetric,
            m.TrialRun,
            m.Trial,
        )
        eid = None if experiment is None else self.experiment(experiment)["id"]
        epoch_q = M.select(M.type).join(EM, on=(EM.metric == M.id))
        res_q = M.select(M.type).join(RM, on=(RM.metric == M.id))
        step_q = SM.select(SM.name)
        if eid is not None:
            epoch_q = epoch_q.join(TR, on=(EM.trial_run == TR.id)).join(T, on=(TR.trial == T.id))
            epoch_q = epoch_q.where(T.experiment == eid)
            res_q = res_q.join(TR, on=(RM.results == TR.id)).join(T, on=(TR.trial == T.id))
            res_q = res_q.where(T.experiment == eid)
            step_q = step_q.join(TR, on=(SM.trial_run == TR.id)).join(T, on=(TR.trial == T.id))
            step_q = step_q.where(T.experiment == eid)
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
            "source", "per_label"}}``; ``per_label`` is the final epoch's per-label values) and
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
        base["metrics"] = dict(sorted(metrics.items()))
        base["artifacts"] = self.artifacts(rid)
        return base

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
        parts = [
            A.select(A.id, A.type, A.location, A.time, pw.Value("run").alias("scope"))
            .join(m.TrialRunArtifact, on=(m.TrialRunArtifact.artifact == A.id))
            .where(m.TrialRunArtifact.trial_run == rid),
            A.select(A.id, A.type, A.location, A.time, pw.Value("results").alias("scope"))
            .join(m.ResultsArtifact, on=(m.ResultsArtifact.artifact == A.id))
            .where(m.ResultsArtifact.results == rid),
            A.select(A.id, A.type, A.location, A.time, pw.Value("epoch").alias("scope"))
            .join(m.EpochArtifact, on=(m.EpochArtifact.artifact == A.id))
            .where(m.EpochArtifact.trial_run == rid),
            A.select(A.id, A.type, A.location, A.time, pw.Value("trial").alias("scope"))
            .join(m.TrialArtifact, on=(m.TrialArtifact.artifact == A.id))
            .join(TR, on=(TR.trial == m.TrialArtifact.trial))
            .where(TR.id == rid),
            A.select(A.id, A.type, A.location, A.time, pw.Value("experiment").alias("scope"))
            .join(m.ExperimentArtifact, on=(m.ExperimentArtifact.artifact == A.id))
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

    # ------------------------------------------------------------------ aggregates

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


class _MetaTable(Table):
    """A Table carrying a ``meta`` dict (how its values were computed)."""

    meta: dict[str, Any]


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


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


# --------------------------------------------------------------------------- tags

_LEVEL_MODELS = {"experiment": "Experiment", "trial": "Trial", "run": "TrialRun", "trial_run": "TrialRun"}


def set_tags(
    source: Any, level: str, id: int, tags: Mapping[str, Any], *, merge: bool = True
) -> dict[str, Any]:
    """Set tags on an experiment, trial or run (the runner sets them from config; this is for later).

    Args:
        source: a database URL, DatabaseManager or peewee Database.
        level: ``"experiment"``, ``"trial"`` or ``"run"``.
        id: the row id.
        tags: ``{key: value}``; with ``merge`` a ``None`` value removes the key.
        merge: update the existing tags (default) instead of replacing them.

    Returns:
        The tags now stored.

    Example:
        >>> set_tags("sqlite:///expman_runs/expman.db", "experiment", 1, {"team": "vision"})
        {'team': 'vision'}
    """
    db, name = _open(source)
    from .db import models

    key = _LEVEL_MODELS.get(level.lower())
    if key is None:
        raise QueryError(f"unknown tag level {level!r}; valid: experiment, trial, run")
    model = getattr(models, key)
    rows = list(model.select(model.tags).where(model.id == int(id)).tuples().execute(db))
    if not rows:
        raise QueryError(f"unknown {level} id {id!r} in {name}")
    current = _tags_dict(rows[0][0]) if merge else {}
    current.update(tags)
    current = {k: v for k, v in current.items() if v is not None}
    with db.atomic():
        model.update(tags=current or None).where(model.id == int(id)).execute(db)
    return current
