"""Secret masking, one rule for the whole package: what the project writes or prints.

The rule: a secret is (1) the value of a password-like key (``password``, ``db_password``,
``api_key``, ``token``...), (2) the password of a ``scheme://user:password@host`` URL, and (3)
any text equal to a secret seen by (1) or (2) in a loaded configuration (:func:`remember_secrets`),
wherever it appears later (a hyperparameter under an innocent name, a library's warning quoting
it, an exception message). Secrets are replaced by ``***``. Rule (3) matches whole words only
(a remembered ``test1234`` is masked in ``key test1234`` and ``u:test1234@h``, not inside
``test1234_loss``), and values shorter than :data:`MIN_SECRET_LEN` characters are masked by (1)
and (2) but not searched for by (3): replacing every ``1234`` in a log would garble it.

Where the rule is applied (each boundary where the package writes or prints):

* saved configs (:mod:`lightning_expman.config`, the workspace) and database rows
  (:mod:`lightning_expman.db`) -- :func:`mask_secrets`;
* every tracker's output: MLflow params and tags, TensorBoard hparams, log files -- :func:`mask_secrets`
  / :func:`mask_text`; the drop-in logger masks ``save_hyperparameters`` values before any tracker
  sees them;
* log files written with stdlib logging (the workspace's experiment/trial/run logs, Lightning's
  lines copied there) -- :class:`MaskingFilter` on their handlers;
* the console of the ``expman`` command (:class:`MaskingStream`): its own lines, Lightning's and
  MLflow's warnings, error messages;
* URLs shown in messages and reprs -- :func:`mask_url`.

Checkpoints written by Lightning keep the model's own ``hyper_parameters`` (the user's
``save_hyperparameters`` call puts them there; loading the model needs them): keep secrets out of
a model's ``__init__`` arguments, or pass ``ignore=[...]`` to ``save_hyperparameters``.

Example:
    >>> mask_url("mysql://root:pw@127.0.0.1:3306/db")
    'mysql://root:***@127.0.0.1:3306/db'
    >>> mask_secrets({"db": {"url": "postgresql://me:pw@host/db", "password": "pw", "tokenizer": "bpe"}})
    {'db': {'url': 'postgresql://me:***@host/db', 'password': '***', 'tokenizer': 'bpe'}}
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Mapping
from typing import Any, TextIO

from ._streams import WrappedStream

__all__ = [
    "MASK",
    "MIN_SECRET_LEN",
    "MaskingFilter",
    "MaskingStream",
    "is_secret_key",
    "mask_secrets",
    "mask_text",
    "mask_url",
    "remember_secrets",
]

MASK = "***"

MIN_SECRET_LEN = 6
"""Remembered secrets shorter than this are not searched for in free text (see the module docstring)."""

# Whole words at the end of a key: "db_password", "api-key", "aws.secret_key"; not "tokenizer".
_SECRET_KEY = re.compile(
    r"(?:^|[_\-.])(password|passwd|pwd|secret|token|api_?key|access_?key|secret_?key)$", re.IGNORECASE
)

# scheme://user:password@  -> scheme://user:***@   (works on strings that are not valid URLs too).
# The password part is greedy up to the LAST "@" before the host, as urlsplit reads "u:p@ss@host".
_PASSWORD_RE = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^:/?#@\s]*):(?P<pw>[^/\s]*)@")

_known: set[str] = set()  # secrets seen in loaded configurations (rule 3)
_known_re: re.Pattern[str] | None = None
_lock = threading.Lock()


def is_secret_key(key: Any) -> bool:
    """True for keys holding credentials: ``password``, ``db_password``, ``api_key``, ``token``..."""
    return isinstance(key, str) and _SECRET_KEY.search(key) is not None


def mask_url(text: str) -> str:
    """``text`` with the password of every ``scheme://user:password@host`` replaced by ``***``.

    Works on any string, including invalid URLs and messages that merely contain a URL.
    """
    return _PASSWORD_RE.sub(lambda m: f"{m['head']}:{MASK}@", str(text))


def mask_text(text: str) -> str:
    """``text`` with URL passwords and every remembered secret replaced by ``***``."""
    text = mask_url(text)
    pattern = _known_re
    return pattern.sub(MASK, text) if pattern is not None else text


def mask_secrets(value: Any) -> Any:
    """A copy of ``value`` (nested mappings/lists) with secrets replaced by ``***``.

    Values of password-like keys are masked (unless empty/None); strings anywhere go through
    :func:`mask_text` (URL passwords, remembered secrets).
    """
    if isinstance(value, Mapping):
        return {
            k: (MASK if is_secret_key(k) and v not in (None, "") else mask_secrets(v))
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [mask_secrets(v) for v in value]
    if isinstance(value, str):
        return mask_text(value)
    return value


def remember_secrets(value: Any) -> None:
    """Remember the secrets of a configuration tree, so :func:`mask_text` masks them anywhere.

    Collects the (string) values of password-like keys and the passwords of URLs, at any depth.
    Called by :func:`lightning_expman.config.load` for every file it reads and by the drop-in
    logger for the hyperparameters it is given.
    """
    found: set[str] = set()
    _collect(value, found)
    # "${oc.env:TOKEN}" is not the secret: its resolved value is remembered after resolution.
    found = {s for s in found if len(s) >= MIN_SECRET_LEN and s != MASK and "${" not in s}
    global _known_re
    with _lock:
        if found <= _known:
            return
        _known.update(found)
        ordered = sorted(_known, key=len, reverse=True)  # longest first: no partial leftovers
        _known_re = re.compile(r"(?<!\w)(?:" + "|".join(re.escape(s) for s in ordered) + r")(?!\w)")


def _collect(value: Any, found: set[str]) -> None:
    if isinstance(value, Mapping):
        for k, v in value.items():
            if is_secret_key(k) and isinstance(v, (str, int)) and not isinstance(v, bool):
                found.add(str(v))
            _collect(v, found)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _collect(v, found)
    elif isinstance(value, str):
        found.update(m["pw"] for m in _PASSWORD_RE.finditer(value) if m["pw"])


class MaskingFilter(logging.Filter):
    """A logging filter (for handlers) that masks a record's message and traceback text.

    Example:
        >>> handler = logging.FileHandler("run.log")
        >>> handler.addFilter(MaskingFilter())
    """

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = mask_text(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_text(record.exc_text)
        return True


class MaskingStream(WrappedStream):
    """A text stream writing :func:`mask_text` of everything to ``stream`` (the ``expman`` console).

    Text is masked line by line (a partial line waits for its end — a newline, or a carriage
    return for progress bars that redraw in place — or for :meth:`flush`), so a secret split
    across two ``write`` calls is still found. Other attributes (``fileno``,
    ``isatty``, ``encoding``) are the wrapped stream's.
    """

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self._pending = ""

    def write(self, text: str) -> int:
        self._pending += text
        # A line ends at "\n", or at "\r" for what redraws itself in place (progress bars).
        end = max(self._pending.rfind("\n"), self._pending.rfind("\r")) + 1
        if end:
            done, self._pending = self._pending[:end], self._pending[end:]
            self._stream.write(mask_text(done))
        return len(text)

    def flush(self) -> None:
        if self._pending:
            pending, self._pending = self._pending, ""
            self._stream.write(mask_text(pending))
        self._stream.flush()
