"""What :meth:`~lightning_expman.experiment.Experiment.run` reports: one :class:`RunResult` per
(trial, repeat) and the :class:`ExperimentSummary` with its table and exit code."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..enums import RunStatus

__all__ = ["ExperimentSummary", "RunResult"]


@dataclass
class RunResult:
    """The outcome of one (trial, repeat) of the grid.

    Attributes:
        index: 1-based position in the grid (trial-major order).
        total: number of runs in the grid.
        trial: trial name.
        repeat_idx: 1..repeat.
        repeat: the trial's repeat count.
        seed: the run's seed.
        params: the trial's grid values (``{"model.init_args.lr": 0.1}``).
        status: the recorded status; SKIPPED when resume skipped it; ``None`` when it was not run
            (fail-fast or Ctrl-C stopped the grid first).
        elapsed: seconds the run took (0 when skipped / not run).
        error: the error text of a FAILED/ABORTED run.
        run_id: the database id of the trial_run row, when a db tracker recorded it.
        previous: for SKIPPED runs, the status recorded before.
        elsewhere: for a run another process claimed while this one worked (``status`` is
            ``None``), its status as recorded after this process's work.
    """

    index: int
    total: int
    trial: str
    repeat_idx: int
    repeat: int
    seed: int
    params: dict[str, Any] = field(default_factory=dict)
    status: RunStatus | None = None
    elapsed: float = 0.0
    error: str | None = None
    run_id: int | None = None
    previous: RunStatus | None = None
    elsewhere: RunStatus | None = None

    @property
    def status_text(self) -> str:
        if self.status is None and self.elsewhere is not None:
            return f"{self.elsewhere.value} elsewhere"
        if self.status is None:
            return "NOT RUN"
        if self.status is RunStatus.SKIPPED and self.previous is RunStatus.RUNNING:
            return "SKIPPED (RUNNING elsewhere)"
        if self.status is RunStatus.SKIPPED and self.previous is not None:
            return f"SKIPPED ({self.previous.value} before)"
        return self.status.value

    def progress_line(self) -> str:
        """``[3/8] lr=0.1-hidden=32 run 1/2 seed 43 COMPLETED 4.2s``."""
        line = (
            f"[{self.index}/{self.total}] {self.trial} run {self.repeat_idx}/{self.repeat} "
            f"seed {self.seed} {self.status_text}"
        )
        if self.status not in (None, RunStatus.SKIPPED):
            line += f" {self.elapsed:.1f}s"
        if self.error and self.status in (RunStatus.FAILED, RunStatus.ABORTED, RunStatus.LOST):
            line += f": {_one_line(self.error)}"
        return line


@dataclass
class ExperimentSummary:
    """What :meth:`Experiment.run` did.

    Attributes:
        experiment: the experiment's name.
        results: one :class:`RunResult` per (trial, repeat), in grid order.
        workdir: the experiment's workspace directory.
        db_url: the database the runs were recorded in (password masked), if any.
        interrupted: Ctrl-C stopped the grid.
        elapsed: wall time of the whole run in seconds.
    """

    experiment: str
    results: list[RunResult]
    workdir: str = ""
    db_url: str | None = None
    interrupted: bool = False
    elapsed: float = 0.0

    def count(self, status: RunStatus | None) -> int:
        return sum(1 for r in self.results if r.status is status)

    @property
    def failed(self) -> list[RunResult]:
        return [r for r in self.results if r.status is RunStatus.FAILED]

    @property
    def own(self) -> list[RunResult]:
        """The runs this process ran or skipped (not those other processes claimed)."""
        return [r for r in self.results if r.elsewhere is None]

    @property
    def elsewhere(self) -> dict[RunStatus, int]:
        """Runs other processes claimed while this one worked, counted by their status."""
        counts: dict[RunStatus, int] = {}
        for r in self.results:
            if r.elsewhere is not None:
                counts[r.elsewhere] = counts.get(r.elsewhere, 0) + 1
        return counts

    @property
    def ok(self) -> bool:
        """Every run of the grid completed or stopped early (here or elsewhere, now or before)."""
        return not self.interrupted and all(_done(r) for r in self.results)

    @property
    def exit_code(self) -> int:
        """The ``expman run`` exit code: 0 the whole grid completed or stopped early; 1 a run failed,
        was lost or not run (here or elsewhere); 3 unfinished only because runs are still in
        progress in other processes; 130 interrupted."""
        if self.interrupted:
            return 130
        unfinished = [r for r in self.results if not _done(r)]
        if not unfinished:
            return 0
        return 3 if all(r.elsewhere is RunStatus.RUNNING for r in unfinished) else 1

    def counts_line(self) -> str:
        parts = [
            f"{self.count(s)} {s.value.lower()}"
            for s in (
                RunStatus.COMPLETED,
                RunStatus.STOPPED,
                RunStatus.PRUNED,
                RunStatus.FAILED,
                RunStatus.ABORTED,
                RunStatus.LOST,
                RunStatus.SKIPPED,
            )
            if self.count(s)
        ]
        not_run = sum(1 for r in self.own if r.status is None)
        if not_run:
            parts.append(f"{not_run} not run")
        elsewhere = self.elsewhere
        if elsewhere:
            detail = ", ".join(f"{n} {s.value.lower()}" for s, n in sorted(elsewhere.items()))
            parts.append(f"{sum(elsewhere.values())} by other processes ({detail})")
        return ", ".join(parts) or "no runs"

    def totals_line(self) -> str:
        """``digits: 8 runs: 4 completed, 4 stopped in 30.0s``."""
        return f"{self.experiment}: {len(self.results)} runs: {self.counts_line()} in {self.elapsed:.1f}s" + (
            " (interrupted)" if self.interrupted else ""
        )

    def table(self, format: str = "table") -> str:
        """One row per run (``#``, trial, run, seed, status, time, run id) drawn by the package's
        one renderer (:func:`~lightning_expman.query.render.render`); with ``format="table"``
        (what ``expman run`` prints) followed by the totals, the workspace and the database.

        Args:
            format: ``"table"`` (aligned, fit to the terminal), ``"md"``, ``"csv"`` or ``"json"``.
        """
        from ..query.render import render

        header = ("#", "trial", "run", "seed", "status", "time", "run id")

        def seconds(r: RunResult) -> Any:  # "4.2s" on a console; a number (or null) in data
            ran = r.status not in (None, RunStatus.SKIPPED)
            if format != "table":
                return r.elapsed if ran else None
            return f"{r.elapsed:.1f}s" if ran else "-"

        rows = [
            (r.index, r.trial, f"{r.repeat_idx}/{r.repeat}", r.seed, r.status_text, seconds(r), r.run_id)
            for r in self.own
        ]
        text = render(header, rows, format, right=(5,), keep=(4,))  # a status is read in full
        if format != "table":
            return text
        lines = [text, self.totals_line()]
        if self.workdir:
            lines.append(f"workspace: {self.workdir}")
        if self.db_url:
            lines.append(f"database:  {self.db_url}")
        return "\n".join(lines)


def _done(result: RunResult) -> bool:
    finished = (RunStatus.COMPLETED, RunStatus.STOPPED, RunStatus.PRUNED)
    return result.status in (*finished, RunStatus.SKIPPED) or result.elsewhere in finished


def _one_line(text: str, limit: int = 200) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."
