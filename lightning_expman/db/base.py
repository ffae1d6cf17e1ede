"""``ManagerBase``: the plumbing every part of :class:`~lightning_expman.db.manager.DatabaseManager`
stands on — transactions, the retry on a lost connection, error translation, and small query helpers.

Every write runs in one transaction through :meth:`ManagerBase.run_in_transaction`, which
re-runs the whole transaction on a new connection (with backoff, for up to ``retry_for`` seconds)
when a MySQL/PostgreSQL connection was lost before the commit (the server rolled the failed
attempt back, so nothing is lost or written twice); a commit whose outcome is unknown is re-run
only when the operation is idempotent or can verify whether it landed. Driver
errors are translated here into :class:`~lightning_expman.errors.QueryError` /
:class:`~lightning_expman.errors.ConnectionError`, chained with ``from``; unknown ids and
duplicates raise :class:`QueryError` instead of silently doing nothing.

The API methods live in mixins on top of this class (``writes.py``, ``reads.py``,
``lifecycle.py``, ``bulk.py``); ``manager.py`` opens the database and composes them.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, nullcontext
from typing import TYPE_CHECKING, Any, TypeVar

import peewee as pw

from ..errors import ConnectionError, DatabaseError, QueryError
from ..masking import mask_url
from . import models as m
from .driver_errors import connect_error, describe, is_conflict, is_disconnect, scrub
from .urls import DatabaseURL
from .values import _clean_per_label, _scrub_value

if TYPE_CHECKING:  # pragma: no cover
    from .manager import DatabaseManager

__all__ = ["ManagerBase"]


def _first_cause(error: BaseException) -> BaseException:
    """The error that failed a transaction, not the failed rollback it caused.

    SQLite rolls a transaction back by itself on some errors (``database or disk is full``);
    Peewee's rollback then raises "cannot rollback - no transaction is active", hiding the cause.
    """
    cause = error
    while "cannot rollback" in str(cause) and cause.__context__ is not None:
        cause = cause.__context__  # the wrapped driver error, then what was being rolled back
        if cause.__cause__ is not None and not ManagerBase._is_db_error(cause):
            cause = cause.__cause__  # raised from the driver's error (a batch abandoning its attempt)
    return cause if ManagerBase._is_db_error(cause) else error


log = logging.getLogger("lightning_expman.db.manager")  # the name it always had: log filters keep working

T = TypeVar("T")
ModelT = TypeVar("ModelT", bound=m.BaseModel)


class ManagerBase:
    """Transactions, retries, error translation and query helpers over one Peewee database.

    Subclasses set ``_url``, ``_db``, ``_backend`` and ``_lock`` when they open the database.
    """

    _url: DatabaseURL
    _db: pw.Database
    _backend: str
    _lock: threading.RLock | None
    _tx: threading.local  # per thread: ``rows``, what the open write transaction knows exists

    @property
    def url(self) -> str:
        """The database URL with the password masked."""
        return self._url.render()

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

    def run_in_transaction(
        self,
        fn: Callable[[], T],
        *,
        what: str = "transaction",
        idempotent: bool = False,
        verify: Callable[[], tuple[bool, T]] | None = None,
        retry_for: float | None = None,
    ) -> T:
        """Run ``fn()`` in one transaction and return its result, riding out lost connections.

        A MySQL/PostgreSQL connection lost before the commit means the server rolled the attempt
        back: reconnect (with backoff) and run the whole of ``fn`` again, for up to
        :attr:`retry_for` seconds. A connection lost *during* COMMIT leaves the outcome unknown:
        the attempt is re-run only when ``idempotent`` (running it twice stores it once), or when
        ``verify()`` — called on the new connection — says it did not land (``verify`` returns
        ``(committed, result)``). Otherwise ConnectionError says so. Inside an open transaction
        ``fn`` simply joins it.

        Args:
            fn: does the writes through Peewee or ``self.database``; must be safe to re-run.
            what: what is being done, for error messages.
            idempotent: re-running ``fn`` after it committed changes nothing.
            verify: tells whether an attempt whose COMMIT was lost is stored.
            retry_for: this call's bound instead of :attr:`retry_for`.

        Raises:
            QueryError: a query failed (constraint violation, unknown id...).
            ConnectionError: the server stayed unreachable for ``retry_for`` seconds, or a COMMIT
                with an unknown outcome could not be verified.
        """
        return self._run(fn, what, write=True, idempotent=idempotent, verify=verify, retry_for=retry_for)

    retry_for: float = float(os.environ.get("EXPMAN_DB_RETRY_FOR", "60"))
    """Seconds a lost MySQL/PostgreSQL connection is retried (with backoff) before an operation fails."""

    def _run(
        self,
        fn: Callable[[], T],
        what: str,
        *,
        write: bool,
        idempotent: bool = False,
        verify: Callable[[], tuple[bool, T]] | None = None,
        retry_for: float | None = None,
    ) -> T:
        bound = self.retry_for if retry_for is None else retry_for
        with self._guard():
            if self._db.in_transaction():  # the outer transaction owns commit and retry
                try:
                    return fn()
                except DatabaseError:
                    raise
                except Exception as raised:
                    if not self._is_db_error(raised):
                        raise
                    e = _first_cause(raised)
                    raise self._translate(e, what) from e
            deadline = time.monotonic() + bound
            delay = 0.05
            unknown = False  # an earlier attempt's COMMIT was lost: it may be stored
            while True:
                done = False
                try:
                    if unknown and verify is not None:
                        committed, result = verify()
                        if committed:
                            return result
                    if not write:
                        return fn()
                    with self._db.atomic():
                        self._tx.rows = set()
                        try:
                            result = fn()
                        finally:
                            self._tx.rows = None
                        done = True  # from here on a failure is in COMMIT
                    return result
                except DatabaseError:
                    raise
                except Exception as raised:
                    if not self._is_db_error(raised):
                        raise
                    e = _first_cause(raised)
                    if is_conflict(self._db, e) and not done and time.monotonic() < deadline:
                        # The server rolled the whole transaction back to break a deadlock
                        # between concurrent writers: run it again (the connection is fine).
                        log.info("%s met a concurrent writer on %s; retrying", what, self.url)
                        self._rollback_quietly()
                        time.sleep(delay)
                        delay = min(delay * 2, 2.0)
                        continue
                    if not is_disconnect(self._db, e):
                        raise self._translate(e, what) from e
                    if done and not (idempotent or verify is not None or not write):
                        raise ConnectionError(
                            f"{what}: lost the connection to {self._url.address} ({self.url}) during COMMIT, "
                            f"so the write may or may not be stored; check the data and retry"
                        ) from e
                    unknown = unknown or done
                    if time.monotonic() + delay > deadline:
                        raise ConnectionError(
                            f"{what}: {self.url} unreachable for {bound:g} s "
                            f"({scrub(describe(e), self._url)}); check that the server is up and retry"
                        ) from e
                    log.warning("lost the connection to %s during %s; reconnecting", self.url, what)
                    time.sleep(delay)
                    delay = min(delay * 2, 2.0)
                    self._try_reconnect()

    def _read(self, fn: Callable[[], T], what: str) -> T:
        return self._run(fn, what, write=False)

    def _rollback_quietly(self) -> None:
        try:
            self._db.rollback()
        except Exception:  # already rolled back by the server
            pass

    def _try_reconnect(self) -> None:
        """Drop this thread's dead connection and open a new one if the server answers (a failure
        here is retried by the caller's loop). Server backends only: SQLite never loses its
        connection (and an in-memory one must not be dropped)."""
        state = self._db._state  # this thread's connection state
        try:
            if state.conn is not None:
                state.conn.close()  # the driver may refuse on a dead socket
        except Exception:
            pass
        # Peewee must forget the dead connection and any transaction left open on it: its own
        # close() refuses while a transaction is open, and connect() would then reuse the corpse.
        state.reset()
        try:
            self._db.connect()
        except Exception as e:
            log.debug("reconnecting to %s failed: %s", self.url, scrub(describe(e), self._url))

    @staticmethod
    def _is_db_error(e: BaseException) -> bool:
        module = type(e).__module__ or ""
        return isinstance(e, pw.PeeweeException) or module.split(".")[0] in ("pymysql", "psycopg2", "sqlite3")

    def _translate(self, e: BaseException, what: str) -> DatabaseError:
        cause = getattr(e, "orig", None) or e
        detail = scrub(describe(e), self._url)
        if self._db.is_closed():  # this thread's (auto)connect itself failed
            return connect_error(self._url, e)
        if is_disconnect(self._db, e):
            return ConnectionError(
                f"{what}: lost the connection to {self._url.address} ({self.url}): {detail}; "
                f"check that the server is up and retry"
            )
        if isinstance(e, pw.IntegrityError) or type(cause).__name__ == "IntegrityError":
            hint = "the row already exists or refers to an id that does not exist"
        elif "disk is full" in detail.lower() or "no space left" in detail.lower():
            hint = f"free space on the disk holding {self._url.address}"
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

    def _known(self) -> set[tuple[Any, ...]] | None:
        """Rows the open write transaction has checked or written (``None`` outside one).

        Inside one transaction a row seen to exist cannot vanish except by this transaction's
        own deletes (which call :meth:`_forget`), so a batch of writes to one run checks the run
        once, not once per write.
        """
        return getattr(self._tx, "rows", None)

    def _forget(self) -> None:
        """Called by deletes: what the transaction knew may be gone."""
        known = self._known()
        if known is not None:
            known.clear()

    def _missing(self, label: str, pk: Any) -> QueryError:
        return QueryError(f"{label} id {pk!r} does not exist in {self.url}; create it first or check the id")

    def _require(self, model: type[m.BaseModel], pk: int, label: str) -> None:
        known = self._known()
        if known is not None and (model, pk) in known:
            return
        field = model._meta.primary_key
        if not model.select(field).where(field == pk).exists(self._db):
            raise self._missing(label, pk)
        if known is not None:
            known.add((model, pk))

    def _insert_under(
        self, model: type[ModelT], parent: type[m.BaseModel], parent_id: int, label: str, **values: Any
    ) -> ModelT:
        """INSERT a row whose only foreign key names ``parent_id``: the key checks the parent in the
        INSERT itself (on every backend: a plain INSERT, not MySQL's INSERT IGNORE), and an unknown
        one raises the QueryError :meth:`_require` would, without a lookup first."""
        try:
            row = self._insert(model, **values)
        except pw.IntegrityError as e:
            raise self._missing(label, parent_id) from e
        known = self._known()
        if known is not None:
            known.add((parent, parent_id))
        return row

    def _epoch_exists(self, trial_run_id: int, epoch_idx: int) -> bool:
        q = m.Epoch.select(m.Epoch.idx).where(
            (m.Epoch.trial_run == trial_run_id) & (m.Epoch.idx == epoch_idx)
        )
        return q.exists(self._db)

    def _require_epoch(self, trial_run_id: int, epoch_idx: int) -> None:
        if not self._epoch_exists(trial_run_id, epoch_idx):
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
        self._ensure_child(m.Epoch, trial_run_id, idx=epoch_idx, trial_run=trial_run_id)

    def _ensure_results(self, trial_run_id: int) -> None:
        self._ensure_child(m.Results, trial_run_id, trial_run=trial_run_id)

    def _ensure_child(self, model: type[m.BaseModel], trial_run_id: int, **values: Any) -> None:
        """INSERT a row of a trial run (an EPOCH, its RESULTS) unless it exists; an unknown run
        raises QueryError. SQLite and PostgreSQL check the run in the INSERT itself (its foreign
        key); MySQL's INSERT IGNORE would swallow that error too, so the run is looked up first."""
        known = self._known()
        key = (model, *values.values())
        if known is not None and key in known:
            return
        if self._backend == "mysql":
            self._require(m.TrialRun, trial_run_id, "trial run")
        try:
            model.insert(**values).on_conflict_ignore().execute(self._db)
        except pw.IntegrityError as e:  # only the foreign key can fail: conflicts are ignored
            raise self._missing("trial run", trial_run_id) from e
        if known is not None:
            known.update((key, (m.TrialRun, trial_run_id)))

    def _select(self, query: pw.ModelSelect) -> list:
        return list(query.execute(self._db))

    def _update_run(self, trial_run_id: int, values: Mapping[Any, Any]) -> m.TrialRun:
        """UPDATE one TRIAL_RUN row and return it as stored (the caller checked that it exists)."""
        m.TrialRun.update(values).where(m.TrialRun.id == trial_run_id).execute(self._db)
        return m.TrialRun.select().where(m.TrialRun.id == trial_run_id).get(self._db)

    # ------------------------------------------------------------------ row builders (secrets masked)

    def _insert_experiment(
        self, title: str, desc: str, config: Mapping[str, Any] | None, config_hash: str | None, tags: Any
    ) -> m.Experiment:
        return self._insert(
            m.Experiment,
            title=title,
            desc=desc or "",
            config=_scrub_value(config),
            config_hash=config_hash,
            tags=_scrub_value(tags),
        )

    def _insert_trial(
        self, experiment_id: int, name: str, config: Mapping[str, Any] | None, tags: Any
    ) -> m.Trial:
        """A TRIAL row; an unknown experiment raises QueryError."""
        return self._insert_under(
            m.Trial,
            m.Experiment,
            experiment_id,
            "experiment",
            experiment=experiment_id,
            name=name,
            config=_scrub_value(config),
            tags=_scrub_value(tags),
        )

    def _insert_metric(self, name: str, total_val: float | None, per_label_val: Any) -> m.MetricRecord:
        """A METRIC row: NaN/inf stored as NULL, in the total and in the per-label values."""
        return self._insert(
            m.MetricRecord,
            type=name,
            total_val=m.finite_or_none(total_val),
            per_label_val=_clean_per_label(per_label_val),
        )

    def _insert_artifact(self, artifact_type: str, location: str) -> m.Artifact:
        """An ARTIFACT row; a URL's password in ``location`` is masked."""
        return self._insert(m.Artifact, type=str(artifact_type), location=mask_url(str(location)))
