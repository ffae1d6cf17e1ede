"""A disk cache for what :mod:`.classpath` reads from source, so a fresh ``expman run --dry-run``
does not parse Lightning's ``trainer.py`` (and the other modules class paths point into) again.

Entries live in ``$XDG_CACHE_HOME/lightning_expman/classpath`` (``~/.cache/...`` by default), one
pickle per parsed module, keyed by the module name, the file's path, size and modification time,
the Python version and the code that builds the entry (``classpath.py`` itself), so an edited or
upgraded file, or a new version of this package, is parsed again. Like ``__pycache__``, it is a
cache only: any failure to read or write it is ignored and the source is parsed as without it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
import sys
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["load", "store"]

_BUILDER = Path(__file__).with_name("classpath.py")


def _folder() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "lightning_expman" / "classpath"


def _entry(module: str, file: str) -> Path | None:
    try:
        stat, builder = os.stat(file), os.stat(_BUILDER)
    except OSError:
        return None
    key = "|".join(
        map(
            str,
            # classpath.py's path too: two checkouts never share entries built by different code.
            (
                module,
                file,
                stat.st_size,
                stat.st_mtime_ns,
                _BUILDER,
                builder.st_size,
                builder.st_mtime_ns,
                sys.version,
            ),
        )
    )
    return _folder() / f"{hashlib.sha1(key.encode(), usedforsecurity=False).hexdigest()}.pickle"


def load(module: str, file: str) -> Any | None:
    """The cached entry of ``module`` read from ``file``, or None."""
    path = _entry(module, file)
    if path is None:
        return None
    try:
        with open(path, "rb") as f:
            return pickle.load(f)
    except Exception:  # missing, truncated, from an incompatible version: parse again
        return None


def store(module: str, file: str, value: Any) -> None:
    """Cache ``value`` for ``module`` read from ``file`` (written atomically; errors ignored)."""
    path = _entry(module, file)
    if path is None:
        return
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            pickle.dump(value, f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)
    except Exception:  # read-only home, full disk: the cache is optional
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
