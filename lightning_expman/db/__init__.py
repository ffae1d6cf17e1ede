"""Persistence: the Peewee schema, connections, the seed's ``DatabaseManager`` and schema versioning.

Files:

* ``urls.py``: database URLs parsed and rendered (password never shown);
* ``connect.py``: opening a database with per-backend settings (SQLite WAL, MySQL, PostgreSQL);
* ``driver_errors.py``: driver errors translated (one line) and classified (lost connection, conflict);
* ``columns.py``: how values are stored on every backend; ``models.py``: the tables;
* ``migrations.py``: schema versions; ``clock.py``: the database's clock;
* ``manager.py``: :class:`DatabaseManager`, composed of ``base.py``, ``writes.py``, ``reads.py``,
  ``lifecycle.py``, ``bulk.py``, ``deletes.py``, ``levels.py`` and ``values.py`` (see its docstring);
* ``writer.py``: the background writer (buffer and thread); ``batch.py``: one of its batches
  written in one transaction, exactly once.

Example:
    >>> from lightning_expman.db import DatabaseManager, QueryError
    >>> db = DatabaseManager("sqlite:///:memory:")
    >>> experiment = db.create_experiment("CIFAR-10 Classification", "Comparing architectures")
    >>> try:
    ...     db.create_trial(999, "ResNet-18")
    ... except QueryError as e:
    ...     print("QueryError")
    QueryError
"""

from __future__ import annotations

from ..errors import ConnectionError, DatabaseError, QueryError
from .connect import DatabaseURL, mask_url, open_database, parse_url
from .manager import DatabaseManager

__all__ = [
    "ConnectionError",
    "DatabaseError",
    "DatabaseManager",
    "DatabaseURL",
    "QueryError",
    "mask_url",
    "open_database",
    "parse_url",
]
