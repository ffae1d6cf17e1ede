"""Per-folder CLI state: which database the last ``expman run`` in this folder used.

``expman run`` calls :func:`remember_db_url`; read commands (``ls``, ``show``...) default to
:func:`default_db_url`. A URL carrying a password is never written: the read commands then
need ``--db`` (or ``EXPMAN_DB``) again.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["DEFAULT_DB_URL", "STATE_FILE", "default_db_url", "remember_db_url"]

DEFAULT_DB_URL = "sqlite:///expman_runs/expman.db"
STATE_FILE = Path(".expman") / "last_db"


def remember_db_url(url: str, cwd: str | Path | None = None) -> None:
    """Record ``url`` as this folder's default database, unless it holds a password."""
    from .db.connect import parse_url

    if parse_url(url).password:
        return
    path = Path(cwd or ".") / STATE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    # A temporary file of its own: launchers started together in one folder all write here.
    fd, tmp = tempfile.mkstemp(prefix=".last_db.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(url + "\n")
        os.replace(tmp, path)  # atomic: a reader never sees half a URL
    finally:
        Path(tmp).unlink(missing_ok=True)


def default_db_url(cwd: str | Path | None = None) -> str:
    """``$EXPMAN_DB``, else the URL the last ``expman run`` here used, else :data:`DEFAULT_DB_URL`."""
    if os.environ.get("EXPMAN_DB"):
        return os.environ["EXPMAN_DB"]
    path = Path(cwd or ".") / STATE_FILE
    if path.is_file():
        url = path.read_text(encoding="utf-8").strip()
        if url:
            return url
    return DEFAULT_DB_URL
