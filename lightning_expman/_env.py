"""Settings read from environment variables, parsed where they are used (never at import), so a
bad value is a one-line :class:`~lightning_expman.errors.ConfigError` instead of a traceback."""

from __future__ import annotations

import os

from .errors import ConfigError


def env_seconds(name: str, default: float) -> float:
    """``$name`` as a number of seconds >= 0, or ``default`` when it is unset or empty.

    >>> env_seconds("EXPMAN_SOME_UNSET_VARIABLE", 60.0)
    60.0

    Raises:
        ConfigError: the value is not a number >= 0 (``soon``, ``-1``, ``nan``).
    """
    value = os.environ.get(name, "")
    if not value.strip():
        return default
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0:  # also NaN
        raise ConfigError(f"${name} must be a number of seconds >= 0, got {value!r}")
    return seconds
