"""``DatabaseManager``: the seed's persistence API, plus the bulk and run-lifecycle methods trackers use.

Example (the seed's, unchanged):
    >>> from lightning_expman.db import DatabaseManager
    >>> db = DatabaseManager(database_path=":memory:", use_sqlite=True)
    >>> experiment = db.create_experiment("CIFAR-10 Classification", "Comparing architectures")
    >>> trial = db.create_trial(experiment.id, "ResNet-18")
    >>> trial_run = db.create_trial_run(trial.id, status="running")
    >>> metric = db.record_metric(total_val=0.87, metric_type="accuracy",
    ...                           per_label_val={"airplane": 0.85, "car": 0.89})
    >>> db.create_epoch(epoch_idx=1, trial_run_id=trial_run.id).idx
    1
    >>> _ = db.add_epoch_metric(epoch_idx=1, trial_run_id=trial_run.id, metric_id=metric.id)
    >>> [(m.type, m.total_val) for m in db.get_experiment_metrics(experiment.id)]
    [('accuracy', 0.87)]
    >>> db.update_trial_run_status(trial_run.id, "completed").status
    'COMPLETED'

The API is written in one module per concern and composed here:

* ``base.py``: transactions, the retry on a lost connection, error translation;
* ``rows.py``: the query helpers and row builders the others share (secrets masked);
* ``writes.py``: the seed's ``create_*`` / ``record_*`` / ``link_*`` / ``update_trial_run_status``;
* ``reads.py``: the seed's ``get_*_metrics`` / ``get_*_artifacts``;
* ``lifecycle.py``: get-or-create (race-safe), params, heartbeat and end of a run (trackers);
* ``bulk.py``: step series, an epoch's metrics and multi-level artifacts in one transaction each;
* ``deletes.py``: deleting runs and experiments with everything recorded for them (``expman rm``);
* ``levels.py``: metrics at EXPERIMENT and TRIAL level, and a checkpoint's metrics (schema v3);
* ``values.py``: secrets masked, params flattened, NaN -> NULL before anything is stored.

Every write runs in one transaction through :meth:`DatabaseManager.run_in_transaction`, which
re-runs the whole transaction on a new connection, with backoff for up to ``retry_for`` seconds
(default 60), when a MySQL/PostgreSQL connection was lost before its commit (the server rolled
the attempt back, so nothing is lost or written twice). Driver
errors are translated into :class:`~lightning_expman.errors.QueryError` /
:class:`~lightning_expman.errors.ConnectionError`, chained with ``from``; unknown ids, duplicates
and bad statuses raise :class:`QueryError` instead of silently doing nothing.

Threads: Peewee keeps one connection per thread, so a background writer thread may call any
method while the main thread does too (each thread's transactions are independent).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING

import peewee as pw

from .._env import env_seconds
from ..errors import DatabaseError
from . import models as m
from .base import RETRY_FOR_ENV
from .bulk import BulkWrites, MetricItems
from .connect import backend_of, open_database
from .deletes import RunDeletes
from .levels import LevelMetrics
from .lifecycle import RunLifecycle
from .migrations import Migration, ensure_schema
from .reads import SeedReads
from .urls import DatabaseURL, parse_url
from .writes import SeedWrites

if TYPE_CHECKING:  # pragma: no cover
    from ..query import Query

__all__ = ["DatabaseManager", "MetricItems"]

log = logging.getLogger(__name__)


class DatabaseManager(SeedWrites, SeedReads, RunLifecycle, LevelMetrics, BulkWrites, RunDeletes):
    """Reads and writes the experiment hierarchy in a SQLite, MySQL/MariaDB or PostgreSQL database.

    Constructor forms (the seed's, plus URLs)::

        DatabaseManager(database_path="experiments.db", use_sqlite=True)      # SQLite file
        DatabaseManager(database_path="experiment_db", host="localhost",
                        user="ml_user", password="secure_password", port=3306)  # MySQL/MariaDB
        DatabaseManager("sqlite:///runs/expman.db")
        DatabaseManager("mysql://ml_user:secure_password@localhost:3306/experiment_db")
        DatabaseManager("postgresql://postgres@localhost/experiments")

    Opening creates missing tables and checks the schema version (see ``migrations.py``), then
    points ``models.database_proxy`` at this database so model queries elsewhere use it. The
    manager's own queries are bound to its database explicitly, so several managers (on
    different databases) can live in one process.

    Args:
        database_path: a URL, or the SQLite file path / the MySQL database name.
        use_sqlite: True for a SQLite file, False for MySQL; default: MySQL when any of
            host/user/password/port is given, else SQLite.
        host: MySQL host (default ``localhost``).
        user: MySQL user (default ``root``).
        password: MySQL password (never logged, shown or stored).
        port: MySQL port (default 3306).
        migrations: the migration registry (default ``migrations.MIGRATIONS``; tests pass their own).
        schema_version: the version to create/upgrade to (default ``models.SCHEMA_VERSION``).
        retry_for: seconds a lost server connection is retried before an operation fails
            (default 60; ``$EXPMAN_DB_RETRY_FOR`` overrides the default).

    Raises:
        ConfigError: ``$EXPMAN_DB_RETRY_FOR`` is set but not a number of seconds >= 0.
        ConnectionError: the database cannot be opened (message names host:port, masked URL).
        DatabaseError: the database's schema is newer than this code.
    """

    def __init__(
        self,
        database_path: str | DatabaseURL = "experiments.db",
        use_sqlite: bool | None = None,
        host: str | None = None,
        user: str | None = None,
        password: str | None = None,
        port: int | None = None,
        *,
        migrations: Mapping[int, Migration] | None = None,
        schema_version: int | None = None,
        retry_for: float | None = None,
    ) -> None:
        default = env_seconds(RETRY_FOR_ENV, self.retry_for)  # read per manager, never at import
        self.retry_for = float(retry_for) if retry_for is not None else default
        self._url = self._resolve_url(database_path, use_sqlite, host, user, password, port)
        self._db = open_database(self._url)
        self._backend = backend_of(self._db)
        # An in-memory SQLite database is one shared connection: serialise threads on it.
        self._lock: threading.RLock | None = None if self._db.thread_safe else threading.RLock()
        self._tx = threading.local()
        try:
            # A connection lost while checking the schema is retried like any read.
            self._read(
                lambda: ensure_schema(self._db, target=schema_version, migrations=migrations, where=self.url),
                "creating or checking the schema",
            )
        except DatabaseError:
            self._db.close()
            raise
        except Exception as e:
            error = self._translate(e, "creating or checking the schema")  # before close(): see _translate
            self._db.close()
            raise error from e
        m.database_proxy.initialize(self._db)
        log.debug("opened %r", self)

    @staticmethod
    def _resolve_url(
        database_path: str | DatabaseURL,
        use_sqlite: bool | None,
        host: str | None,
        user: str | None,
        password: str | None,
        port: int | None,
    ) -> DatabaseURL:
        if isinstance(database_path, DatabaseURL) or "://" in str(database_path):
            return parse_url(database_path)
        if use_sqlite is None:
            use_sqlite = host is None and user is None and password is None and port is None
        if use_sqlite:
            return DatabaseURL("sqlite", str(database_path))
        return DatabaseURL(
            "mysql",
            str(database_path),
            host=host or "localhost",
            port=int(port or 3306),
            user=user or "root",
            password=password,
        )

    # ------------------------------------------------------------------ properties, lifecycle

    @property
    def backend(self) -> str:
        """``"sqlite"``, ``"mysql"`` or ``"postgresql"``."""
        return self._backend

    @property
    def database(self) -> pw.Database:
        """The underlying Peewee database (for read queries elsewhere, e.g. ``query.py``)."""
        return self._db

    def query(self) -> Query:
        """The read-side API (:class:`lightning_expman.query.Query`) on this database.

        Example:
            >>> db = DatabaseManager("sqlite:///expman_runs/expman.db")
            >>> db.query().trial_summary("digits", "val_loss", "min")
        """
        from ..query import Query

        return Query(self)

    def close(self) -> None:
        """Close the calling thread's connection (a later call reconnects; other threads close their own)."""
        with self._guard():
            if not self._db.is_closed():
                try:
                    self._db.close()
                except pw.PeeweeException as e:
                    raise self._translate(e, "closing the connection") from e

    def close_thread_connection(self) -> None:
        """Close the calling thread's own connection, leaving a shared one (in-memory SQLite) open.

        For helper threads (writer, lease) on their way out: Peewee keeps a connection per thread,
        which would otherwise stay open until garbage collection.
        """
        if not self._db.thread_safe:
            return
        try:
            self.close()
        except Exception as e:
            log.debug("closing a thread's connection failed: %s", e)

    def __enter__(self) -> DatabaseManager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"DatabaseManager({self.url!r})"
