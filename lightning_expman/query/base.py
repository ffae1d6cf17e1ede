"""Opening a database for reading, and ``QueryBase``: the plumbing every part of
:class:`~lightning_expman.query.Query` stands on (connection ownership, schema check, running a
query with its errors translated, restricting a query to one experiment's runs).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import peewee as pw

from ..errors import ConnectionError, QueryError

if TYPE_CHECKING:  # pragma: no cover
    from . import Query

__all__ = ["QueryBase"]


def _open(source: Any, read_only: bool = False) -> tuple[pw.Database, str]:
    """A peewee Database (and a printable name) from a URL, a DatabaseManager or a Database.

    ``read_only`` applies to a URL (see :func:`~lightning_expman.db.connect.open_database`).
    """
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
    from ..db.connect import mask_url, open_database, parse_url

    shown = mask_url(url)
    if url.startswith("sqlite:") and ":memory:" not in url:
        path = parse_url(url).database
        if path and not Path(path).exists():
            raise ConnectionError(
                f"no expman database at {path} (from --db {shown}); run an experiment first or pass --db URL"
            )
    return open_database(url, read_only=read_only), shown


class QueryBase:
    """Holds the database (``db``), its printable ``name`` and the models (``m``); see :class:`Query`."""

    def __init__(self, source: Any, *, read_only: bool = False) -> None:
        self.db, self.name = _open(source, read_only)
        # A Database or DatabaseManager passed in belongs to the caller: close() leaves it open.
        self._owned = isinstance(source, str | Path)
        from ..db import models

        self.m = models
        self._check_schema()
        self._status = self._status_column()

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

    def _status_column(self) -> Any:
        """The run status as shown: a RUNNING run past its lease reads LOST (nothing is written;
        see :mod:`lightning_expman.coordination`). A database not yet upgraded has no leases."""
        TR = self.m.TrialRun
        if "lease_s" not in {c.name for c in self.db.get_columns("trial_run")}:
            return TR.status
        from ..coordination import status_expression
        from ..db.connect import backend_of

        return status_expression(TR, backend_of(self.db))

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

    def _in_experiment(self, query: Any, run_field: pw.Field, experiment_id: int) -> Any:
        """``query`` restricted to one experiment's runs: joined from ``run_field``'s table (which
        holds a trial-run id) to the run and its trial."""
        TR, T = self.m.TrialRun, self.m.Trial
        return (
            query.join_from(run_field.model, TR, on=(run_field == TR.id))
            .join(T, on=(TR.trial == T.id))
            .where(T.experiment == experiment_id)
        )
