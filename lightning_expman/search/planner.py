"""The planner of one searched trial: an Optuna study in the experiment's database, asked for
parameters, turned into TRIALs, told the mean over repeats.

* **Storage.** Optuna's :class:`~optuna.storages.RDBStorage` on the experiment's database URL
  (its tables beside ours), with Optuna's heartbeats: a trial whose process died is failed by
  Optuna's rule (no heartbeat within the grace period, on the database's clock; checked before
  every ask, by any process, in the query that counts the budget) and replaced.
* **Budget.** The study ends with exactly ``num_trials`` counted trials: COMPLETE, PRUNED,
  RUNNING and WAITING ones, and trials whose runs all failed (a broken configuration is not
  retried forever). Stale trials failed by the heartbeat check are not counted (they are
  replaced). Two processes asking for the last slot at once both get a trial number; the one
  with the higher number sees ``num_trials`` counted trials before it, marks its trial FAIL with
  the user attribute ``expman_over_budget`` and stops (Optuna cannot delete a trial).
* **Killed before the first heartbeat.** Optuna fails only trials that have beaten once; a
  trial's first heartbeat comes from the planner's heartbeat thread within one interval of
  ``ask`` (a trial shorter than that never beats), and a process killed before it leaves a
  RUNNING trial that never beats. The planner fails such a trial once it is older than the
  grace period (by ``datetime_start``, which Optuna stamps with the asking host's clock: hosts
  sharing a study should keep their clocks in step, as NTP does), so it is replaced like a
  stale one.
* **Names.** Optuna trial *n* of template trial ``mlp`` is the TRIAL ``mlp-t<n>`` (``mlp-t007``);
  its sampled values are the trial's ``params``, its settings the template's with them set.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import logging
import os
import threading
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ..config._util import copy_tree, parse_key, set_path
from ..config.interpolation import has_interpolation, resolve
from ..config.spec import TrialSpec
from ..errors import ConfigError
from .space import build_pruner, build_sampler, distributions, require_optuna

if TYPE_CHECKING:  # pragma: no cover
    import optuna

    from ..config import ExperimentSpec
    from ..config.search import SearchSpec

__all__ = ["Planner", "optuna_url", "study_name"]

log = logging.getLogger(__name__)

COUNTED_FAILURE = "expman_counted"
OVER_BUDGET = "expman_over_budget"
PRUNING_CALLBACK = "lightning_expman.search.pruning.PruningCallback"


def study_name(spec: ExperimentSpec, template: TrialSpec) -> str:
    """``<experiment>/<template trial>``: one study per searched trial (per grid value beside it)."""
    return f"{spec.name}/{template.name}"


def optuna_url(db_url: str) -> str:
    """Our database URL as SQLAlchemy's (the drivers peewee uses: pymysql, psycopg2)."""
    from ..db.connect import parse_url

    url = parse_url(db_url)
    if url.backend == "sqlite":
        return f"sqlite:///{url.database}"
    driver = {"mysql": "mysql+pymysql", "postgresql": "postgresql+psycopg2"}[url.backend]
    return driver + url.render(hide_password=False)[len(url.backend) :].split("?", 1)[0]


def _storage(db_url: str, stale_after: float) -> optuna.storages.RDBStorage:
    optuna = require_optuna()
    from ..db.connect import parse_url

    interval = max(1, int(min(10.0, stale_after / 4)))
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    parsed = parse_url(db_url)
    if parsed.backend == "sqlite":
        kwargs["connect_args"] = {"timeout": 60}  # our writers share the file
        if parsed.database != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(parsed.database)), exist_ok=True)
    last: Exception | None = None
    for _ in range(3):  # two processes creating Optuna's tables at once: the loser retries
        try:
            with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna's words
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(
                    optuna_url(db_url),
                    engine_kwargs=kwargs,
                    heartbeat_interval=interval,
                    grace_period=max(2 * interval, int(stale_after)),
                )
        except Exception as e:
            last = e
    raise ConfigError(f"cannot open Optuna's storage in the experiment database: {last}") from last


class Planner:
    """Asks, names and tells the trials of one searched template trial.

    Args:
        spec: the experiment.
        template: the searched trial (its settings are every sampled trial's starting point).
        search: its validated search block.
        db_url: the experiment's database URL (the study lives there).
        stale_after: lease length; Optuna's heartbeat interval and grace period follow it.
    """

    def __init__(
        self, spec: ExperimentSpec, template: TrialSpec, search: SearchSpec, db_url: str, stale_after: float
    ) -> None:
        self.optuna = require_optuna()
        self.spec = spec
        self.template = template
        self.search = search
        self.name = study_name(spec, template)
        self.distributions = distributions(search)
        where = f"trials.yaml: {template.name}.{search.form}"
        sampler = build_sampler(search, template.seed, f"{where}.sampler")
        pruner = build_pruner(search, f"{where}.pruner")
        self.storage = _storage(db_url, stale_after)
        self.study = self._study(sampler, pruner)
        self._beats = _Beats(self.storage)
        self._budget_query: Any = None  # see _counts

    def _study(self, sampler: Any, pruner: Any) -> optuna.Study:
        for attempt in range(3):  # create_study(load_if_exists) races only on the very first call
            try:
                study = self.optuna.create_study(
                    storage=self.storage,
                    study_name=self.name,
                    sampler=sampler,
                    pruner=pruner,
                    directions=list(self.search.directions),
                    load_if_exists=True,
                )
                break
            except self.optuna.exceptions.DuplicatedStudyError:
                if attempt == 2:
                    raise
        if [d.name.lower() for d in study.directions] != list(self.search.directions):
            raise ConfigError(
                f"study {self.name!r} optimizes {[d.name.lower() for d in study.directions]}, "
                f"the search block says {list(self.search.directions)}; use another experiment name",
            )
        return study

    # -- budget
    def _counts(self) -> list[tuple[int, bool]]:
        """``(number, counted)`` of every trial of the study, from one narrow query. Stale trials
        are failed on the way (not counted): those whose heartbeat is older than the grace period
        on the database's clock (Optuna's ``fail_stale_trials`` rule), and those that never beat
        and started longer ago than that (killed between ``ask`` and the first heartbeat).

        ``study.get_trials`` would load every trial with its params, values and attributes on
        each ask (the largest per-trial cost of a search on SQLite), and ``fail_stale_trials``
        loads every running one again; the budget needs only states, the counted-failure flag
        and the heartbeats, read from Optuna's tables directly.
        """
        from optuna.storages._rdb import models as om

        T = om.TrialModel
        if self._budget_query is None:  # built once: SQLAlchemy caches its compiled form by shape
            import sqlalchemy as sa

            A, H = om.TrialUserAttributeModel, om.TrialHeartbeatModel
            flagged = sa.select(A.trial_id).where(A.key == COUNTED_FAILURE)
            beat = sa.select(H.heartbeat).where(H.trial_id == T.trial_id).scalar_subquery()
            started = T.__table__.c.datetime_start
            # The database's clock comes with the rows: one round trip.
            self._budget_query = sa.select(
                T.trial_id, T.number, T.state, started, T.trial_id.in_(flagged), beat, sa.func.now()
            ).where(T.study_id == self.study._study_id)
        with self.storage.engine.connect() as conn:
            rows = conn.execute(self._budget_query).all()
        S = self.optuna.trial.TrialState
        live = (S.COMPLETE, S.PRUNED, S.RUNNING, S.WAITING)
        grace = _dt.timedelta(seconds=self.storage.grace_period or 0)
        # Optuna 5 stores datetime_start as naive UTC (``_datetime_start_utc``), earlier versions
        # as naive local time, both from the asking host's clock.
        now = _dt.datetime.now(_dt.timezone.utc).replace(tzinfo=None)
        if not hasattr(T, "_datetime_start_utc"):  # pragma: no cover - Optuna < 5
            now = _dt.datetime.now()
        db_now = _naive(rows[0][-1]) if rows else None
        out = []
        for trial_id, number, state, start, flag, beaten, _ in rows:
            if state == S.RUNNING and (
                (beaten is None and start is not None and now - start > grace)
                or (beaten is not None and db_now is not None and db_now - _naive(beaten) > grace)
            ):
                state = self._fail_stale(trial_id, never_beat=beaten is None)
            out.append((number, state in live or (state == S.FAIL and bool(flag))))
        return out

    def _fail_stale(self, trial_id: int, never_beat: bool) -> Any:
        """Fail a RUNNING trial whose process died; returns its state now."""
        S = self.optuna.trial.TrialState
        try:
            if self.study._storage.set_trial_state_values(trial_id, state=S.FAIL):
                why = "never started" if never_beat else "stopped beating"
                log.warning("study %s: trial id %s %s (its process died); replaced", self.name, trial_id, why)
        except self.optuna.exceptions.UpdateFinishedTrialError:  # it finished meanwhile
            return self.study._storage.get_trial(trial_id).state
        return S.FAIL

    def counted(self) -> int:
        """Trials that count towards ``num_trials`` now (stale ones failed first)."""
        return sum(1 for _, counted in self._counts() if counted)

    def ask(self) -> optuna.Trial | None:
        """The next trial, or ``None`` when the budget is used up (by anyone)."""
        seen = self._counts()
        if sum(1 for _, counted in seen if counted) >= self.search.num_trials:
            return None
        trial = self.study.ask(self.distributions)
        # Its first heartbeat comes from the heartbeat thread within one interval (half the grace
        # period at most); a process killed before that is caught by the never-beat rule of
        # :meth:`_counts`. A beat here would cost every trial a write for that window's sake.
        if trial.number != len(seen):  # others asked meanwhile: count what precedes this trial
            seen = self._counts()
        if sum(1 for number, counted in seen if counted and number < trial.number) >= self.search.num_trials:
            trial.set_user_attr(OVER_BUDGET, True)  # lost the race for the last slot
            self.study.tell(trial, state=self.optuna.trial.TrialState.FAIL)
            return None
        return trial

    @contextlib.contextmanager
    def heartbeat(self, trial: optuna.Trial) -> Iterator[None]:
        """Optuna heartbeats for ``trial`` while its runs execute (every interval, from a thread)."""
        self._beats.add(trial._trial_id)
        try:
            yield
        finally:
            self._beats.discard(trial._trial_id)

    def close(self) -> None:
        """Stop the heartbeat thread (idempotent; a planner is not used after this)."""
        self._beats.close()

    # -- trials
    def trial_name(self, number: int) -> str:
        return f"{self.template.name}-t{number:03d}"

    def trial_spec(self, trial: optuna.Trial, index: int) -> TrialSpec:
        """The TRIAL of Optuna trial ``trial``: the template's settings with the sampled values."""
        t = self.template
        params = {key: trial.params[key] for key in self.search.space}
        data = copy_tree(t._raw if t._raw is not None else t._data)
        for key, value in params.items():
            set_path(data, parse_key(key) or [key], copy_tree(value))
        if self.search.pruner[0] != "none":
            callbacks = list(data.get("callbacks") or [])
            callbacks.append(
                {
                    "class_path": PRUNING_CALLBACK,
                    "init_args": {
                        "study": self.name,
                        "trial": trial.number,
                        "monitor": self.search.metrics[0],
                    },
                }
            )
            data["callbacks"] = callbacks
        raw = None
        if has_interpolation(data):
            raw = data
            data, problem = resolve(data)
            if problem:
                raise ConfigError(f"trial {self.trial_name(trial.number)}: {problem[1]}", key=str(problem[0]))
        return TrialSpec(
            name=self.trial_name(trial.number),
            id=t.id * 100_000 + trial.number + 1,
            repeat=t.repeat,
            data=data,
            params=params,
            tags={**t.tags, "study": self.name, "optuna_trial": trial.number},
            index=index,
            seed=t.seed,
            raw=raw,
        )

    def tell(self, trial: optuna.Trial, values: list[list[float]] | None, state: str) -> None:
        """Finish ``trial``: ``state`` is ``complete`` (``values``: per repeat, per metric; the mean
        over repeats is told), ``pruned``, ``failed`` (counted) or ``aborted`` (replaced later)."""
        try:
            self._tell(trial, values, state)
        except RuntimeError as e:
            # GridSampler.after_trial calls Study.stop() once the grid is covered, which Optuna
            # allows only inside optimize(); the trial's state is stored before that (Optuna's
            # _tell sets it in a finally block), so this is not an error for ask/tell.
            if "Study.stop" not in str(e):
                raise

    def _tell(self, trial: optuna.Trial, values: list[list[float]] | None, state: str) -> None:
        S = self.optuna.trial.TrialState
        if state == "complete" and values:
            means = [sum(v[i] for v in values) / len(values) for i in range(len(self.search.metrics))]
            if len(values) > 1:  # one repeat: its value is the trial's (one write fewer per trial)
                trial.set_user_attr("expman_repeat_values", values)
            self._study_tell(trial, means if len(means) > 1 else means[0])
        elif state == "pruned":
            self._study_tell(trial, state=S.PRUNED)
        else:
            if state == "failed":
                trial.set_user_attr(COUNTED_FAILURE, True)
            self._study_tell(trial, state=S.FAIL)

    def _study_tell(self, trial: optuna.Trial, values: Any = None, state: Any = None) -> None:
        """``Study.tell`` without what it adds to Optuna's own tell: a second read of the trial,
        deep-copied for a return value this class never uses (one query per trial). Optuna's
        ``optimize`` calls the same function; an Optuna without it gets ``Study.tell``."""
        try:
            from optuna.study._tell import _tell_with_warning
        except ImportError:  # pragma: no cover - a future Optuna that moved it
            self.study.tell(trial, values, state=state)
            return
        _tell_with_warning(self.study, trial, value_or_values=values, state=state)


def _naive(value: Any) -> Any:
    """A database timestamp without its time zone (PostgreSQL's ``now()`` has one; Optuna's columns not)."""
    if isinstance(value, str):  # pragma: no cover - a driver that returns text
        value = _dt.datetime.fromisoformat(value)
    return value.replace(tzinfo=None) if isinstance(value, _dt.datetime) else value


class _Beats:
    """One heartbeat thread per planner, beating every trial it runs now.

    Optuna's ``HeartbeatThread`` starts (and joins) a thread per trial and writes a beat at once.
    One long-lived thread that beats the current trials every interval (the grace period is at
    least two) keeps every live trial's beat fresh without a thread start per trial, and a trial
    shorter than one interval is never beaten at all: :meth:`Planner._counts` fails a trial that
    never beat by its start time, so a process killed before the first beat is still replaced.
    """

    def __init__(self, storage: Any) -> None:
        self.storage = storage
        self.trials: set[int] = set()
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None

    def add(self, trial_id: int) -> None:
        with self.lock:
            self.trials.add(trial_id)
            if self.thread is None:
                self.thread = threading.Thread(target=self._run, name="expman-optuna-heartbeat", daemon=True)
                self.thread.start()

    def discard(self, trial_id: int) -> None:
        with self.lock:
            self.trials.discard(trial_id)

    def _run(self) -> None:
        interval = self.storage.get_heartbeat_interval()
        while not self.stop.wait(interval):
            with self.lock:
                trials = sorted(self.trials)
            for trial_id in trials:
                try:
                    self.storage.record_heartbeat(trial_id)
                except Exception as e:  # a lost beat is retried next interval; the grace period is two
                    log.warning("Optuna heartbeat of trial id %s failed: %s", trial_id, e)

    def close(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join()
            self.thread = None
