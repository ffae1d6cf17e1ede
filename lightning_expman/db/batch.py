"""One batch of buffered writes applied to the database: one transaction, exactly once.

:class:`~lightning_expman.db.writer.BackgroundWriter` owns the buffer and the thread; this module
owns what happens to a batch it takes: :func:`split_batch` turns the buffered operations into step
rows and calls, :func:`write_batch` applies them in ONE transaction, each operation in its own
savepoint (a bad operation, e.g. an unknown id, is reported without losing the rest), retried by
``run_in_transaction`` when the server connection is lost. Savepoints cost two statements per
operation, so a batch first runs without them; only when one of its operations fails is it rolled
back and applied again with a savepoint per operation (same outcome, and the rare failing batch
pays for it). On a server database each batch also
stores its number in ``write_mark`` (inside the same transaction), so a batch whose COMMIT was lost
is re-run only if it did not land.

Example:
    >>> rows, calls = split_batch([(STEPS, run_id, 10, 0, {"loss": 0.5})])
    >>> failures = write_batch(db, rows, calls, writer="a1b2", number=1)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import DatabaseError
from .bulk import step_value
from .driver_errors import is_conflict, is_disconnect

if TYPE_CHECKING:
    from .manager import DatabaseManager

__all__ = ["CALL", "STEP", "STEPS", "split_batch", "write_batch"]

# Operation kinds: the first element of each buffered tuple.
STEPS = 0  # (STEPS, trial_run_id, step, epoch, {name: value})
STEP = 1  # (STEP, trial_run_id, step, epoch, name, value)
CALL = 2  # (CALL, fn, args, kwargs)

Failures = list[tuple[str, BaseException]]
"""``(what, error)`` for each operation of a committed batch that failed (and was rolled back)."""


def split_batch(batch: list[tuple[Any, ...]]) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """The step rows ``(trial_run_id, step, epoch, name, value)`` and the calls of ``batch``.

    Values are stored as floats, NaN and infinities as NULL.
    """
    rows: list[tuple[Any, ...]] = []
    calls: list[tuple[Any, ...]] = []
    append = rows.append
    isfinite = math.isfinite
    for op in batch:
        kind = op[0]
        if kind == STEPS:  # one pass to the stored form: the writer thread holds the GIL meanwhile
            _, run, step, epoch, metrics = op
            for name, value in metrics.items():
                if value is not None:
                    value = float(value)
                    if not isfinite(value):
                        value = None
                append((run, step, epoch, name if type(name) is str else str(name), value))
        elif kind == STEP:
            _, run, step, epoch, name, value = op
            append((run, step, epoch, name if type(name) is str else str(name), step_value(value)))
        else:
            calls.append(op)
    return rows, calls


def write_batch(
    manager: DatabaseManager,
    rows: list[tuple[Any, ...]],
    calls: list[tuple[Any, ...]],
    *,
    writer: str,
    number: int,
    what: str = "background write",
    retry_for: float | None = None,
) -> Failures:
    """Apply ``rows`` and ``calls`` in one transaction, exactly once.

    Args:
        manager: the database to write.
        rows: step rows from :func:`split_batch`.
        calls: ``(CALL, fn, args, kwargs)`` operations, applied in order after the rows.
        writer: the writer's token (its ``write_mark`` row).
        number: this batch's number for ``writer`` (growing).
        what: the batch as error messages name it.
        retry_for: seconds to retry a lost connection (``None``: the manager's ``retry_for``).

    Returns:
        The operations that failed inside the committed batch.

    Raises:
        DatabaseError: the whole batch was given up (e.g. the server stayed unreachable).
    """
    marked = manager.backend != "sqlite"  # SQLite never loses its connection

    def body(failures: Failures | None) -> Failures:
        # failures=None: no savepoints, and the first failing operation aborts the attempt.
        if rows:
            _apply(manager, manager.write_step_rows, (rows,), {}, f"{len(rows)} step values", failures)
        for _, fn, args, kwargs in calls:
            _apply(manager, fn, args, kwargs, getattr(fn, "__name__", repr(fn)), failures)
        if marked:
            _mark(manager, writer, number)
        return failures or []

    def landed() -> tuple[bool, Failures]:
        return _marked(manager, writer) >= number, []

    def attempt(failures: Failures | None) -> Failures:
        return manager.run_in_transaction(
            lambda: body(failures),
            what=what,
            verify=landed if marked else None,
            retry_for=retry_for,
        )

    try:
        return attempt(None)
    except _Replay:  # rolled back: apply it again, each operation in its own savepoint
        return attempt([])


class _Replay(Exception):
    """An operation of a batch run without savepoints failed: roll the batch back and redo it."""


def _apply(
    manager: DatabaseManager,
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    what: str,
    failures: Failures | None,
) -> None:
    """Apply one operation; a failure is appended to ``failures`` (its savepoint rolled back) or,
    with ``failures=None`` (no savepoint), aborts the batch's attempt with :class:`_Replay`."""
    db = manager.database
    try:
        if failures is None:
            fn(*args, **kwargs)
            return
        with db.atomic():  # a savepoint inside the batch's transaction
            fn(*args, **kwargs)
    except Exception as e:
        if is_disconnect(db, e) or is_conflict(db, e):
            # The server ended the whole transaction (a lost connection, or a deadlock victim
            # whose savepoints are gone with it): run_in_transaction re-runs the batch.
            raise _driver_cause(e) from None
        if failures is None:
            raise _Replay(what) from e
        failures.append((what, e))


def _mark(manager: DatabaseManager, writer: str, number: int) -> None:
    """Store ``number`` as ``writer``'s last committed batch (inside the batch's transaction)."""
    from .models import WriteMark

    db = manager.database
    # Numbers grow, so an existing row always changes (MySQL counts unchanged rows as 0).
    updated = WriteMark.update(seq=number).where(WriteMark.writer == writer).execute(db)
    if not updated:
        WriteMark.insert(writer=writer, seq=number).execute(db)


def _marked(manager: DatabaseManager, writer: str) -> int:
    """The last batch ``writer`` committed (0 for none)."""
    from .models import WriteMark

    seq = WriteMark.select(WriteMark.seq).where(WriteMark.writer == writer).scalar(manager.database)
    return int(seq or 0)


def _driver_cause(error: BaseException) -> BaseException:
    """The driver exception under our translated errors (the manager retries only those)."""
    while isinstance(error, DatabaseError) and error.__cause__ is not None:
        error = error.__cause__
    return error
