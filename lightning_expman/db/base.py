"""``ManagerBase``: the plumbing every part of :class:`~lightning_expman.db.manager.DatabaseManager`
stands on — transactions, the retry on a lost connection and error translation.

Every write runs in one transaction through :meth:`ManagerBase.run_in_transaction`, which
re-runs the whole transaction on a new connection (with backoff, for up to ``retry_for`` seconds)
when a MySQL/PostgreSQL connection was lost before the commit (the server rolled the failed
attempt back, so nothing is lost or written twice); a commit whose outcome is unknown is re-run
only when the operation is idempotent or can verify whether it landed. Driver
errors are translated here into :class:`~lightning_expman.errors.QueryError` /
:class:`~lightning_expman.errors.ConnectionError`, chained with ``from``; unknown ids and
duplicates raise :class:`QueryError` instead of silently doing nothing.

The query helpers and row builders are the next layer (``rows.py``); the API methods live in
mixins on top of it (``writes.py``, ``reads.py``, ``lifecycle.py``, ``bulk.py``); ``manager.py``
opens the database and composes them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from typing import TYPE_CHECKING, Any, TypeVar

import peewee as pw

from ..errors import ConnectionError, DatabaseError, QueryError
from .driver_errors import connect_error, describe, is_conflict, is_disconnect, scrub
from .urls import DatabaseURL

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

RETRY_FOR_ENV = "EXPMAN_DB_RETRY_FOR"
"""Overrides the default of :attr:`ManagerBase.retry_for` (seconds)."""


class ManagerBase:
    """Transactions, retries and error translation over one Peewee database.

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

    retry_for: float = 60.0
    """Seconds a lost MySQL/PostgreSQL connection is retried (with backoff) before an operation
    fails (set per manager: the constructor's ``retry_for``, else :data:`RETRY_FOR_ENV`)."""

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
