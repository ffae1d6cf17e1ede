"""The database ledger: what the database already holds about an experiment, read before a run
to plan resume (which (trial, repeat) to skip) and to refuse a changed config or a re-run."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..enums import RunStatus
from ..errors import ConfigError
from .plan import _masked

if TYPE_CHECKING:  # pragma: no cover
    from ..config import ExperimentSpec

__all__ = ["_Ledger"]


class _Ledger:
    """Reads what the database already holds about an experiment (for resume and refusals)."""

    def __init__(self, url: str | None, manager: Any) -> None:
        self.url = url
        self.manager = manager

    @classmethod
    def open(cls, url: str | None) -> _Ledger:
        if url is None:
            return cls(None, None)
        from ..db.connect import parse_url

        parsed = parse_url(url)
        if (
            parsed.backend == "sqlite"
            and parsed.database != ":memory:"
            and not Path(parsed.database).exists()
        ):
            return cls(url, None)  # nothing recorded yet; do not create the file just to look
        from ..db.manager import DatabaseManager

        return cls(url, DatabaseManager(url))

    def close(self) -> None:
        if self.manager is not None:
            self.manager.close()

    def plan(
        self, spec: ExperimentSpec, *, resume: bool, force: bool
    ) -> dict[tuple[str, int], tuple[RunStatus, int]]:
        """What is finished already: ``{(trial name, repeat_idx): (recorded status, run id)}``.

        Runs in progress elsewhere are not listed: claims decide who runs what (see ``claims.py``).

        Raises:
            ConfigError: changed config on resume without force; existing runs without resume/force.
        """
        if self.manager is None:
            return {}
        from ..db import models as m

        with self.manager.database.bind_ctx(m.ALL_MODELS):
            return self._plan(m, spec, resume=resume, force=force)

    def _plan(
        self, m: Any, spec: ExperimentSpec, *, resume: bool, force: bool
    ) -> dict[tuple[str, int], tuple[RunStatus, int]]:
        experiment = (
            m.Experiment.select().where(m.Experiment.title == spec.name).order_by(m.Experiment.id).first()
        )
        if experiment is None:
            return {}
        runs = list(
            m.TrialRun.select(m.TrialRun, m.Trial)
            .join(m.Trial)
            .where(m.Trial.experiment == experiment.id)
            .order_by(m.TrialRun.id)
        )
        where = f"experiment {spec.name!r} in {_masked(self.url)}"
        if not resume:
            if runs and not force:
                counts: dict[str, int] = {}
                for run in runs:
                    counts[run.status] = counts.get(run.status, 0) + 1
                detail = ", ".join(f"{n} {s.lower()}" for s, n in sorted(counts.items()))
                raise ConfigError(
                    f"{where} already has {len(runs)} recorded runs ({detail}); drop --no-resume to run only "
                    "what is unfinished, add --force to record the whole grid again, "
                    "or use another experiment name"
                )
            return {}
        if experiment.config_hash and experiment.config_hash != spec.config_hash:
            if not force:
                raise ConfigError(
                    f"{where}: the configuration changed since it was recorded (config_hash "
                    f"{experiment.config_hash[:12]} -> {spec.config_hash[:12]}); pass --force to resume "
                    "with the new configuration, or use another experiment name"
                )

            def store_new_config() -> None:
                m.Experiment.update(
                    config=spec.to_container(), config_hash=spec.config_hash, update_time=m.utcnow()
                ).where(m.Experiment.id == experiment.id).execute()

            self.manager.run_in_transaction(store_new_config, what="storing the new experiment config")
        latest: dict[tuple[str, int], Any] = {}
        for run in runs:  # ordered by id: the last one wins
            latest[(run.trial.name, run.repeat_idx)] = run
        skip: dict[tuple[str, int], tuple[RunStatus, int]] = {}
        for key, run in latest.items():
            try:
                status = RunStatus.parse(run.status)
            except ValueError:
                continue
            if status.finished:
                skip[key] = (status, run.id)
        return skip
