"""Spawned fits (``strategy="ddp_spawn"``, ``ddp_fork``, ``ddp_notebook``): the run handed back.

With a multiprocessing launcher Lightning runs ``fit`` / ``test`` in worker processes that get a
pickled copy of the Trainer (and so of the logger) and exits them when the stage ends; it sends
back only the trainer state, the best checkpoint path and ``callback_metrics``
(``_MultiProcessingLauncher._collect_rank_zero_results`` / ``update_main_process_results``), and
a logger has no part in that exchange. So global rank zero of the workers writes the run's
identity to ``<log_dir>/.expman-run.json`` each time it changes (opened, settled, ended), and

* the main process's logger reads it lazily: ``logger.run_id`` / ``logger.status`` after a
  spawned ``fit`` are the run the workers recorded;
* a later ``trainer.test()`` / ``validate()`` with the same logger (spawned or not) reattaches to that run
  (its RESULTS land on it, as without spawning) while the run awaits its test: until the next fit
  of the logger or ``logger.close()``. A failed or interrupted fit ended its run: a later test
  opens its own, as it does without spawning. (Joining needs the Trainer's hooks: with
  ``attach_hooks=False`` a spawned test is a run of its own.)

The main process fixes the log folder (``version``) when it pickles the logger for the workers,
so every stage of one logger uses the same folder. The file names the logger instance (a token
made in ``__init__``), so two loggers sharing a folder never adopt each other's runs. Only the
database tracker reattaches; other trackers (MLflow...) record the test as a run of their own.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from typing import Any

from ..enums import RunStatus

__all__ = ["HANDOFF_FILE", "SpawnHandoff", "in_spawned_worker", "read_handoff", "write_handoff"]

log = logging.getLogger(__name__)

HANDOFF_FILE = ".expman-run.json"


def in_spawned_worker(trainer: Any) -> bool:
    """Whether ``trainer`` runs its stages in processes its launcher started (spawn, fork...)."""
    if trainer is None:
        return False
    from lightning.pytorch.strategies.launchers.multiprocessing import _MultiProcessingLauncher

    return isinstance(getattr(trainer.strategy, "launcher", None), _MultiProcessingLauncher)


def write_handoff(log_dir: str, state: dict[str, Any]) -> None:
    """Write ``state`` (token, run id, status, lease owner, open...) atomically into ``log_dir``."""
    os.makedirs(log_dir, exist_ok=True)
    path = os.path.join(log_dir, HANDOFF_FILE)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump({**state, "at": time.time()}, f)
    os.replace(tmp, path)


def read_handoff(log_dir: str, token: str) -> dict[str, Any] | None:
    """The state a worker wrote for the logger ``token``, or ``None`` (none, another logger's, unreadable)."""
    try:
        with open(os.path.join(log_dir, HANDOFF_FILE), encoding="utf-8") as f:
            state = json.load(f)
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) and state.get("token") == token else None


class SpawnHandoff:
    """Mixin of ExpmanLogger: ``run_id`` / ``status``, published by spawned workers, adopted by
    the process that launched them."""

    log_dir: str
    _token: str
    _version: int | str | None
    _db_tracker: Callable[[], Any]
    _run_open: bool
    _error: str | None
    _stop_epoch: int | None
    _handoff: bool  # this process is a spawned worker's rank zero: publish
    _joinable: bool
    _owner: str | None
    _state_at: float  # when run_id/status last changed in this process
    _run_id: int | None
    _status: RunStatus | None

    @property
    def run_id(self) -> int | None:
        """The database id of the last trial run (``None`` before a fit / without a DB tracker)."""
        self._adopt_handoff()
        return self._run_id

    @run_id.setter
    def run_id(self, value: int | None) -> None:
        self._run_id = value

    @property
    def status(self) -> RunStatus | None:
        """The :class:`RunStatus` of the last trial run."""
        self._adopt_handoff()
        return self._status

    @status.setter
    def status(self, value: RunStatus | None) -> None:
        self._status = value

    def _adopt_handoff(self) -> None:
        """In the process that launched spawned workers: take the run they recorded, when it is
        newer than what this process knows itself."""
        if self._run_open or self._version is None:
            return  # a run of this process, or no folder fixed yet (nothing was spawned)
        state = read_handoff(self.log_dir, self._token)
        if state is not None and float(state.get("at") or 0) > self._state_at:
            self._run_id = state.get("run_id")
            self._status = RunStatus.parse(state["status"]) if state.get("status") else None

    def _publish(self) -> None:
        """Spawned worker, rank zero: write the run's identity for the main process (see spawn.py).

        ``open``: a later spawned test may join the run -- from the moment its fit settled
        successfully (ending at the worker's exit does not change that) until a failure, the next
        fit, or ``close()`` in the main process.
        """
        self._state_at = time.time()
        if not self._handoff:
            return
        self._owner = getattr(self._db_tracker(), "_owner", None) or self._owner
        state = {
            "token": self._token,
            "run_id": self._run_id,
            "status": self._status.value if self._status is not None else None,
            "error": self._error,
            "stop_epoch": self._stop_epoch,
            "owner": self._owner,
            "open": self._joinable,
        }
        try:
            write_handoff(self.log_dir, state)
        except OSError as e:  # the main process then does not learn the run: never fail the fit
            log.warning("ExpmanLogger: cannot write the run handoff in %s: %s", self.log_dir, e)

    def _release_handoff(self) -> None:
        """``close()`` in the main process: a later spawned test no longer joins the handed-back run."""
        if self._version is None:
            return
        state = read_handoff(self.log_dir, self._token)
        if state is not None and state.get("open"):
            try:
                write_handoff(self.log_dir, {**state, "open": False})
            except OSError as e:
                log.warning("ExpmanLogger: cannot update the run handoff in %s: %s", self.log_dir, e)
