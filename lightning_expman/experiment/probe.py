"""What the runner learns from the trackers about the run it executes: :class:`_RunProbe` listens
to TRIAL_RUN events (whoever opens the run: the Lightning pipeline's logger or the runner)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..enums import Level, RunStatus
from ..tracking.base import Tracker, TrackerManager


class _RunProbe(Tracker):
    """Listens to TRIAL_RUN events so the runner knows what was recorded, whoever opened the run.

    The Lightning pipeline's logger opens and ends TRIAL_RUN itself; a custom pipeline's run is
    opened by the runner; a run whose model fails to build never opens one. The probe tells them
    apart and captures the recorded status, error and database id.
    """

    def __init__(self, manager: TrackerManager, on_open: Callable[[int | None], None] | None = None) -> None:
        self.manager = manager
        self.on_open = on_open  # workers tell the parent which row they are writing
        self.reset()

    def reset(self) -> None:
        self.opened = False
        self.ended = False
        self.status: RunStatus | None = None
        self.error: str | None = None
        self.run_id: int | None = None

    def on_create(self, level: Level, **kwargs: Any) -> None:
        if level is Level.TRIAL_RUN:
            self.reset()
            self.opened = True
            self.run_id = _db_run_id(self.manager)
            if self.on_open is not None:
                self.on_open(self.run_id)

    def on_end(self, level: Level, **kwargs: Any) -> None:
        if level is Level.TRIAL_RUN and self.opened:
            self.ended = True
            self.status = RunStatus.parse(kwargs.get("status") or RunStatus.COMPLETED)
            self.error = kwargs.get("error")


def _db_tracker(manager: TrackerManager) -> Any:
    from ..tracking.db import DBTracker

    return manager.get(DBTracker)


def _db_run_id(manager: TrackerManager) -> int | None:
    tracker = _db_tracker(manager)
    return getattr(tracker, "trial_run_id", None)
