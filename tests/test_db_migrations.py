"""Schema versioning: version recorded on creation, newer databases refused, upgrades (Peewee migrator)."""

from __future__ import annotations

import peewee as pw
import pytest

from lightning_expman.db import DatabaseError, DatabaseManager, open_database
from lightning_expman.db import models as m
from lightning_expman.db.migrations import MIGRATIONS, ensure_schema, get_schema_version, migrate


def _add_gpu_column(migrator, db) -> None:
    """A test-only migration 1 -> 2: a nullable column on trial_run."""
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


CURRENT, NEXT = m.SCHEMA_VERSION, m.SCHEMA_VERSION + 1


def test_older_database_is_upgraded_by_registered_migrations(db_url):
    DatabaseManager(db_url).close()  # a database at the current version
    calls: list[int] = []

    def step(migrator, db) -> None:
        calls.append(1)
        _add_gpu_column(migrator, db)

    upgraded = DatabaseManager(db_url, migrations={CURRENT: step}, schema_version=NEXT)
    assert "gpu" in _columns(upgraded.database, "trial_run")
    assert get_schema_version(upgraded.database) == NEXT
    # the upgraded database still works through the manager
    run = upgraded.create_trial_run(upgraded.create_trial(upgraded.create_experiment("e").id, "t").id)
    assert run.id == 1
    upgraded.close()
    DatabaseManager(db_url, migrations={CURRENT: step}, schema_version=NEXT).close()  # no re-run
    assert calls == [1]
    assert set(MIGRATIONS) == set(range(1, CURRENT))  # the global registry was never touched


def test_missing_migration_is_an_error(sqlite_url):
    DatabaseManager(sqlite_url).close()
    with pytest.raises(DatabaseError, match=f"schema version {CURRENT} and no migration to {NEXT}"):
        DatabaseManager(sqlite_url, migrations={}, schema_version=NEXT)
    db = open_database(sqlite_url)
    assert get_schema_version(db) == CURRENT
    db.close()


def test_failed_migration_is_rolled_back_and_reported(sqlite_url):
    DatabaseManager(sqlite_url).close()

    def broken(migrator, db) -> None:
        _add_gpu_column(migrator, db)
        raise RuntimeError("half way")

    with pytest.raises(
        DatabaseError, match=f"from schema version {CURRENT} to {NEXT} failed: RuntimeError: half way"
    ) as info:
        DatabaseManager(sqlite_url, migrations={CURRENT: broken}, schema_version=NEXT)
    assert isinstance(info.value.__cause__, RuntimeError)
    db = open_database(sqlite_url)
    assert get_schema_version(db) == CURRENT and "gpu" not in _columns(db, "trial_run")  # DDL rolled back
    db.close()


def test_ensure_schema_on_a_bare_connection(tmp_path):
    db = open_database(f"sqlite:///{tmp_path / 'x.db'}")
    assert get_schema_version(db) is None
    assert ensure_schema(db) == m.SCHEMA_VERSION
    assert get_schema_version(db) == m.SCHEMA_VERSION
    db.close()
