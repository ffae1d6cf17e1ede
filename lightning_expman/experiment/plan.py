"""The grid as jobs: one small picklable job per (trial, repeat), the result it starts from,
and what the runner reads off the spec (plain configs, the database URL)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..config._util import to_plain
from .results import RunResult

if TYPE_CHECKING:  # pragma: no cover
    from ..config import ExperimentSpec, TrialSpec


@dataclass(frozen=True)
class _Job:
    """One (trial, repeat) to execute; small and picklable (sent to workers)."""

    index: int
    trial_pos: int
    repeat_idx: int
    seed: int


def plan_jobs(spec: ExperimentSpec) -> list[_Job]:
    """Every (trial, repeat) of the grid in trial-major order."""
    return [
        _Job(index=i, trial_pos=run.trial.index, repeat_idx=run.repeat_idx, seed=run.seed)
        for i, run in enumerate(spec.runs(), 1)
    ]


def new_result(spec: ExperimentSpec, job: _Job, total: int) -> RunResult:
    """The result of ``job`` before it runs (status ``None``: not run)."""
    trial = spec.trials[job.trial_pos]
    return RunResult(
        index=job.index,
        total=total,
        trial=trial.name,
        repeat_idx=job.repeat_idx,
        repeat=trial.repeat,
        seed=job.seed,
        params=dict(to_plain(trial.params) or {}),
    )


def spec_db_url(spec: ExperimentSpec) -> str | None:
    """The URL of the experiment's db tracker (``None`` when env.yaml configures none)."""
    for tracker in to_plain(spec.env.trackers) or []:
        if isinstance(tracker, dict) and str(tracker.get("type", "")).lower() == "db":
            return tracker.get("url") or f"sqlite:///{spec.workspace / 'expman.db'}"
    return None


def _container(cfg: Any) -> Any:
    """Plain, resolved, secrets masked: what is stored in the database."""
    from ..masking import mask_secrets

    return mask_secrets(to_plain(cfg))


def _trial_config(trial: TrialSpec) -> dict[str, Any]:
    """The trial's settings as stored: plain, resolved, secrets masked.

    From the trial's plain data: building its ``DictConfig`` only to turn it back into a dict
    cost a few milliseconds per trial, paid by every searched trial.
    """
    return trial.to_container()["settings"]


def _masked(url: str | None) -> str | None:
    if url is None:
        return None
    from ..masking import mask_url

    return mask_url(url)
