"""Writing a file the user named (``expman export -o``, ``expman report -o``): checked, atomic.

:func:`output_file` refuses an empty name and an existing folder before anything is read or
written (:class:`~lightning_expman.errors.ConfigError`, exit 2), and yields where to write: a
temporary file beside the target, renamed over it only once complete, so a full disk or an
interrupted export never leaves half a file. Targets that are not regular files (``/dev/stdout``,
``/dev/full``, a ``/proc`` entry) are written in place. An ``OSError`` (no space, permission,
read-only file system) propagates with its file name: the CLI prints it as one line, exit 1.

Example:
    >>> with output_file("out/runs.csv") as tmp:
    ...     tmp.write_text("a,b\\n", encoding="utf-8")
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ..errors import ConfigError

__all__ = ["check_output_path", "output_file"]


def check_output_path(
    path: str | os.PathLike[str], option: str = "--output", example: str = "runs.csv"
) -> Path:
    """``path`` as a Path, or a one-line :class:`ConfigError` naming ``option`` and the value."""
    text = os.fspath(path)
    if not str(text).strip():
        raise ConfigError("must name a file, got ''", key=option)
    target = Path(text)
    if target.is_dir():
        raise ConfigError(
            f"{text!r} is a folder; name a file in it, e.g. {str(target / example)!r}", key=option
        )
    for parent in target.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ConfigError(f"{text!r}: {str(parent)!r} is a file, not a folder", key=option)
            break
    return target


@contextlib.contextmanager
def output_file(
    path: str | os.PathLike[str], option: str = "--output", example: str = "runs.csv"
) -> Iterator[Path]:
    """Check ``path`` (:func:`check_output_path`), create its folder, yield the path to write to.

    Raises:
        ConfigError: see :func:`check_output_path`.
        OSError: writing failed; ``filename`` is the target (not the temporary file).
    """
    target = check_output_path(path, option, example)
    tmp: Path | None = None
    try:
        if target.exists() and not target.is_file():  # a device: no rename possible
            yield target
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        os.close(fd)
        tmp = Path(tmp_name)
        yield tmp
        os.replace(tmp, target)
    except OSError as e:
        raise OSError(e.errno, f"cannot write the file: {e.strerror or e}", str(target)) from e
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
