"""Schema creation and versioning.

A database records the schema version it was written with in ``schema_version`` (one row,
``id = 1``). Opening a database:

* fresh (no ``schema_version`` table or row): create every table, record :data:`SCHEMA_VERSION`;
* same version: nothing to do (one cheap query on the hot path);
* older: apply :data:`MIGRATIONS` ``[v]`` for ``v = stored .. SCHEMA_VERSION - 1`` in order, each
  bumping the recorded version, using Peewee's ``playhouse.migrate`` (``SchemaMigrator``);
* newer: refuse with a :class:`~lightning_expman.errors.DatabaseError` telling the user to upgrade.

Creation and upgrades run under a lock so that many processes opening one fresh database at
once (a local parallel grid) create it exactly once: an ``IMMEDIATE`` transaction on SQLite
(SQLite DDL is transactional), ``GET_LOCK`` on MySQL/MariaDB (whose DDL commits implicitly), an
advisory transaction lock on PostgreSQL.

Adding a migration (when a model changes): bump ``models.SCHEMA_VERSION`` to N+1 and register

.. code-block:: python

    def _v1_to_v2(migrator: SchemaMigrator, db: peewee.Database) -> None:
        migrate(migrator.add_column("trial_run", "gpu", peewee.CharField(max_length=64, null=True)))

    MIGRATIONS[1] = _v1_to_v2
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

import peewee as pw
from playhouse.migrate import SchemaMigrator, migrate

from ..errors import DatabaseError
from . import models
from .connect import backend_of

__all__ = ["MIGRATIONS", "Migration", "ensure_schema", "get_schema_version", "migrate"]

log = logging.getLogger(__name__)

Migration = Callable[[SchemaMigrator, pw.Database], None]
"""Upgrades a database from version N (its key in the registry) to N + 1."""


def _v1_to_v2(migrator: SchemaMigrator, db: pw.Database) -> None:
    """Coordination: run leases on ``trial_run``, the ``claim`` and ``write_mark`` tables.

    A RUNNING row written by release 1 gets the lease release 1 resumed by (120 s without a
    heartbeat); other rows keep none.
    """
    migrate(
        migrator.add_column("trial_run", "owner", pw.CharField(max_length=32, null=True)),
        migrator.add_column("trial_run", "lease_s", pw.FloatField(null=True)),
        migrator.add_column("trial_run", "pid", pw.IntegerField(null=True)),
        migrator.add_column("trial_run", "proc_key", pw.CharField(max_length=128, null=True)),
        # Nullable: a NOT NULL column makes SQLite rebuild the table, and its cascades empty the children.
        migrator.add_column("trial_run", "attempts", pw.IntegerField(null=True, default=1)),
        migrator.add_index("trial_run", ("owner",), False),
    )
    for model in (models.Claim, models.WriteMark):
        pw.SchemaManager(model, db).create_all(safe=True)
    db.execute_sql("UPDATE trial_run SET lease_s = 120 WHERE status = 'RUNNING'")
    if backend_of(db) == "mysql":  # leases compare heartbeats to the microsecond
        db.execute_sql("ALTER TABLE trial_run MODIFY heartbeat DATETIME(6) NULL")


def _v2_to_v3(migrator: SchemaMigrator, db: pw.Database) -> None:
    """Metrics at EXPERIMENT and TRIAL level, and the metrics a checkpoint was saved with.

    Three new tables, nothing changed in the existing ones (no data to move).
    """
    for model in (models.ExperimentMetric, models.TrialMetric, models.ArtifactMetric):
        if not db.table_exists(model._meta.table_name):
            pw.SchemaManager(model, db).create_all(safe=True)


MIGRATIONS: dict[int, Migration] = {1: _v1_to_v2, 2: _v2_to_v3}
"""The registry: ``MIGRATIONS[n]`` upgrades a version-``n`` database to ``n + 1``."""

_LOCK_NAME = "lightning_expman_schema"
_PG_LOCK_KEY = 0x6C65_7870  # arbitrary constant: this project's advisory lock id ("lexp")


def get_schema_version(db: pw.Database) -> int | None:
    """The version recorded in ``db``, or None for a database without one (fresh)."""
    if not db.table_exists(models.SchemaVersion._meta.table_name):
        return None
    row = db.execute_sql("SELECT version FROM schema_version WHERE id = 1").fetchone()
    return None if row is None else int(row[0])


def _check_not_newer(version: int, target: int, where: str) -> None:
    if version > target:
        raise DatabaseError(
            f"database {where} has schema version {version}, newer than {target} which this "
            f"lightning_expman understands: upgrade lightning_expman (pip install -U lightning-expman)"
        )


@contextmanager
def _schema_lock(db: pw.Database) -> Iterator[None]:
    """Serialise schema creation/upgrades between processes (see module docstring)."""
    backend = backend_of(db)
    if backend == "sqlite":
        with db.atomic():  # the database is opened with lock_type="IMMEDIATE"
            yield
    elif backend == "postgresql":
        with db.atomic():
            db.execute_sql("SELECT pg_advisory_xact_lock(%s)", (_PG_LOCK_KEY,))
            yield
    else:
        got = db.execute_sql("SELECT GET_LOCK(%s, %s)", (f"{_LOCK_NAME}.{db.database}", 60)).fetchone()[0]
        if got != 1:
            raise DatabaseError(
                f"timed out after 60 s waiting for the schema lock of MySQL database {db.database!r}: "
                f"another process is creating or upgrading it; retry when it is done"
            )
        try:
            yield
        finally:
            db.execute_sql("SELECT RELEASE_LOCK(%s)", (f"{_LOCK_NAME}.{db.database}",))


def _create_tables(db: pw.Database) -> None:
    # SchemaManager(model, db) renders the DDL for ``db`` explicitly, whatever the models'
    # proxy currently points at (another manager in this process may have bound it).
    existing = set(db.get_tables())  # one catalogue query (table_exists() runs it per table)
    for model in pw.sort_models(models.ALL_MODELS):
        if model._meta.table_name not in existing:
            pw.SchemaManager(model, db).create_all(safe=True)


def _set_version(db: pw.Database, version: int, *, insert: bool) -> None:
    if insert:
        db.execute_sql(
            f"INSERT INTO schema_version (id, version, applied_at) VALUES (1, {db.param}, {db.param})",
            (version, models.utcnow()),
        )
    else:
        db.execute_sql(
            f"UPDATE schema_version SET version = {db.param}, applied_at = {db.param} WHERE id = 1",
            (version, models.utcnow()),
        )


def ensure_schema(
    db: pw.Database,
    *,
    target: int | None = None,
    migrations: Mapping[int, Migration] | None = None,
    where: str | None = None,
) -> int:
    """Create or upgrade the schema of ``db`` to ``target`` (default :data:`models.SCHEMA_VERSION`).

    Args:
        db: a connected database.
        target: the version to reach (tests pass a higher one with a test-only migration).
        migrations: the registry to use (default :data:`MIGRATIONS`).
        where: how to name the database in errors (a masked URL).

    Returns:
        The version the database was at before (None-free: a fresh database reports ``target``).

    Raises:
        DatabaseError: the database is newer than ``target``, or a migration is missing or failed.

    Example:
        >>> from lightning_expman.db.connect import open_database
        >>> db = open_database("sqlite:///:memory:")
        >>> ensure_schema(db)
        3
        >>> get_schema_version(db)
        3
    """
    target = models.SCHEMA_VERSION if target is None else target
    registry = MIGRATIONS if migrations is None else migrations
    where = where or repr(db.database)
    version = get_schema_version(db)
    if version == target:  # hot path: no lock
        return version
    if version is not None:
        _check_not_newer(version, target, where)
    with _schema_lock(db):
        version = get_schema_version(db)  # another process may have done it meanwhile
        if version is None:
            _create_tables(db)
            _set_version(db, target, insert=True)
            log.info("created schema version %d in %s", target, where)
            return target
        _check_not_newer(version, target, where)
        before = version
        migrator = SchemaMigrator.from_database(db)
        while version < target:
            step = registry.get(version)
            if step is None:
                raise DatabaseError(
                    f"database {where} has schema version {version} and no migration to {version + 1} "
                    f"is registered: install the lightning_expman release that wrote it, or upgrade"
                )
            try:
                step(migrator, db)
            except Exception as e:
                raise DatabaseError(
                    f"migrating database {where} from schema version {version} to {version + 1} failed: "
                    f"{type(e).__name__}: {e}; restore a backup or report this issue"
                ) from e
            version += 1
            _set_version(db, version, insert=False)
            log.info("migrated %s to schema version %d", where, version)
        return before
