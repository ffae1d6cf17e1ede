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

Layout: each layer builds on the ones below it, and :class:`Query` is the top one.

* ``base.py``: opening a database, connection ownership, running queries, errors;
* ``experiments.py``: experiments and their resolution by title or id;
* ``metrics.py``: per-run metric reductions, metric names, histories;
* ``runs.py``: the runs table, one run in full, artifacts;
* ``aggregates.py``: aggregates over repeats, best trial/run, run diffs;
* ``table.py`` (``Table``: export, ``render``, notebook display), ``render.py`` (the one table
  renderer: terminal table, Markdown, CSV, JSON; standard library only), ``tags.py`` (filters,
  ``set_tags``), ``values.py`` (modes, flattening, statistics), ``output.py`` (atomic output files).
"""

from __future__ import annotations

from .aggregates import AggregateQueries
from .aggregates import _run_settings as _run_settings  # the HTML reporter imports it from here
from .table import Table
from .tags import parse_tags, set_tags
from .values import FINISHED_STATUSES, default_mode, flatten
from .values import ExperimentRef as ExperimentRef  # type aliases
from .values import Mode as Mode
from .values import ValueKind as ValueKind

__all__ = [
    "FINISHED_STATUSES",
    "Query",
    "Table",
    "default_mode",
    "flatten",
    "parse_tags",
    "set_tags",
]


class Query(AggregateQueries):
    """Access to an expman database for reading (and tagging: :meth:`set_tags`).

    Args:
        source: a database URL (``sqlite:///expman_runs/expman.db``, ``mysql://...``,
            ``postgresql://...``), a :class:`~lightning_expman.db.DatabaseManager`, or an open
            peewee ``Database``.
        read_only: open a URL for reading only: nothing in the database (or, for SQLite, the
            file) can be created or changed; :meth:`set_tags` then fails. The ``expman`` read
            commands and reports use this.

    Every query is executed on this object's database explicitly, so several ``Query`` objects on
    different databases can live in one process.

    Example:
        >>> q = Query("sqlite:///expman_runs/expman.db")
        >>> for row in q.trial_summary("digits", "val_acc", mode="max"):
        ...     print(row["trial"], row["mean"], row["std"], row["n"], row["is_best"])
        >>> q.close()
    """
