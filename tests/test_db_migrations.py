"""Schema versioning: version recorded on creation, newer databases refused, upgrades (Peewee migrator)."""

from __future__ import annotations

import peewee as pw
import pytest

from lightning_expman.db import DatabaseError, DatabaseManager, open_database
from lightning_expman.db import models as m
from lightning_expman.db.migrations import MIGRATIONS, ensure_schema, get_schema_version, migrate

V = m.SCHEMA_VERSION
NEXT = V + 1


def _add_gpu_column(migrator, db) -> None:
    """A test-only migration from the current version to the next: a nullable column on trial_run."""
    migrate(migrator.add_column("trial_run", "gpu", pw.CharField(max_length=64, null=True)))


def _columns(db: pw.Database, table: str) -> set[str]:
    return {c.name for c in db.get_columns(table)}


def test_new_database_records_the_current_version(db_url):
    db = DatabaseManager(db_url)
    rows = db.database.execute_sql("SELECT id, version FROM schema_version").fetchall()
    assert [tuple(r) for r in rows] == [(1, m.SCHEMA_VERSION)]
    assert {t for t in db.database.get_tables()} >= {model._meta.table_name for model in m.ALL_MODELS}
    db.close()
    again = DatabaseManager(db_url)  # reopening changes nothing
    assert again.database.execute_sql("SELECT COUNT(*) FROM schema_version").fetchone()[0] == 1
    again.close()


def test_newer_database_is_refused_with_a_one_line_error(sqlite_url):
    db = DatabaseManager(sqlite_url)
    db.database.execute_sql("UPDATE schema_version SET version = 99 WHERE id = 1")
    db.close()
    with pytest.raises(DatabaseError) as info:
        DatabaseManager(sqlite_url)
    message = str(info.value)
    assert "99" in message and str(m.SCHEMA_VERSION) in message
    assert "upgrade lightning_expman" in message and "\n" not in message


def test_older_database_is_upgraded_by_registered_migrations(db_url):
    DatabaseManager(db_url).close()  # a database at the current version
    calls: list[int] = []

    def step(migrator, db) -> None:
        calls.append(1)
        _add_gpu_column(migrator, db)

    registry_before = dict(MIGRATIONS)
    upgraded = DatabaseManager(db_url, migrations={V: step}, schema_version=NEXT)
    assert "gpu" in _columns(upgraded.database, "trial_run")
    assert get_schema_version(upgraded.database) == NEXT
    # the upgraded database still works through the manager
    run = upgraded.create_trial_run(upgraded.create_trial(upgraded.create_experiment("e").id, "t").id)
    assert run.id == 1
    upgraded.close()
    DatabaseManager(db_url, migrations={V: step}, schema_version=NEXT).close()  # already there: no re-run
    assert calls == [1]
    assert registry_before == MIGRATIONS  # the global registry was never touched


def test_missing_migration_is_an_error(sqlite_url):
    DatabaseManager(sqlite_url).close()
    with pytest.raises(DatabaseError, match=f"schema version {V} and no migration to {NEXT}"):
        DatabaseManager(sqlite_url, migrations={}, schema_version=NEXT)
    db = open_database(sqlite_url)
    assert get_schema_version(db) == V
    db.close()


def test_failed_migration_is_rolled_back_and_reported(sqlite_url):
    DatabaseManager(sqlite_url).close()

    def broken(migrator, db) -> None:
        _add_gpu_column(migrator, db)
        raise RuntimeError("half way")

    with pytest.raises(
        DatabaseError, match=f"from schema version {V} to {NEXT} failed: RuntimeError: half way"
    ) as info:
        DatabaseManager(sqlite_url, migrations={V: broken}, schema_version=NEXT)
    assert isinstance(info.value.__cause__, RuntimeError)
    db = open_database(sqlite_url)
    assert get_schema_version(db) == V and "gpu" not in _columns(db, "trial_run")  # SQLite DDL rolled back
    db.close()


def test_ensure_schema_on_a_bare_connection(tmp_path):
    db = open_database(f"sqlite:///{tmp_path / 'x.db'}")
    assert get_schema_version(db) is None
    assert ensure_schema(db) == m.SCHEMA_VERSION
    assert get_schema_version(db) == m.SCHEMA_VERSION
    db.close()


def test_a_version_2_database_gains_the_level_metric_tables(db_url):
    """The v2 -> v3 migration (MIGRATIONS[2]) adds experiment_metric, trial_metric and artifact_metric
    to a database written before them, keeping its rows; the upgraded database stores level metrics.
    (Version 2 is simulated from a current database minus those tables, so the test exercises that
    one step whatever MIGRATIONS[1] does.)"""
    new_tables = ("artifact_metric", "trial_metric", "experiment_metric")
    db = DatabaseManager(db_url)
    exp_id = db.create_experiment("old").id
    for table in new_tables:
        db.database.execute_sql(f"DROP TABLE {table}")
    db.database.execute_sql("UPDATE schema_version SET version = 2 WHERE id = 1")
    db.close()
    upgraded = DatabaseManager(db_url)
    assert get_schema_version(upgraded.database) == m.SCHEMA_VERSION == 3
    assert set(new_tables) <= set(upgraded.database.get_tables())
    upgraded.record_experiment_metrics(exp_id, {"best_val_acc": 0.9}, step=4)
    [(metric, step)] = upgraded.get_level_metrics(experiment_id=exp_id)
    assert (metric.type, metric.total_val, step) == ("best_val_acc", 0.9, 4)
    upgraded.close()
