"""Persistence: the Peewee schema, connections, the seed's ``DatabaseManager`` and schema versioning.

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
