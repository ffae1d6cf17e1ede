"""The query helpers and row builders every part of :class:`~lightning_expman.db.manager.DatabaseManager`
shares (inside the transactions :class:`~lightning_expman.db.base.ManagerBase` runs): INSERT and
return the row, check that an id exists (once per transaction), create a run's epoch or results row
when missing, and build each level's row with secrets masked.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

import peewee as pw

from ..enums import metric_name
from ..errors import QueryError
from ..masking import mask_url
from . import models as m
from .base import ManagerBase
from .values import _clean_per_label, _scrub_value

__all__ = ["RowHelpers"]

ModelT = TypeVar("ModelT", bound=m.BaseModel)

# (backend, model, column names) -> (INSERT text, its fields in order): see RowHelpers._insert
_STATEMENTS: dict[tuple[Any, ...], tuple[str, list[pw.Field]]] = {}


class RowHelpers(ManagerBase):
    """Query helpers and row builders (private: the manager's API methods call them)."""

    def _insert(self, model: type[ModelT], **values: Any) -> ModelT:
        """INSERT through this manager's database and return the instance (with its new id).

        Runs and epochs insert the same few shapes of row all the time, so the statement text is
        built once per backend, model and set of columns, and each call only converts its values
        (``Field.db_value``, as Peewee does); Peewee would build the same text again per row at
        several times the cost of running it. A value that is SQL (the database's clock) goes
        through Peewee's own INSERT.
        """
        inst = model(**values)
        data = inst.__data__
        meta = model._meta
        pk = meta.primary_key
        auto = isinstance(pk, pw.AutoField)
        if any(isinstance(v, pw.Node) for v in data.values()):
            new_id = model.insert(data).execute(self._db)
        else:
            key = (self._backend, model, tuple(data))
            statement = _STATEMENTS.get(key)
            if statement is None:
                statement = _STATEMENTS[key] = self._insert_statement(model, tuple(data), auto)
            sql, fields = statement
            cursor = self._db.execute_sql(sql, [f.db_value(data[f.name]) for f in fields])
            new_id = (
                (cursor.fetchone()[0] if self._backend == "postgresql" else cursor.lastrowid)
                if auto
                else None
            )
        if auto and new_id is not None:
            setattr(inst, pk.name, new_id)
        inst._dirty.clear()
        return inst

    def _insert_statement(
        self, model: type[m.BaseModel], names: tuple[str, ...], auto: bool
    ) -> tuple[str, list[pw.Field]]:
        q, p = self._db.quote, self._db.param
        fields = [model._meta.fields[name] for name in names]
        cols = ", ".join(f.column_name.join(q) for f in fields)
        sql = f"INSERT INTO {model._meta.table_name.join(q)} ({cols}) VALUES ({', '.join([p] * len(fields))})"
        if auto and self._backend == "postgresql":
            sql += f" RETURNING {model._meta.primary_key.column_name.join(q)}"
        return sql, fields

    def _insert_many(
        self,
        model: type[m.BaseModel],
        rows: list[dict[str, Any]],
        *,
        ignore: bool = False,
        update: tuple[str, ...] = (),
    ) -> None:
        """INSERT rows of one shape (plain values, no ids returned) in one statement, its text
        built as :meth:`_insert` builds it.

        Args:
            ignore: a row whose key exists is skipped (Peewee's ``on_conflict_ignore``).
            update: on a key conflict, these columns take the new row's values (an upsert on the
                primary key, Peewee's ``on_conflict(preserve=...)``).
        """
        if not rows:
            return
        datas = [model(**row).__data__ for row in rows]
        names = tuple(datas[0])
        key = (self._backend, model, names, ignore, update)
        statement = _STATEMENTS.get(key)
        if statement is None:
            statement = _STATEMENTS[key] = self._insert_many_statement(model, names, ignore, update)
        (head, one, tail), fields = statement
        sql = f"{head}{', '.join([one] * len(datas))}{tail}"
        self._db.execute_sql(sql, [f.db_value(data[f.name]) for data in datas for f in fields])

    def _insert_many_statement(
        self, model: type[m.BaseModel], names: tuple[str, ...], ignore: bool, update: tuple[str, ...]
    ) -> tuple[tuple[str, str, str], list[pw.Field]]:
        q, backend = self._db.quote, self._backend
        sql, fields = self._insert_statement(model, names, auto=False)
        head, one = sql.rsplit(" VALUES ", 1)
        tail = ""
        if ignore:
            if backend == "postgresql":
                tail = " ON CONFLICT DO NOTHING"
            else:
                head = head.replace(
                    "INSERT", "INSERT OR IGNORE" if backend == "sqlite" else "INSERT IGNORE", 1
                )
        elif update:
            cols = [model._meta.fields[name].column_name.join(q) for name in update]
            if backend == "mysql":
                tail = " ON DUPLICATE KEY UPDATE " + ", ".join(f"{c} = VALUES({c})" for c in cols)
            else:
                pk = model._meta.get_primary_keys()
                target = ", ".join(f.column_name.join(q) for f in pk)
                tail = f" ON CONFLICT ({target}) DO UPDATE SET " + ", ".join(
                    f"{c} = EXCLUDED.{c}" for c in cols
                )
        return (f"{head} VALUES ", one, tail), fields

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
            self._insert_many(model, [values], ignore=True)
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
        with their ids; NaN/inf are stored as NULL, in the total and in the per-label values."""
        return [
            self._insert(
                m.MetricRecord,
                type=metric_name(name),
                total_val=m.finite_or_none(value),
                per_label_val=_clean_per_label(rest[0] if rest else None),
            )
            for name, value, *rest in metrics
        ]

    def _insert_artifact(self, artifact_type: str, location: str) -> m.Artifact:
        """An ARTIFACT row; a URL's password in ``location`` is masked."""
        return self._insert(m.Artifact, type=str(artifact_type), location=mask_url(str(location)))
