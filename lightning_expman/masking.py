"""Secret masking, one rule for the whole package: saved configs, stored rows, reprs and errors.

A password never reaches a log line, a repr, an exception, a saved config or the database:
configs are masked before they are written (:mod:`lightning_expman.config`, the workspace), rows
before they are stored (:mod:`lightning_expman.db`), URLs before they are shown.

Example:
    >>> mask_url("mysql://root:pw@127.0.0.1:3306/db")
    'mysql://root:***@127.0.0.1:3306/db'
    >>> mask_secrets({"db": {"url": "postgresql://me:pw@host/db", "password": "pw", "tokenizer": "bpe"}})
    {'db': {'url': 'postgresql://me:***@host/db', 'password': '***', 'tokenizer': 'bpe'}}
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["MASK", "is_secret_key", "mask_secrets", "mask_url"]

MASK = "***"

# Whole words at the end of a key: "db_password", "api-key", "aws.secret_key"; not "tokenizer".
_SECRET_KEY = re.compile(
    r"(?:^|[_\-.])(password|passwd|pwd|secret|token|api_?key|access_?key|secret_?key)$", re.IGNORECASE
)

# scheme://user:password@  -> scheme://user:***@   (works on strings that are not valid URLs too).
# The password part is greedy up to the LAST "@" before the host, as urlsplit reads "u:p@ss@host".
_PASSWORD_RE = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^:/?#@\s]*):(?P<pw>[^/\s]*)@")


def is_secret_key(key: Any) -> bool:
    """True for keys holding credentials: ``password``, ``db_password``, ``api_key``, ``token``..."""
    return isinstance(key, str) and _SECRET_KEY.search(key) is not None


def mask_url(text: str) -> str:
    """``text`` with the password of every ``scheme://user:password@host`` replaced by ``***``.

    Works on any string, including invalid URLs and messages that merely contain a URL.
    """
    return _PASSWORD_RE.sub(lambda m: f"{m['head']}:{MASK}@", str(text))


def mask_secrets(value: Any) -> Any:
    """A copy of ``value`` (nested mappings/lists) with secrets replaced by ``***``.

    Values of password-like keys are masked (unless empty/None) and passwords inside URLs too.
    """
    if isinstance(value, Mapping):
        return {
            k: (MASK if is_secret_key(k) and v not in (None, "") else mask_secrets(v))
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [mask_secrets(v) for v in value]
    if isinstance(value, str):
        return mask_url(value)
    return value
