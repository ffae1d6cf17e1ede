"""Exception hierarchy. Every error raised on purpose by lightning_expman is an :class:`ExpmanError`.

Messages are one line that names the bad value, where it came from and what is valid.
Driver errors are translated at one boundary (``lightning_expman.db``) and chained with ``from``.
"""

from __future__ import annotations

import builtins

__all__ = ["ConfigError", "ConnectionError", "DatabaseError", "ExpmanError", "QueryError"]


class ExpmanError(Exception):
    """Root of lightning_expman's errors."""


class ConfigError(ExpmanError, ValueError):
    """A configuration file, key or value is invalid.

    Args:
        message: what is wrong and what is valid.
        file: the file the value came from, if any.
        key: the dotted key, if any.
    """

    def __init__(self, message: str, *, file: str | None = None, key: str | None = None) -> None:
        self.file = file
        self.key = key
        where = ": ".join(p for p in (file, key) if p)
        super().__init__(f"{where}: {message}" if where else message)


class DatabaseError(ExpmanError):
    """Base class of every database error."""


class ConnectionError(DatabaseError, builtins.ConnectionError):
    """The database cannot be reached or opened."""


class QueryError(DatabaseError):
    """A read or write failed: unknown id, duplicate row, bad value."""
