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

Every write runs in one transaction through :meth:`DatabaseManager.run_in_transaction`, which
re-runs the whole transaction once on a new connection when a MySQL/PostgreSQL connection was
lost (the server rolled the failed attempt back, so nothing is lost or written twice). Driver
errors are translated here into :class:`~lightning_expman.errors.QueryError` /
:class:`~lightning_expman.errors.ConnectionError`, chained with ``from``; unknown ids, duplicates
and bad statuses raise :class:`QueryError` instead of silently doing nothing.

Threads: Peewee keeps one connection per thread, so a background writer thread may call any
method while the main thread does too (each thread's transactions are independent).
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import socket
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager, nullcontext
from typing import TYPE_CHECKING, Any, TypeVar

import peewee as pw
from peewee import __exception_wrapper__ as _driver_errors

from ..enums import MetricKey, RunStatus, metric_name
from ..errors import ConnectionError, DatabaseError, QueryError
from . import models as m
from .connect import (
    DatabaseURL,
    _connect_failed,
    backend_of,
    describe,
    is_disconnect,
    mask_url,
    open_database,
    parse_url,
    scrub,
)
from .migrations import Migration, ensure_schema

if TYPE_CHECKING:  # pragma: no cover
    from ..query import Query

__all__ = ["DatabaseManager"]

log = logging.getLogger(__name__)

T = TypeVar("T")
ModelT = TypeVar("ModelT", bound=m.BaseModel)

MetricItems = Iterable[tuple[MetricKey, "float | None", "dict | list | None"]] | Mapping[MetricKey, Any]
"""Epoch/results metrics: ``(name, total_value, per_label_values)`` triples, or ``{name: value}``."""

_SECRET_KEY = re.compile(r"(^|[._-])(password|passwd|pwd|secret|token|api_?key|access_key)$", re.IGNORECASE)
_MYSQL_CHUNK = 5_000  # rows per executemany: pymysql packs them into <1 MB multi-row INSERTs
_PG_PAGE = 5_000  # rows per INSERT statement with execute_values


def _scrub_value(value: Any, key: str = "") -> Any:
    """Mask secrets before they are stored: password-like keys -> ``***``, URL passwords -> ``***``."""
    if isinstance(value, Mapping):
        return {str(k): _scrub_value(v, str(k)) for k, v in value.items()}
    if key and value not in (None, "") and _SECRET_KEY.search(key):
        return "***"
    if isinstance(value, (list, tuple)):
        return [_scrub_value(v) for v in value]
    if isinstance(value, str) and "://" in value:
        return mask_url(value)
    return value


def _flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"model": {"lr": 0.1}}`` -> ``{"model.lr": 0.1}`` (lists and scalars are leaves)."""
    flat: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def _clean_per_label(values: Any) -> Any:
    """Per-label values with NaN/inf -> None, so the stored JSON is valid on every backend."""
    if isinstance(values, Mapping):
        return {str(k): _clean_per_label(v) for k, v in values.items()}
    if isinstance(values, (list, tuple)):
        return [_clean_per_label(v) for v in values]
    if isinstance(values, bool) or not isinstance(values, (int, float)):
        return values
    return m.finite_or_none(values)


def _parse_status(status: RunStatus | str) -> RunStatus:
    try:
        return RunStatus.parse(status)
    except ValueError as e:
        raise QueryError(str(e)) from None


class DatabaseManager:
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

    Raises:
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
    ) -> None:
        self._url = self._resolve_url(database_path, use_sqlite, host, user, password, port)
        self._db = open_database(self._url)
        self._backend = backend_of(self._db)
        # An in-memory SQLite database is one shared connection: serialise threads on it.
        self._lock: threading.RLock | None = None if self._db.thread_safe else threading.RLock()
        try:
            ensure_schema(self._db, target=schema_version, migrations=migrations, where=self.url)
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
    def url(self) -> str:
        """The database URL with the password masked."""
        return self._url.render()

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

    def __enter__(self) -> DatabaseManager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"DatabaseManager({self.url!r})"

    # ------------------------------------------------------------------ transactions, errors

    def _guard(self) -> threading.RLock | nullcontext:
        return self._lock if self._lock is not None else nullcontext()

    @contextmanager
    def transaction(self) -> Iterator[DatabaseManager]:
        """One write transaction (``BEGIN IMMEDIATE`` on SQLite); nested use becomes a savepoint.

        Manager methods called inside join it. Unlike :meth:`run_in_transaction` a lost
        connection is not retried (a ``with`` body cannot be re-run).

        Example:
            >>> db = DatabaseManager("sqlite:///:memory:")
            >>> with db.transaction():
            ...     exp = db.create_experiment("e")
            ...     trial = db.create_trial(exp.id, "t")
        """
        with self._guard():
            try:
                with self._db.atomic():
                    yield self
            except DatabaseError:
                raise
            except pw.PeeweeException as e:
                raise self._translate(e, "transaction") from e

    def run_in_transaction(self, fn: Callable[[], T], *, what: str = "transaction") -> T:
        """Run ``fn()`` in one transaction and return its result.

        If the connection was lost (MySQL 2006/2013/2055, a closed psycopg2 connection) before
        the commit, the server has rolled the attempt back: reconnect and run the whole of ``fn``
        again, once. A connection lost *during* COMMIT is not retried (the write may or may not
        be stored) and raises ConnectionError saying so. Inside an open transaction ``fn`` simply
        joins it.

        Args:
            fn: does the writes through Peewee or ``self.database``; must be safe to re-run.
            what: what is being done, for error messages.

        Raises:
            QueryError: a query failed (constraint violation, unknown id...).
            ConnectionError: the connection could not be re-established.
        """
        return self._run(fn, what, write=True)

    def _run(self, fn: Callable[[], T], what: str, *, write: bool) -> T:
        with self._guard():
            if self._db.in_transaction():  # the outer transaction owns commit and retry
                try:
                    return fn()
                except DatabaseError:
                    raise
                except Exception as e:
                    if not self._is_db_error(e):
                        raise
                    raise self._translate(e, what) from e
            for attempt in (1, 2):
                done = False
                try:
                    if not write:
                        return fn()
                    with self._db.atomic():
                        result = fn()
                        done = True  # from here on a failure is in COMMIT
                    return result
                except DatabaseError:
                    raise
                except Exception as e:
                    if not self._is_db_error(e):
                        raise
                    lost = is_disconnect(self._db, e)
                    if lost and attempt == 1 and not done:
                        log.warning(
                            "lost the connection to %s during %s; reconnecting and retrying", self.url, what
                        )
                        self._reconnect()
                        continue
                    if lost and done:
                        raise ConnectionError(
                            f"{what}: lost the connection to {self._url.address} ({self.url}) during COMMIT, "
                            f"so the write may or may not be stored; check the data and retry"
                        ) from e
                    raise self._translate(e, what) from e
        raise AssertionError("unreachable")  # pragma: no cover

    def _read(self, fn: Callable[[], T], what: str) -> T:
        return self._run(fn, what, write=False)

    def _reconnect(self) -> None:
        try:
            self._db.close()
        except Exception:  # the driver may refuse to close a dead socket; Peewee resets its state anyway
            pass
        try:
            self._db.connect(reuse_if_open=True)
        except Exception as e:
            raise _connect_failed(self._url, e) from e

    @staticmethod
    def _is_db_error(e: BaseException) -> bool:
        module = type(e).__module__ or ""
        return isinstance(e, pw.PeeweeException) or module.split(".")[0] in ("pymysql", "psycopg2", "sqlite3")

    def _translate(self, e: BaseException, what: str) -> DatabaseError:
        cause = getattr(e, "orig", None) or e
        detail = scrub(describe(e), self._url)
        if self._db.is_closed():  # this thread's (auto)connect itself failed
            return _connect_failed(self._url, e)
        if is_disconnect(self._db, e):
            return ConnectionError(
                f"{what}: lost the connection to {self._url.address} ({self.url}): {detail}; "
                f"check that the server is up and retry"
            )
        if isinstance(e, pw.IntegrityError) or type(cause).__name__ == "IntegrityError":
            hint = "the row already exists or refers to an id that does not exist"
        elif "locked" in detail.lower():
            hint = "another process held the write lock for more than 30 s; retry, or use a server database"
        else:
            hint = "check the value and the database"
        return QueryError(f"{what} failed on {self.url}: {detail}; {hint}")

    # ------------------------------------------------------------------ query helpers

    def _insert(self, model: type[ModelT], **values: Any) -> ModelT:
        """INSERT through this manager's database and return the instance (with its new id)."""
        inst = model(**values)
        new_id = model.insert(inst.__data__).execute(self._db)
        pk = model._meta.primary_key
        if isinstance(pk, pw.AutoField) and new_id is not None:
            setattr(inst, pk.name, new_id)
        inst._dirty.clear()
        return inst

    def _require(self, model: type[m.BaseModel], pk: int, label: str) -> None:
        field = model._meta.primary_key
        if not model.select(field).where(field == pk).exists(self._db):
            raise QueryError(
                f"{label} id {pk!r} does not exist in {self.url}; create it first or check the id"
            )

    def _require_epoch(self, trial_run_id: int, epoch_idx: int) -> None:
        q = m.Epoch.select(m.Epoch.idx).where(
            (m.Epoch.trial_run == trial_run_id) & (m.Epoch.idx == epoch_idx)
        )
        if not q.exists(self._db):
            self._require(m.TrialRun, trial_run_id, "trial run")
            raise QueryError(
                f"epoch {epoch_idx} of trial run {trial_run_id} does not exist in {self.url}; "
                f"call create_epoch({epoch_idx}, {trial_run_id}) first"
            )

    def _insert_link(self, model: type[m.BaseModel], label: str, **values: Any) -> m.BaseModel:
        where = [getattr(model, k) == v for k, v in values.items()]
        if model.select().where(*where).exists(self._db):
            args = ", ".join(f"{k}={v}" for k, v in values.items())
            raise QueryError(f"{label} ({args}) is already linked in {self.url}")
        return self._insert(model, **values)

    def _ensure_epoch(self, trial_run_id: int, epoch_idx: int) -> None:
        # INSERT IGNORE would also swallow a foreign-key error on MySQL: check the run first.
        self._require(m.TrialRun, trial_run_id, "trial run")
        m.Epoch.insert(idx=epoch_idx, trial_run=trial_run_id).on_conflict_ignore().execute(self._db)

    def _ensure_results(self, trial_run_id: int) -> None:
        self._require(m.TrialRun, trial_run_id, "trial run")
        m.Results.insert(trial_run=trial_run_id).on_conflict_ignore().execute(self._db)

    def _select(self, query: pw.ModelSelect) -> list:
        return list(query.execute(self._db))

    # ------------------------------------------------------------------ the seed's API: writes

    def create_experiment(
        self,
        title: str,
        desc: str = "",
        *,
        config: Mapping[str, Any] | None = None,
        config_hash: str | None = None,
        tags: Any = None,
    ) -> m.Experiment:
        """Insert an EXPERIMENT row and return it.

        Example:
            >>> db = DatabaseManager("sqlite:///:memory:")
            >>> db.create_experiment("CIFAR-10 Classification", "Comparing architectures").id
            1
        """
        return self.run_in_transaction(
            lambda: self._insert(
                m.Experiment,
                title=title,
                desc=desc or "",
                config=_scrub_value(config),
                config_hash=config_hash,
                tags=_scrub_value(tags),
            ),
            what=f"create experiment {title!r}",
        )

    def create_trial(
        self, experiment_id: int, name: str, *, config: Mapping[str, Any] | None = None, tags: Any = None
    ) -> m.Trial:
        """Insert a TRIAL of experiment ``experiment_id``.

        Raises:
            QueryError: the experiment does not exist.
        """

        def fn() -> m.Trial:
            self._require(m.Experiment, experiment_id, "experiment")
            return self._insert(
                m.Trial,
                experiment=experiment_id,
                name=name,
                config=_scrub_value(config),
                tags=_scrub_value(tags),
            )

        return self.run_in_transaction(fn, what=f"create trial {name!r} of experiment {experiment_id}")

    def create_trial_run(
        self,
        trial_id: int,
        status: RunStatus | str = "running",
        *,
        repeat_idx: int | None = None,
        seed: int | None = None,
        config: Mapping[str, Any] | None = None,
        context: Mapping[str, Any] | None = None,
        tags: Any = None,
        host: str | None = None,
        git_commit: str | None = None,
    ) -> m.TrialRun:
        """Insert a TRIAL_RUN of trial ``trial_id`` (host defaults to this machine; heartbeat = now).

        Example:
            >>> db = DatabaseManager("sqlite:///:memory:")
            >>> trial = db.create_trial(db.create_experiment("e").id, "t")
            >>> run = db.create_trial_run(trial.id, status="running", repeat_idx=1, seed=42)
            >>> run.status, run.seed
            ('RUNNING', 42)

        Raises:
            QueryError: unknown trial or status.
        """
        parsed = _parse_status(status)

        def fn() -> m.TrialRun:
            self._require(m.Trial, trial_id, "trial")
            now = m.utcnow()
            return self._insert(
                m.TrialRun,
                trial=trial_id,
                status=parsed.value,
                start_time=now,
                update_time=now,
                heartbeat=now,
                repeat_idx=repeat_idx,
                seed=seed,
                host=host or socket.gethostname(),
                git_commit=git_commit,
                config=_scrub_value(config),
                context=_scrub_value(context),
                tags=_scrub_value(tags),
            )

        return self.run_in_transaction(fn, what=f"create trial run of trial {trial_id}")

    def record_metric(
        self, total_val: float | None, metric_type: MetricKey, per_label_val: Any = None
    ) -> m.MetricRecord:
        """Insert a METRIC row (NaN/inf stored as NULL) and return it; link it with ``add_epoch_metric``
        or ``link_results_metric``.

        Example:
            >>> db = DatabaseManager("sqlite:///:memory:")
            >>> db.record_metric(0.87, "f1_score", {"class_0": 0.89, "class_1": 0.85}).per_label_val
            {'class_0': 0.89, 'class_1': 0.85}
        """
        name = metric_name(metric_type)
        return self.run_in_transaction(
            lambda: self._insert(
                m.MetricRecord,
                type=name,
                total_val=m.finite_or_none(total_val),
                per_label_val=_clean_per_label(per_label_val),
            ),
            what=f"record metric {name!r}",
        )

    def create_epoch(self, epoch_idx: int, trial_run_id: int) -> m.Epoch:
        """Insert EPOCH ``epoch_idx`` of a trial run.

        Raises:
            QueryError: the trial run does not exist, or the epoch already does (see
                :meth:`ensure_epoch` for the idempotent form).
        """

        def fn() -> m.Epoch:
            self._require(m.TrialRun, trial_run_id, "trial run")
            q = m.Epoch.select(m.Epoch.idx).where(
                (m.Epoch.trial_run == trial_run_id) & (m.Epoch.idx == epoch_idx)
            )
            if q.exists(self._db):
                raise QueryError(
                    f"epoch {epoch_idx} of trial run {trial_run_id} already exists in {self.url}; "
                    f"use ensure_epoch() to create it only when missing"
                )
            return self._insert(m.Epoch, idx=epoch_idx, trial_run=trial_run_id)

        return self.run_in_transaction(fn, what=f"create epoch {epoch_idx} of trial run {trial_run_id}")

    def ensure_epoch(self, trial_run_id: int, epoch_idx: int) -> None:
        """Create EPOCH ``epoch_idx`` of a trial run unless it exists (idempotent, race-safe).

        Raises:
            QueryError: the trial run does not exist.
        """
        self.run_in_transaction(
            lambda: self._ensure_epoch(trial_run_id, epoch_idx),
            what=f"ensure epoch {epoch_idx} of trial run {trial_run_id}",
        )

    def add_epoch_metric(self, epoch_idx: int, trial_run_id: int, metric_id: int) -> m.EpochMetric:
        """Link METRIC ``metric_id`` to an existing epoch.

        Raises:
            QueryError: unknown epoch, trial run or metric; or the link exists already.
        """

        def fn() -> m.EpochMetric:
            self._require_epoch(trial_run_id, epoch_idx)
            self._require(m.MetricRecord, metric_id, "metric")
            return self._insert_link(
                m.EpochMetric,
                "metric of epoch",
                epoch_idx=epoch_idx,
                trial_run=trial_run_id,
                metric=metric_id,
            )

        return self.run_in_transaction(fn, what=f"link metric {metric_id} to epoch {epoch_idx}")

    def record_artifact(self, artifact_type: str, location: str) -> m.Artifact:
        """Insert an ARTIFACT row (a URL's password in ``location`` is masked) and return it."""
        return self.run_in_transaction(
            lambda: self._insert(m.Artifact, type=str(artifact_type), location=mask_url(str(location))),
            what=f"record artifact {artifact_type!r}",
        )

    def link_experiment_artifact(self, experiment_id: int, artifact_id: int) -> m.ExperimentArtifact:
        """Link an artifact to an experiment. Raises QueryError for unknown ids or a duplicate link."""

        def fn() -> m.ExperimentArtifact:
            self._require(m.Experiment, experiment_id, "experiment")
            self._require(m.Artifact, artifact_id, "artifact")
            return self._insert_link(
                m.ExperimentArtifact, "artifact of experiment", experiment=experiment_id, artifact=artifact_id
            )

        return self.run_in_transaction(fn, what=f"link artifact {artifact_id} to experiment {experiment_id}")

    def link_trial_artifact(self, trial_id: int, artifact_id: int) -> m.TrialArtifact:
        """Link an artifact to a trial. Raises QueryError for unknown ids or a duplicate link."""

        def fn() -> m.TrialArtifact:
            self._require(m.Trial, trial_id, "trial")
            self._require(m.Artifact, artifact_id, "artifact")
            return self._insert_link(
                m.TrialArtifact, "artifact of trial", trial=trial_id, artifact=artifact_id
            )

        return self.run_in_transaction(fn, what=f"link artifact {artifact_id} to trial {trial_id}")

    def link_trial_run_artifact(self, trial_run_id: int, artifact_id: int) -> m.TrialRunArtifact:
        """Link an artifact to a trial run. Raises QueryError for unknown ids or a duplicate link."""

        def fn() -> m.TrialRunArtifact:
            self._require(m.TrialRun, trial_run_id, "trial run")
            self._require(m.Artifact, artifact_id, "artifact")
            return self._insert_link(
                m.TrialRunArtifact, "artifact of trial run", trial_run=trial_run_id, artifact=artifact_id
            )

        return self.run_in_transaction(fn, what=f"link artifact {artifact_id} to trial run {trial_run_id}")

    def link_results_metric(self, trial_run_id: int, metric_id: int) -> m.ResultsMetric:
        """Link a metric to the RESULTS of a trial run (the RESULTS row is created on demand)."""

        def fn() -> m.ResultsMetric:
            self._ensure_results(trial_run_id)
            self._require(m.MetricRecord, metric_id, "metric")
            return self._insert_link(
                m.ResultsMetric, "metric of results", results=trial_run_id, metric=metric_id
            )

        return self.run_in_transaction(
            fn, what=f"link metric {metric_id} to results of trial run {trial_run_id}"
        )

    def link_results_artifact(self, trial_run_id: int, artifact_id: int) -> m.ResultsArtifact:
        """Link an artifact to the RESULTS of a trial run (the RESULTS row is created on demand)."""

        def fn() -> m.ResultsArtifact:
            self._ensure_results(trial_run_id)
            self._require(m.Artifact, artifact_id, "artifact")
            return self._insert_link(
                m.ResultsArtifact, "artifact of results", results=trial_run_id, artifact=artifact_id
            )

        return self.run_in_transaction(
            fn, what=f"link artifact {artifact_id} to results of trial run {trial_run_id}"
        )

    def link_epoch_artifact(self, epoch_idx: int, trial_run_id: int, artifact_id: int) -> m.EpochArtifact:
        """Link an artifact to an existing epoch. Raises QueryError for unknown ids or a duplicate link."""

        def fn() -> m.EpochArtifact:
            self._require_epoch(trial_run_id, epoch_idx)
            self._require(m.Artifact, artifact_id, "artifact")
            return self._insert_link(
                m.EpochArtifact,
                "artifact of epoch",
                epoch_idx=epoch_idx,
                trial_run=trial_run_id,
                artifact=artifact_id,
            )

        return self.run_in_transaction(fn, what=f"link artifact {artifact_id} to epoch {epoch_idx}")

    def update_trial_run_status(self, trial_run_id: int, status: RunStatus | str) -> m.TrialRun:
        """Set a trial run's status (case-insensitive name, e.g. ``"completed"``) and return the run.

        A status other than RUNNING also sets ``end_time`` when it is not set yet.

        Raises:
            QueryError: unknown trial run or status.
        """
        parsed = _parse_status(status)

        def fn() -> m.TrialRun:
            self._require(m.TrialRun, trial_run_id, "trial run")
            now = m.utcnow()
            values: dict[Any, Any] = {m.TrialRun.status: parsed.value, m.TrialRun.update_time: now}
            if parsed is not RunStatus.RUNNING:
                values[m.TrialRun.end_time] = pw.fn.COALESCE(m.TrialRun.end_time, now)
            m.TrialRun.update(values).where(m.TrialRun.id == trial_run_id).execute(self._db)
            return m.TrialRun.select().where(m.TrialRun.id == trial_run_id).get(self._db)

        return self.run_in_transaction(
            fn, what=f"update status of trial run {trial_run_id} to {parsed.value}"
        )

    # ------------------------------------------------------------------ the seed's API: reads

    def _metrics(self, epoch_links: pw.ModelSelect, results_links: pw.ModelSelect) -> list[m.MetricRecord]:
        q = (
            m.MetricRecord.select()
            .where(m.MetricRecord.id.in_(epoch_links) | m.MetricRecord.id.in_(results_links))
            .order_by(m.MetricRecord.id)
        )
        return self._select(q)

    def get_experiment_metrics(self, experiment_id: int) -> list[m.MetricRecord]:
        """Every metric recorded anywhere under an experiment (epoch and results metrics of all its runs).

        Raises:
            QueryError: the experiment does not exist.
        """

        def fn() -> list[m.MetricRecord]:
            self._require(m.Experiment, experiment_id, "experiment")
            runs = (
                m.TrialRun.select(m.TrialRun.id)
                .join(m.Trial, on=(m.TrialRun.trial == m.Trial.id))
                .where(m.Trial.experiment == experiment_id)
            )
            return self._metrics(
                m.EpochMetric.select(m.EpochMetric.metric).where(m.EpochMetric.trial_run.in_(runs)),
                m.ResultsMetric.select(m.ResultsMetric.metric).where(m.ResultsMetric.results.in_(runs)),
            )

        return self._read(fn, f"get metrics of experiment {experiment_id}")

    def get_trial_metrics(self, trial_id: int) -> list[m.MetricRecord]:
        """Every metric recorded under a trial (all its runs' epoch and results metrics)."""

        def fn() -> list[m.MetricRecord]:
            self._require(m.Trial, trial_id, "trial")
            runs = m.TrialRun.select(m.TrialRun.id).where(m.TrialRun.trial == trial_id)
            return self._metrics(
                m.EpochMetric.select(m.EpochMetric.metric).where(m.EpochMetric.trial_run.in_(runs)),
                m.ResultsMetric.select(m.ResultsMetric.metric).where(m.ResultsMetric.results.in_(runs)),
            )

        return self._read(fn, f"get metrics of trial {trial_id}")

    def get_trial_run_metrics(self, trial_run_id: int) -> list[m.MetricRecord]:
        """Every metric of a trial run: its epochs' metrics and its results metrics."""

        def fn() -> list[m.MetricRecord]:
            self._require(m.TrialRun, trial_run_id, "trial run")
            return self._metrics(
                m.EpochMetric.select(m.EpochMetric.metric).where(m.EpochMetric.trial_run == trial_run_id),
                m.ResultsMetric.select(m.ResultsMetric.metric).where(m.ResultsMetric.results == trial_run_id),
            )

        return self._read(fn, f"get metrics of trial run {trial_run_id}")

    def get_epoch_metrics(self, epoch_idx: int, trial_run_id: int) -> list[m.MetricRecord]:
        """The metrics linked to one epoch. Raises QueryError for an unknown epoch."""

        def fn() -> list[m.MetricRecord]:
            self._require_epoch(trial_run_id, epoch_idx)
            q = (
                m.MetricRecord.select()
                .join(m.EpochMetric, on=(m.EpochMetric.metric == m.MetricRecord.id))
                .where((m.EpochMetric.trial_run == trial_run_id) & (m.EpochMetric.epoch_idx == epoch_idx))
                .order_by(m.MetricRecord.id)
            )
            return self._select(q)

        return self._read(fn, f"get metrics of epoch {epoch_idx} of trial run {trial_run_id}")

    def _artifacts(self, *links: pw.ModelSelect) -> list[m.Artifact]:
        cond = m.Artifact.id.in_(links[0])
        for link in links[1:]:
            cond |= m.Artifact.id.in_(link)
        return self._select(m.Artifact.select().where(cond).order_by(m.Artifact.id))

    def get_experiment_artifacts(
        self, experiment_id: int, *, include_children: bool = False
    ) -> list[m.Artifact]:
        """Artifacts linked to an experiment; with ``include_children`` also those of its trials,
        runs, results and epochs. Raises QueryError for an unknown experiment."""

        def fn() -> list[m.Artifact]:
            self._require(m.Experiment, experiment_id, "experiment")
            links = [
                m.ExperimentArtifact.select(m.ExperimentArtifact.artifact).where(
                    m.ExperimentArtifact.experiment == experiment_id
                )
            ]
            if include_children:
                trials = m.Trial.select(m.Trial.id).where(m.Trial.experiment == experiment_id)
                runs = m.TrialRun.select(m.TrialRun.id).where(m.TrialRun.trial.in_(trials))
                links += [
                    m.TrialArtifact.select(m.TrialArtifact.artifact).where(m.TrialArtifact.trial.in_(trials)),
                    *self._run_artifact_links(runs, in_=True),
                ]
            return self._artifacts(*links)

        return self._read(fn, f"get artifacts of experiment {experiment_id}")

    def get_trial_artifacts(self, trial_id: int, *, include_children: bool = False) -> list[m.Artifact]:
        """Artifacts linked to a trial; with ``include_children`` also its runs', results' and epochs'."""

        def fn() -> list[m.Artifact]:
            self._require(m.Trial, trial_id, "trial")
            links = [
                m.TrialArtifact.select(m.TrialArtifact.artifact).where(m.TrialArtifact.trial == trial_id)
            ]
            if include_children:
                runs = m.TrialRun.select(m.TrialRun.id).where(m.TrialRun.trial == trial_id)
                links += self._run_artifact_links(runs, in_=True)
            return self._artifacts(*links)

        return self._read(fn, f"get artifacts of trial {trial_id}")

    def get_trial_run_artifacts(
        self, trial_run_id: int, *, include_children: bool = False
    ) -> list[m.Artifact]:
        """Artifacts linked to a trial run; with ``include_children`` also its results' and epochs'."""

        def fn() -> list[m.Artifact]:
            self._require(m.TrialRun, trial_run_id, "trial run")
            links = self._run_artifact_links(trial_run_id, in_=False)
            return self._artifacts(*(links if include_children else links[:1]))

        return self._read(fn, f"get artifacts of trial run {trial_run_id}")

    @staticmethod
    def _run_artifact_links(runs: Any, *, in_: bool) -> list[pw.ModelSelect]:
        def match(field: pw.Field) -> pw.Expression:
            return field.in_(runs) if in_ else field == runs

        return [
            m.TrialRunArtifact.select(m.TrialRunArtifact.artifact).where(match(m.TrialRunArtifact.trial_run)),
            m.ResultsArtifact.select(m.ResultsArtifact.artifact).where(match(m.ResultsArtifact.results)),
            m.EpochArtifact.select(m.EpochArtifact.artifact).where(match(m.EpochArtifact.trial_run)),
        ]

    def get_epoch_artifacts(self, epoch_idx: int, trial_run_id: int) -> list[m.Artifact]:
        """Artifacts linked to one epoch. Raises QueryError for an unknown epoch."""

        def fn() -> list[m.Artifact]:
            self._require_epoch(trial_run_id, epoch_idx)
            return self._artifacts(
                m.EpochArtifact.select(m.EpochArtifact.artifact).where(
                    (m.EpochArtifact.trial_run == trial_run_id) & (m.EpochArtifact.epoch_idx == epoch_idx)
                )
            )

        return self._read(fn, f"get artifacts of epoch {epoch_idx} of trial run {trial_run_id}")

    # ------------------------------------------------------------------ run lifecycle (trackers)

    @contextmanager
    def _serialized(self, key: str) -> Iterator[None]:
        """Serialise get-or-create between processes on MySQL (SQLite: BEGIN IMMEDIATE already does;
        PostgreSQL: an advisory transaction lock taken inside the transaction, see _pg_lock)."""
        if self._backend != "mysql":
            yield
            return
        # GET_LOCK names are at most 64 characters: hash the (database, key) pair
        name = "expman." + hashlib.sha1(f"{self._db.database}\0{key}".encode()).hexdigest()
        with self._guard():
            self._read(lambda: self._db.execute_sql("SELECT GET_LOCK(%s, 30)", (name,)), "get-or-create lock")
            try:
                yield
            finally:
                try:
                    self._db.execute_sql("SELECT RELEASE_LOCK(%s)", (name,))
                except pw.PeeweeException:  # a lost connection released it already
                    pass

    def _pg_lock(self, key: str) -> None:
        if self._backend == "postgresql":
            self._db.execute_sql("SELECT pg_advisory_xact_lock(hashtext(%s))", (key,))

    def get_or_create_experiment(
        self,
        title: str,
        desc: str = "",
        *,
        config: Mapping[str, Any] | None = None,
        config_hash: str | None = None,
        tags: Any = None,
    ) -> m.Experiment:
        """The (oldest) experiment titled ``title``, created when there is none (race-safe across processes).

        An existing experiment is returned unchanged: compare its ``config_hash`` to decide whether to resume.
        """

        def fn() -> m.Experiment:
            self._pg_lock(f"experiment:{title}")
            found = (
                m.Experiment.select()
                .where(m.Experiment.title == title)
                .order_by(m.Experiment.id)
                .first(self._db)
            )
            if found is not None:
                return found
            return self._insert(
                m.Experiment,
                title=title,
                desc=desc or "",
                config=_scrub_value(config),
                config_hash=config_hash,
                tags=_scrub_value(tags),
            )

        with self._serialized(f"experiment:{title}"):
            return self.run_in_transaction(fn, what=f"get or create experiment {title!r}")

    def get_or_create_trial(
        self, experiment_id: int, name: str, *, config: Mapping[str, Any] | None = None, tags: Any = None
    ) -> m.Trial:
        """The trial ``name`` of an experiment, created when missing (race-safe across processes).

        Raises:
            QueryError: the experiment does not exist.
        """

        def fn() -> m.Trial:
            self._pg_lock(f"trial:{experiment_id}:{name}")
            self._require(m.Experiment, experiment_id, "experiment")
            found = (
                m.Trial.select()
                .where((m.Trial.experiment == experiment_id) & (m.Trial.name == name))
                .order_by(m.Trial.id)
                .first(self._db)
            )
            if found is not None:
                return found
            return self._insert(
                m.Trial,
                experiment=experiment_id,
                name=name,
                config=_scrub_value(config),
                tags=_scrub_value(tags),
            )

        with self._serialized(f"trial:{experiment_id}:{name}"):
            return self.run_in_transaction(
                fn, what=f"get or create trial {name!r} of experiment {experiment_id}"
            )

    def finish_trial_run(
        self,
        trial_run_id: int,
        status: RunStatus | str,
        *,
        error: str | None = None,
        stop_epoch: int | None = None,
    ) -> m.TrialRun:
        """Mark a trial run finished: status, ``end_time``, ``update_time`` (and error text / stop epoch).

        Raises:
            QueryError: unknown trial run or status.
        """
        parsed = _parse_status(status)

        def fn() -> m.TrialRun:
            self._require(m.TrialRun, trial_run_id, "trial run")
            now = m.utcnow()
            values: dict[Any, Any] = {
                m.TrialRun.status: parsed.value,
                m.TrialRun.end_time: now,
                m.TrialRun.update_time: now,
                m.TrialRun.heartbeat: now,
            }
            if error is not None:
                values[m.TrialRun.error] = mask_url(str(error))
            if stop_epoch is not None:
                values[m.TrialRun.stop_epoch] = stop_epoch
            m.TrialRun.update(values).where(m.TrialRun.id == trial_run_id).execute(self._db)
            return m.TrialRun.select().where(m.TrialRun.id == trial_run_id).get(self._db)

        return self.run_in_transaction(fn, what=f"finish trial run {trial_run_id} as {parsed.value}")

    def heartbeat(self, trial_run_id: int) -> None:
        """Refresh a running trial run's heartbeat (a stale heartbeat marks a crashed run)."""

        def fn() -> None:
            now = m.utcnow()
            n = m.TrialRun.update(heartbeat=now).where(m.TrialRun.id == trial_run_id).execute(self._db)
            if not n:
                self._require(m.TrialRun, trial_run_id, "trial run")  # MySQL counts unchanged rows as 0

        self.run_in_transaction(fn, what=f"heartbeat of trial run {trial_run_id}")

    def log_params(self, trial_run_id: int, params: Mapping[str, Any]) -> int:
        """Store a run's hyperparameters, flattened to dotted keys (``{"model": {"lr": 0.1}}`` ->
        ``model.lr``), replacing earlier values of the same keys. Secrets are masked.

        Returns:
            The number of keys written.

        Example:
            >>> db = DatabaseManager("sqlite:///:memory:")
            >>> run = db.create_trial_run(db.create_trial(db.create_experiment("e").id, "t").id)
            >>> db.log_params(run.id, {"model": {"lr": 0.1, "layers": [2, 4]}, "seed": 3})
            3
        """
        flat = _flatten(params)
        rows = [
            {"trial_run": trial_run_id, "key": k[:255], "value": _scrub_value(v, k)} for k, v in flat.items()
        ]
        if not rows:
            return 0

        def fn() -> int:
            self._require(m.TrialRun, trial_run_id, "trial run")
            q = m.RunParam.insert_many(rows)
            if self._backend == "mysql":
                q = q.on_conflict(preserve=[m.RunParam.value])
            else:
                q = q.on_conflict(
                    conflict_target=[m.RunParam.trial_run, m.RunParam.key], preserve=[m.RunParam.value]
                )
            q.execute(self._db)
            return len(rows)

        return self.run_in_transaction(fn, what=f"log {len(rows)} params of trial run {trial_run_id}")

    # ------------------------------------------------------------------ bulk paths

    def record_step_metrics(
        self, rows: Iterable[tuple[int, int, int | None, MetricKey, float | None]]
    ) -> int:
        """THE BULK PATH: store step-level values ``(trial_run_id, step, epoch, name, value)`` in one
        transaction with the driver's fastest batch insert (sqlite3/pymysql ``executemany``,
        psycopg2 ``execute_values``). NaN/inf are stored as NULL.

        Returns:
            The number of rows written.

        Raises:
            QueryError: e.g. a trial run id that does not exist.

        Example:
            >>> db = DatabaseManager("sqlite:///:memory:")
            >>> run = db.create_trial_run(db.create_trial(db.create_experiment("e").id, "t").id)
            >>> db.record_step_metrics([(run.id, s, 0, "train_loss", 1.0 / (s + 1)) for s in range(100)])
            100
        """
        isfinite = math.isfinite
        data: list[tuple] = []
        append = data.append
        for run, step, epoch, name, value in rows:
            if value is not None:
                value = float(value)
                if not isfinite(value):
                    value = None
            append((run, step, epoch, name if type(name) is str else metric_name(name), value))
        if not data:
            return 0
        return self.run_in_transaction(
            lambda: self._bulk_insert(data), what=f"record {len(data)} step metric values"
        )

    def _bulk_insert(self, data: list[tuple]) -> int:
        q = self._db.quote
        cols = ", ".join(c.join(q) for c in ("trial_run_id", "step", "epoch", "name", "value"))
        table = "step_metric".join(q)
        cursor = self._db.cursor()
        # Raw driver errors are wrapped like Peewee's own, so _run translates/retries them alike.
        with _driver_errors:
            if self._backend == "postgresql":
                from psycopg2.extras import execute_values

                execute_values(cursor, f"INSERT INTO {table} ({cols}) VALUES %s", data, page_size=_PG_PAGE)
            elif self._backend == "mysql":
                sql = f"INSERT INTO {table} ({cols}) VALUES (%s, %s, %s, %s, %s)"
                for i in range(0, len(data), _MYSQL_CHUNK):
                    cursor.executemany(sql, data[i : i + _MYSQL_CHUNK])
            else:
                cursor.executemany(f"INSERT INTO {table} ({cols}) VALUES (?, ?, ?, ?, ?)", data)
        return len(data)

    def _insert_metrics(self, metrics: MetricItems) -> list[m.MetricRecord]:
        items = metrics.items() if isinstance(metrics, Mapping) else metrics
        out = []
        for item in items:
            name, value, *rest = item
            per_label = rest[0] if rest else None
            out.append(
                self._insert(
                    m.MetricRecord,
                    type=metric_name(name),
                    total_val=m.finite_or_none(value),
                    per_label_val=_clean_per_label(per_label),
                )
            )
        return out

    def record_epoch_metrics(
        self, trial_run_id: int, epoch_idx: int, metrics: MetricItems
    ) -> list[m.MetricRecord]:
        """In one transaction: create the epoch if missing, the METRIC rows and their EPOCH_METRIC links.

        Args:
            trial_run_id: the run.
            epoch_idx: the epoch (created when missing).
            metrics: ``(name, total_value, per_label_values_or_None)`` triples, or ``{name: value}``.

        Returns:
            The METRIC rows written.

        Example:
            >>> db = DatabaseManager("sqlite:///:memory:")
            >>> run = db.create_trial_run(db.create_trial(db.create_experiment("e").id, "t").id)
            >>> rows = [("val_loss", 0.5, None), ("val_acc", 0.9, {"cat": 0.8, "dog": 1.0})]
            >>> [r.type for r in db.record_epoch_metrics(run.id, 0, rows)]
            ['val_loss', 'val_acc']
        """
        metrics = list(metrics.items()) if isinstance(metrics, Mapping) else list(metrics)

        def fn() -> list[m.MetricRecord]:
            self._ensure_epoch(trial_run_id, epoch_idx)
            records = self._insert_metrics(metrics)
            if records:
                links = [{"epoch_idx": epoch_idx, "trial_run": trial_run_id, "metric": r.id} for r in records]
                m.EpochMetric.insert_many(links).execute(self._db)
            return records

        return self.run_in_transaction(
            fn, what=f"record metrics of epoch {epoch_idx} of trial run {trial_run_id}"
        )

    def record_results_metrics(self, trial_run_id: int, metrics: MetricItems) -> list[m.MetricRecord]:
        """In one transaction: the RESULTS row if missing, the METRIC rows and their RESULTS_METRIC links.

        Same ``metrics`` shapes as :meth:`record_epoch_metrics`.
        """
        metrics = list(metrics.items()) if isinstance(metrics, Mapping) else list(metrics)

        def fn() -> list[m.MetricRecord]:
            self._ensure_results(trial_run_id)
            records = self._insert_metrics(metrics)
            if records:
                links = [{"results": trial_run_id, "metric": r.id} for r in records]
                m.ResultsMetric.insert_many(links).execute(self._db)
            return records

        return self.run_in_transaction(fn, what=f"record results metrics of trial run {trial_run_id}")

    def add_artifact(
        self,
        artifact_type: str,
        location: str,
        *,
        experiment_id: int | None = None,
        trial_id: int | None = None,
        trial_run_id: int | None = None,
        epoch_idx: int | None = None,
        results: bool = False,
    ) -> m.Artifact:
        """Record an artifact and link it, in one transaction, to every level given.

        ``epoch_idx`` and ``results`` need ``trial_run_id``; the epoch / RESULTS row is created when
        missing. With ``epoch_idx`` or ``results`` the artifact is linked to that epoch / the
        results, not to the run itself.

        Example:
            >>> db = DatabaseManager("sqlite:///:memory:")
            >>> run = db.create_trial_run(db.create_trial(db.create_experiment("e").id, "t").id)
            >>> a = db.add_artifact("checkpoint", "/ckpt/epoch=2.ckpt", trial_run_id=run.id, epoch_idx=2)
            >>> [x.location for x in db.get_epoch_artifacts(2, run.id)]
            ['/ckpt/epoch=2.ckpt']

        Raises:
            QueryError: an unknown id, or ``epoch_idx``/``results`` without ``trial_run_id``.
        """
        if (epoch_idx is not None or results) and trial_run_id is None:
            raise QueryError(
                f"add_artifact({artifact_type!r}, {location!r}): epoch_idx / results need trial_run_id"
            )

        def fn() -> m.Artifact:
            art = self._insert(m.Artifact, type=str(artifact_type), location=mask_url(str(location)))
            if experiment_id is not None:
                self._require(m.Experiment, experiment_id, "experiment")
                self._insert(m.ExperimentArtifact, experiment=experiment_id, artifact=art.id)
            if trial_id is not None:
                self._require(m.Trial, trial_id, "trial")
                self._insert(m.TrialArtifact, trial=trial_id, artifact=art.id)
            if trial_run_id is not None:
                if epoch_idx is not None:
                    self._ensure_epoch(trial_run_id, epoch_idx)
                    self._insert(
                        m.EpochArtifact, epoch_idx=epoch_idx, trial_run=trial_run_id, artifact=art.id
                    )
                if results:
                    self._ensure_results(trial_run_id)
                    self._insert(m.ResultsArtifact, results=trial_run_id, artifact=art.id)
                if epoch_idx is None and not results:
                    self._require(m.TrialRun, trial_run_id, "trial run")
                    self._insert(m.TrialRunArtifact, trial_run=trial_run_id, artifact=art.id)
            return art

        return self.run_in_transaction(fn, what=f"add artifact {artifact_type!r}")
