"""Per-folder CLI state: which database the last ``expman run`` in this folder used.

``expman run`` calls :func:`remember_db_url`; read commands (``ls``, ``show``...) default to
:func:`default_db_url`. A URL carrying a password is never written: the read commands then
need ``--db`` (or ``EXPMAN_DB``) again.
"""

from __future__ import annotations

import os
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
    tmp = path.with_suffix(".tmp")
    tmp.write_text(url + "\n", encoding="utf-8")
    os.replace(tmp, path)  # atomic: a reader never sees half a URL


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
