"""Live progress of ``expman run``: what each run is doing, and the grid as a whole.

A :class:`ProgressTracker` sits among the runner's trackers and turns a run's level events into
:class:`EpochProgress` events (epoch, its validation metrics, training speed). A display shows
them:

* on a terminal, :class:`TerminalDisplay` (tqdm, which Lightning installs): one line for the grid
  (done/total, running, failed, ETA) and one per running run (epoch, metrics, speed), with each
  finished run's line printed above them;
* otherwise (a log file, CI), :class:`LineDisplay`: one plain line per finished run;
* ``--quiet``: nothing but the summary; ``--json``: one JSON object per finished run.

Example:
    >>> display = make_display(sys.stdout, total=8, name="digits")
    >>> experiment.run(on_result=display.finished, on_progress=display.progress)
    >>> display.close()
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import IO, Any

from .enums import Level, RunStatus
from .tracking.base import Tracker

__all__ = [
    "EpochProgress",
    "JsonDisplay",
    "LineDisplay",
    "ProgressTracker",
    "QuietDisplay",
    "TerminalDisplay",
    "make_display",
]


@dataclass(frozen=True)
class EpochProgress:
    """One finished epoch of a run: ``index`` is the run's position in the grid."""

    index: int
    epoch: int
    metrics: dict[str, float] = field(default_factory=dict)
    steps_per_s: float | None = None


class ProgressTracker(Tracker):
    """Emits an :class:`EpochProgress` when an epoch ends (set :attr:`index` before each run).

    It only counts steps and keeps the epoch's scalar values: nothing is stored, nothing waits.
    """

    def __init__(self, emit: Callable[[EpochProgress], None]) -> None:
        self.emit = emit
        self.index: int | None = None
        self._epoch: int | None = None
        self._metrics: dict[str, float] = {}
        self._first: int | None = None  # global steps seen in this epoch (logged every n steps)
        self._last: int | None = None
        self._since = 0.0

    def on_create(self, level: Level, **kwargs: Any) -> None:
        if Level(level) is Level.EPOCH:
            epoch = kwargs.get("epoch_idx", kwargs.get("epoch"))
            self._epoch = int(epoch) if epoch is not None else (self._epoch or -1) + 1
            # The previous epoch's last step starts this one: the rate counts every step, not
            # only the logged ones (log_every_n_steps).
            self._first = self._last
            self._metrics, self._since = {}, time.perf_counter()

    def on_end(self, level: Level, **kwargs: Any) -> None:
        if Level(level) is Level.EPOCH and self._epoch is not None and self.index is not None:
            seconds = time.perf_counter() - self._since
            steps = (self._last - self._first) if self._first is not None and self._last is not None else 0
            rate = steps / seconds if steps > 0 and seconds > 0 else None
            self.emit(EpochProgress(self.index, self._epoch, dict(self._metrics), rate))

    def track(self, metric: str, value: float | None, step: int | None = None, **kwargs: Any) -> None:
        self.track_dict({metric: value}, step, **kwargs)

    def track_dict(self, metrics: Mapping[str, float | None], step: int | None = None, **kwargs: Any) -> None:
        level = kwargs.get("level")
        if level is Level.BATCH or (level is None and step is not None):
            if step is not None:
                self._first = step if self._first is None else self._first
                self._last = step
        elif level in (Level.EPOCH, None) and self._epoch is not None:
            self._metrics.update({k: v for k, v in metrics.items() if isinstance(v, int | float)})


def _shown(metrics: Mapping[str, float], limit: int = 3) -> str:
    """Validation metrics first (what early stopping and checkpoints usually watch)."""
    names = sorted(metrics, key=lambda n: (not n.startswith("val"), n))[:limit]
    return " ".join(f"{n}={metrics[n]:.4g}" for n in names)


class QuietDisplay:
    """``--quiet``: nothing while running (the summary still comes)."""

    def started(self, result: Any) -> None: ...

    def progress(self, kind: str, payload: Any) -> None:
        if kind == "start":
            self.started(payload)
        elif kind == "epoch":
            self.epoch(payload)

    def epoch(self, event: EpochProgress) -> None: ...

    def finished(self, result: Any) -> None: ...

    def close(self) -> None: ...


class LineDisplay(QuietDisplay):
    """Not a terminal: one plain line per finished run (``[3/8] trial run 1/2 seed 43 COMPLETED 4.2s``)."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream

    def finished(self, result: Any) -> None:
        print(result.progress_line(), file=self.stream, flush=True)


class JsonDisplay(LineDisplay):
    """``--json``: one JSON object per finished run, on one line."""

    def finished(self, result: Any) -> None:
        record = asdict(result)
        for key in ("status", "previous", "elsewhere"):
            record[key] = record[key].value if record[key] is not None else None
        print(json.dumps(record, sort_keys=True, default=str), file=self.stream, flush=True)


class TerminalDisplay(QuietDisplay):
    """A terminal: the grid's bar and one line per running run, redrawn in place (tqdm)."""

    def __init__(self, stream: IO[str], total: int, name: str) -> None:
        from tqdm import tqdm

        self._tqdm = tqdm
        self.stream = stream
        # A terminal that reports no size (some CI ptys) would get 0-wide, 0-high bars (tqdm hides
        # them): then $COLUMNS/$LINES, or 80x24.
        size = shutil.get_terminal_size()
        self.width = (
            {"dynamic_ncols": True} if _width(stream) else {"ncols": size.columns, "nrows": size.lines}
        )
        self.bar = tqdm(total=total, desc=name, unit="run", file=stream, position=0, leave=True, **self.width)
        self.lines: dict[int, Any] = {}  # grid index -> its status line
        self.slots: dict[int, int] = {}  # grid index -> the line's row under the bar
        self.running: dict[int, str] = {}  # grid index -> "trial run r/R"
        self.failed = 0

    def _refresh(self) -> None:
        parts = [f"{len(self.running)} running"] + ([f"{self.failed} failed"] if self.failed else [])
        self.bar.set_postfix_str(", ".join(parts), refresh=True)

    def started(self, result: Any) -> None:
        label = f"{result.trial} run {result.repeat_idx}/{result.repeat}"
        self.running[result.index] = label
        slot = min(set(range(1, len(self.slots) + 2)) - set(self.slots.values()))
        self.slots[result.index] = slot
        line = self._tqdm(
            total=0, bar_format="{desc}", file=self.stream, position=slot, leave=False, **self.width
        )
        line.set_description_str(f"  {label}: starting")
        self.lines[result.index] = line
        self._refresh()

    def epoch(self, event: EpochProgress) -> None:
        line = self.lines.get(event.index)
        if line is None:
            return
        speed = f" ({event.steps_per_s:.1f} steps/s)" if event.steps_per_s else ""
        line.set_description_str(
            f"  {self.running[event.index]}: epoch {event.epoch} {_shown(event.metrics)}{speed}"
        )

    def finished(self, result: Any) -> None:
        line = self.lines.pop(result.index, None)
        self.running.pop(result.index, None)
        self.slots.pop(result.index, None)
        if line is not None:
            line.close()
        if result.status in (RunStatus.FAILED, RunStatus.LOST):
            self.failed += 1
        self.bar.write(result.progress_line(), file=self.stream)
        self.bar.update(1)
        self._refresh()

    def close(self) -> None:
        for line in self.lines.values():
            line.close()
        self.bar.close()


def _width(stream: IO[str]) -> int:
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (OSError, ValueError, AttributeError):
        return 0


def make_display(
    stream: IO[str] | None = None, *, total: int, name: str, quiet: bool = False, json_lines: bool = False
) -> QuietDisplay:
    """The display for ``stream`` (default stdout): JSON, quiet, a terminal's, or plain lines."""
    stream = stream or sys.stdout
    if json_lines:
        return JsonDisplay(stream)
    if quiet:
        return QuietDisplay()
    if stream.isatty():
        return TerminalDisplay(stream, total, name)
    return LineDisplay(stream)
