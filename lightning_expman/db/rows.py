"""The query helpers and row builders every part of :class:`~lightning_expman.db.manager.DatabaseManager`
shares (inside the transactions :class:`~lightning_expman.db.base.ManagerBase` runs): INSERT and
return the row, check that an id exists (once per transaction), create a run's epoch or results row
when missing, and build each level's row with secrets masked.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

import peewee as pw
from peewee import __exception_wrapper__ as _driver_errors

from ..enums import metric_name
from ..errors import QueryError
from ..masking import mask_url
from . import models as m
from .base import ManagerBase
from .values import _clean_per_label, _scrub_value

__all__ = ["RowHelpers"]

ModelT = TypeVar("ModelT", bound=m.BaseModel)


class RowHelpers(ManagerBase):
    """Query helpers and row builders (private: the manager's API methods call them)."""

    def _insert(self, model: type[ModelT], **values: Any) -> ModelT:
        """INSERT through this manager's database and return the instance (with its new id)."""
        inst = model(**values)
        new_id = model.insert(inst.__data__).execute(self._db)
        pk = model._meta.primary_key
        if isinstance(pk, pw.AutoField) and new_id is not None:
            setattr(inst, pk.name, new_id)
        inst._dirty.clear()
        return inst

    def _missing(self, label: str, pk: Any) -> QueryError:
        return QueryError(f"{label} id {pk!r} does not exist in {self.url}; create it first or check the id")

    def _require(self, model: type[m.BaseModel], pk: int, label: str) -> None:
        known = self._known()
        if known is not None and (model, pk) in known:
            return
        field = model._meta.primary_key
        if not model.select(field).where(field == pk).exists(self._db):
            raise self._missing(label, pk)
        if known is not None:
            known.add((model, pk))

    def _insert_under(
        self, model: type[ModelT], parent: type[m.BaseModel], parent_id: int, label: str, **values: Any
    ) -> ModelT:
        """INSERT a row whose only foreign key names ``parent_id``: the key checks the parent in the
        INSERT itself (on every backend: a plain INSERT, not MySQL's INSERT IGNORE), and an unknown
        one raises the QueryError :meth:`_require` would, without a lookup first."""
        try:
            row = self._insert(model, **values)
        except pw.IntegrityError as e:
            raise self._missing(label, parent_id) from e
        known = self._known()
        if known is not None:
            known.add((parent, parent_id))
        return row

    def _epoch_exists(self, trial_run_id: int, epoch_idx: int) -> bool:
        q = m.Epoch.select(m.Epoch.idx).where(
            (m.Epoch.trial_run == trial_run_id) & (m.Epoch.idx == epoch_idx)
        )
        return q.exists(self._db)

    def _require_epoch(self, trial_run_id: int, epoch_idx: int) -> None:
        if not self._epoch_exists(trial_run_id, epoch_idx):
            self._require(m.TrialRun, trial_run_id, "trial run")
            raise QueryError(
                f"epoch {epoch_idx} of trial run {trial_run_id} does not exist in {self.url}; "
                f"call create_epoch({epoch_idx}, {trial_run_id}) first"
            )

    def _insert_link(self, model: type[m.BaseModel], label: str, **values: Any) -> m.BaseModel:
        where = [getattr(model, k) == v for k, v in values.items()]
        if model.select().where(*where).exists(self._db):
            args = ", ".join(f"{k}={v}" for k, v in values.items())
            raise QueryError(f"{label} ({args}) is already linked in {self.url}")
        return self._insert(model, **values)

    def _ensure_epoch(self, trial_run_id: int, epoch_idx: int) -> None:
        self._ensure_child(m.Epoch, trial_run_id, idx=epoch_idx, trial_run=trial_run_id)

    def _ensure_results(self, trial_run_id: int) -> None:
        self._ensure_child(m.Results, trial_run_id, trial_run=trial_run_id)

    def _ensure_child(self, model: type[m.BaseModel], trial_run_id: int, **values: Any) -> None:
        """INSERT a row of a trial run (an EPOCH, its RESULTS) unless it exists; an unknown run
        raises QueryError. SQLite and PostgreSQL check the run in the INSERT itself (its foreign
        key); MySQL's INSERT IGNORE would swallow that error too, so the run is looked up first."""
        known = self._known()
        key = (model, *values.values())
        if known is not None and key in known:
            return
        if self._backend == "mysql":
            self._require(m.TrialRun, trial_run_id, "trial run")
        try:
            model.insert(**values).on_conflict_ignore().execute(self._db)
        except pw.IntegrityError as e:  # only the foreign key can fail: conflicts are ignored
            raise self._missing("trial run", trial_run_id) from e
        if known is not None:
            known.update((key, (m.TrialRun, trial_run_id)))

    def _select(self, query: pw.ModelSelect) -> list:
        return list(query.execute(self._db))

    def _update_run(self, trial_run_id: int, values: Mapping[Any, Any]) -> m.TrialRun:
        """UPDATE one TRIAL_RUN row and return it as stored (the caller checked that it exists)."""
        m.TrialRun.update(values).where(m.TrialRun.id == trial_run_id).execute(self._db)
        return m.TrialRun.select().where(m.TrialRun.id == trial_run_id).get(self._db)

    # ------------------------------------------------------------------ row builders (secrets masked)

    def _insert_experiment(
        self, title: str, desc: str, config: Mapping[str, Any] | None, config_hash: str | None, tags: Any
    ) -> m.Experiment:
        return self._insert(
            m.Experiment,
            title=title,
            desc=desc or "",
            config=_scrub_value(config),
            config_hash=config_hash,
            tags=_scrub_value(tags),
        )

    def _insert_trial(
        self, experiment_id: int, name: str, config: Mapping[str, Any] | None, tags: Any
    ) -> m.Trial:
        """A TRIAL row; an unknown experiment raises QueryError."""
        return self._insert_under(
            m.Trial,
            m.Experiment,
            experiment_id,
            "experiment",
            experiment=experiment_id,
            name=name,
            config=_scrub_value(config),
            tags=_scrub_value(tags),
        )

    def _insert_metrics(self, metrics: list[tuple]) -> list[m.MetricRecord]:
        """INSERT METRIC rows from ``(name, total_value[, per_label_values])`` tuples and return them
        with their ids; NaN/inf are stored as NULL, in the total and in the per-label values.

        Every epoch of every run comes here, so the rows go through the raw cursor with one
        statement text (Peewee would build the same statement again for each row, at several
        times the cost of running it).
        """
        M = m.MetricRecord
        q, p = self._db.quote, self._db.param
        cols = ", ".join(c.join(q) for c in ("type", "total_val", "per_label_val"))
        sql = f"INSERT INTO {'metric'.join(q)} ({cols}) VALUES ({p}, {p}, {p})"
        returning = self._backend == "postgresql"
        if returning:
            sql += f" RETURNING {'id'.join(q)}"
        to_db = M.per_label_val.db_value
        cursor = self._db.cursor()
        records = []
        # Raw driver errors are wrapped like Peewee's own, so _run translates/retries them alike.
        with _driver_errors:
            for name, value, *rest in metrics:
                record = M(
                    type=metric_name(name),
                    total_val=m.finite_or_none(value),
                    per_label_val=_clean_per_label(rest[0] if rest else None),
                )
                cursor.execute(sql, (record.type, record.total_val, to_db(record.per_label_val)))
                record.id = cursor.fetchone()[0] if returning else cursor.lastrowid
                record._dirty.clear()
                records.append(record)
        return records

    def _insert_artifact(self, artifact_type: str, location: str) -> m.Artifact:
        """An ARTIFACT row; a URL's password in ``location`` is masked."""
        return self._insert(m.Artifact, type=str(artifact_type), location=mask_url(str(location)))
