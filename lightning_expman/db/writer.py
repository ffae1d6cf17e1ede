"""Batched background writes: the training thread appends, one daemon thread writes.

:class:`BackgroundWriter` keeps a bounded, ordered buffer of pending write operations and
drains it from a single daemon thread in batched transactions:

* on a short timer (``flush_interval``, default 1 s),
* soon after :meth:`~BackgroundWriter.request_flush` (an epoch ended), at most every
  ``request_spacing`` seconds (default 0.25 s: a fit whose epochs take milliseconds writes a few
  transactions a second, not one per epoch),
* early, when the buffer is half full,
* on :meth:`~BackgroundWriter.flush` (blocks until everything submitted before it is durable),
* on :meth:`~BackgroundWriter.close`, and at interpreter exit (``atexit``), so nothing buffered
  is lost when the training loop ends normally, raises, or is interrupted with Ctrl-C.

The submit path runs on the training thread, so it only takes a lock and appends one tuple:
no database work, no per-value objects. What a batch becomes in the database (step rows expanded
on the writer thread, one transaction, exactly once) is :mod:`lightning_expman.db.batch`.

Memory is bounded: once ``max_pending`` values wait, producers block until the writer has
taken the buffer (back-pressure; nothing is ever dropped). A failure on the writer thread is
logged and re-raised as :class:`~lightning_expman.errors.DatabaseError` (chained) from the
next :meth:`~BackgroundWriter.flush` or :meth:`~BackgroundWriter.close` on the caller's thread.

Example:
    >>> from lightning_expman.db import DatabaseManager
    >>> from lightning_expman.db.writer import BackgroundWriter
    >>> db = DatabaseManager("sqlite:///runs.db")
    >>> writer = BackgroundWriter(db, flush_interval=1.0)
    >>> writer.add_steps(run_id, 10, 0, {"train_loss": 0.52, "lr": 0.001})   # ~microseconds
    >>> writer.submit(db.record_epoch_metrics, run_id, 0, [("val_loss", 0.48, None)])
    >>> writer.flush()    # durable from here on
    >>> writer.close()
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ..errors import ConnectionError, DatabaseError
from .batch import CALL, STEP, STEPS, split_batch, write_batch

if TYPE_CHECKING:
    from .manager import DatabaseManager

__all__ = ["BackgroundWriter"]

log = logging.getLogger(__name__)

_LIVE: weakref.WeakSet[BackgroundWriter] = weakref.WeakSet()

_DOWN_RETRY_FOR = 2.0  # seconds a batch retries once an earlier batch was given up


class BackgroundWriter:
    """Buffer write operations and apply them from one daemon thread in batched transactions.

    Args:
        manager: the :class:`~lightning_expman.db.manager.DatabaseManager` to write through
            (its connection is per thread, so the writer thread gets its own).
        flush_interval: seconds between timer-driven drains.
        max_pending: buffered values (step values, or operations) at which producers block
            until the writer catches up.
        name: the thread's name.
        request_spacing: least seconds between a write and the next one a
            :meth:`request_flush` starts (a :meth:`flush` never waits for it).

    Operations are applied in submission order, except that step rows, which depend on
    nothing but their (already created) trial run, are written first in each batch.

    Example:
        >>> writer = BackgroundWriter(db, flush_interval=0.5, max_pending=10_000)
        >>> for step in range(1000):
        ...     writer.add_steps(run_id, step, 0, {"loss": 1 / (step + 1)})
        >>> writer.close()   # flushes, stops the thread; re-raises a writer-side failure
    """

    def __init__(
        self,
        manager: DatabaseManager,
        *,
        flush_interval: float = 1.0,
        max_pending: int = 100_000,
        name: str = "expman-writer",
        request_spacing: float = 0.25,
    ) -> None:
        if flush_interval <= 0:
            raise ValueError(f"flush_interval must be > 0 seconds, got {flush_interval!r}")
        if request_spacing < 0:
            raise ValueError(f"request_spacing must be >= 0 seconds, got {request_spacing!r}")
        if max_pending < 1:
            raise ValueError(f"max_pending must be >= 1, got {max_pending!r}")
        self.manager = manager
        self.flush_interval = float(flush_interval)
        self.max_pending = int(max_pending)
        self.name = name
        self.request_spacing = float(request_spacing)
        self._high = max(1, self.max_pending // 2)  # nudge the writer from here on
        self._seq = 0  # operations submitted
        self._nudged = False
        self._new_process_state()
        self._error: BaseException | None = None
        self._lost = 0
        self._token = uuid.uuid4().hex  # names this writer's row in write_mark
        self._batches = 0
        self._down = False  # the last batch was given up: the server stayed unreachable
        _LIVE.add(self)

    # ------------------------------------------------------------------ submit (training thread)

    def add_steps(
        self, trial_run_id: int, step: int, epoch: int | None, metrics: Mapping[str, float | None]
    ) -> None:
        """Buffer one step-series point per entry of ``metrics`` (the hot path).

        ``metrics`` is kept by reference until written: pass a mapping you do not mutate later.
        """
        self._append((STEPS, trial_run_id, step, epoch, metrics), len(metrics))

    def add_step(
        self, trial_run_id: int, step: int, epoch: int | None, name: str, value: float | None
    ) -> None:
        """Buffer a single step-series point."""
        self._append((STEP, trial_run_id, step, epoch, name, value), 1)

    def submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Buffer ``fn(*args, **kwargs)``, to be called on the writer thread in order.

        Example:
            >>> writer.submit(db.ensure_epoch, run_id, 3)
        """
        self._append((CALL, fn, args, kwargs), 1)

    def _append(self, op: tuple[Any, ...], values: int) -> None:
        with self._lock:
            if self._pending >= self._high:
                self._make_room()
            self._ops.append(op)
            self._pending += values
            self._seq += 1
        if self._thread is None:
            self._start()

    def start(self) -> None:
        """Start the writer thread now (it otherwise starts on the first submission), so that
        its flush timer runs from the start of a run."""
        if self._thread is None or not self._thread.is_alive():
            self._start()

    def _make_room(self) -> None:
        """Called with the lock held once the buffer is half full: wake the writer, then
        block while it is full (back-pressure)."""
        if not self._nudged:
            self._nudged = True
            self._wake.notify()
        while self._pending >= self.max_pending:
            thread = self._thread
            if thread is None or not thread.is_alive():
                # Nobody will drain: write here rather than deadlock (e.g. after fork).
                self._unlocked(self._restart)
                continue
            self._wake.notify()
            self._not_full.wait(0.5)

    @property
    def pending(self) -> int:
        """Buffered values not yet taken by the writer."""
        return self._pending

    # ------------------------------------------------------------------ flush / close (caller)

    def flush(self, timeout: float | None = None) -> None:
        """Block until everything submitted before this call is written.

        Args:
            timeout: give up waiting after this many seconds (``None``: wait as long as the
                writer makes progress).

        Raises:
            DatabaseError: a write failed on the writer thread since the last flush (chained
                to the driver error); the failed batch is reported, later batches still ran.
            TimeoutError: ``timeout`` elapsed first.
        """
        if self._in_writer_thread():
            return
        self._check_fork()
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            target = self._seq
            if target > self._done_seq:
                if self._thread is None or not self._thread.is_alive():
                    self._unlocked(self._restart)
                self._flush_seq = max(self._flush_seq, target)
                self._wake.notify()
            while self._done_seq < target:
                thread = self._thread
                if thread is None or not thread.is_alive():
                    # The thread is gone (interpreter shutdown, fork): drain on this thread.
                    self._unlocked(self._drain_here)
                    continue
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise TimeoutError(
                        f"background writer: {target - self._done_seq} operations still pending "
                        f"after {timeout} s"
                    )
                self._drained.wait(0.5 if remaining is None else min(remaining, 0.5))
        self._raise_error()

    def request_flush(self) -> None:
        """Ask the writer thread to write everything submitted so far now, without waiting for it.

        Used at epoch end: the rows reach the database while training goes on, within
        ``request_spacing`` seconds of the previous write (requests meanwhile share one
        transaction); :meth:`flush` is for when the caller must know they are durable.

        Raises:
            DatabaseError: a write failed on the writer thread since the last flush.
        """
        if self._in_writer_thread():
            return
        self._check_fork()
        with self._lock:
            if self._seq > self._done_seq:
                if self._thread is None or not self._thread.is_alive():
                    self._unlocked(self.flush)  # no thread to hand the work to: write it here
                    return
                self._requested = True
                self._wake.notify()
        self._raise_error()

    def close(self, timeout: float | None = None) -> None:
        """Flush, stop the writer thread and re-raise a writer-side failure.

        The writer can be used again afterwards: the next submission starts a new thread.
        """
        if self._in_writer_thread():
            return
        try:
            self.flush(timeout)
        finally:
            with self._lock:
                self._stopping = True
                thread = self._thread
                self._wake.notify()
            if thread is not None and thread is not threading.current_thread():
                thread.join(timeout if timeout is not None else 30.0)
            with self._lock:
                if self._thread is thread:
                    self._thread = None
                self._stopping = False
            if self._ops:  # submitted concurrently with close: write them here
                self._drain_here()
        self._raise_error()

    # ------------------------------------------------------------------ writer thread

    def _unlocked(self, fn: Callable[[], Any]) -> None:
        """Run ``fn`` with the lock (held by the caller) released meanwhile."""
        self._lock.release()
        try:
            fn()
        finally:
            self._lock.acquire()

    def _in_writer_thread(self) -> bool:
        return self._thread is not None and threading.current_thread() is self._thread

    def _check_fork(self) -> None:
        if self._pid != os.getpid():
            self._new_process_state()

    def _start(self) -> None:
        with self._lock:
            if self._pid != os.getpid():
                self._unlocked(self._new_process_state)
            if self._thread is not None and self._thread.is_alive():
                return
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            try:
                self._thread.start()
            except RuntimeError:  # interpreter shutting down: no new threads; flush drains here
                self._thread = None

    def _restart(self) -> None:
        with self._lock:
            self._thread = None
        self._start()
        if self._thread is None:
            self._drain_here()

    def _new_process_state(self) -> None:
        """Locks, buffer and thread: set at creation, and again in a forked child, which inherits
        the parent's buffer (the parent writes it) and a copy of a thread that does not run here."""
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)  # writer waits: work or timer
        self._not_full = threading.Condition(self._lock)  # producers wait: back-pressure
        self._drained = threading.Condition(self._lock)  # flush() waits: done_seq advanced
        self._ops: list[tuple[Any, ...]] = []
        self._pending = 0
        # Operations durable (or failed and reported); flush() asks the writer to reach _flush_seq.
        self._done_seq = self._flush_seq = self._seq
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._requested = False  # request_flush() asked for a write (spaced, see _due)
        self._last_write = float("-inf")  # monotonic time the last batch was taken
        self._pid = os.getpid()

    def _take(self) -> tuple[list[tuple[Any, ...]], int]:
        """With the lock held: take the whole buffer and let blocked producers go on."""
        batch, self._ops = self._ops, []
        if self._pending >= self._high:
            self._not_full.notify_all()
        self._pending = 0
        self._nudged = self._requested = False
        self._last_write = time.monotonic()
        return batch, self._seq

    def _due(self, next_tick: float) -> float:
        """With the lock held: when the writer must take the buffer (timer, or a spaced request)."""
        if self._requested and self._seq > self._done_seq:
            return min(next_tick, self._last_write + self.request_spacing)
        return next_tick

    def _run(self) -> None:
        next_tick = time.monotonic() + self.flush_interval
        while True:
            with self._lock:
                while (
                    not self._stopping
                    and self._flush_seq <= self._done_seq
                    and not self._nudged
                    and time.monotonic() < self._due(next_tick)
                ):
                    self._wake.wait(max(0.0, self._due(next_tick) - time.monotonic()))
                batch, seq = self._take()
                stopping = self._stopping
            if batch:
                self._write(batch)
            with self._lock:
                self._done_seq = seq
                self._drained.notify_all()
            now = time.monotonic()
            if now >= next_tick:
                next_tick = now + self.flush_interval
            if stopping:
                with self._lock:
                    if self._ops:
                        continue
                self.manager.close_thread_connection()
                return

    def _drain_here(self) -> None:
        """Write the buffer on the calling thread (no writer thread available)."""
        with self._lock:
            batch, seq = self._take()
        if batch:
            self._write(batch)
        with self._lock:
            self._done_seq = max(self._done_seq, seq)
            self._drained.notify_all()

    def _write(self, batch: list[tuple[Any, ...]]) -> None:
        """Apply a batch in one transaction, exactly once (:mod:`lightning_expman.db.batch`)."""
        rows, calls = split_batch(batch)
        self._batches += 1
        try:
            failures = write_batch(
                self.manager,
                rows,
                calls,
                writer=self._token,
                number=self._batches,
                what=f"background write of {len(batch)} operations",
                # Once a batch was given up, the server is known to be down: the run is failing,
                # so later batches try briefly instead of holding its end up for the full bound.
                retry_for=_DOWN_RETRY_FOR if self._down else None,
            )
        except Exception as e:
            self._down = isinstance(e, ConnectionError)
            self._fail(e, len(rows) + len(calls))
            return
        self._down = False
        for what, error in failures:
            log.debug("background writer: writing %s failed", what, exc_info=error)
            self._fail(error, len(rows) if what.endswith("step values") else 1)

    def _fail(self, error: BaseException, values: int) -> None:
        log.error("background writer: giving up on %d value(s): %s", values, " ".join(str(error).split()))
        with self._lock:
            if self._error is None:
                self._error = error
                self._lost = 0
            self._lost += values

    def _raise_error(self) -> None:
        with self._lock:
            error, self._error = self._error, None
            lost, self._lost = self._lost, 0
        if error is not None:
            detail = " ".join(str(error).split())
            raise DatabaseError(
                f"background database write failed, {lost} value(s) not written: {detail}"
            ) from error


def _close_all() -> None:
    """atexit: write what every live writer still buffers (errors are logged, not raised)."""
    for writer in list(_LIVE):
        if writer._pid != os.getpid():
            continue
        try:
            writer.close(timeout=60.0)
        except Exception as e:
            log.error("background writer: flush at exit failed: %s", e)


def _reset_in_child() -> None:
    for writer in list(_LIVE):
        writer._new_process_state()


atexit.register(_close_all)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_in_child)
