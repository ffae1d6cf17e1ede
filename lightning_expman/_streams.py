"""A text stream that writes through another one: the base of the console's stream wrappers.

``expman`` wraps its console twice: :class:`~lightning_expman.masking.MaskingStream` masks
secrets, and the CLI's reader-gone guard survives ``| head``. Both pass everything they do not
change (``fileno``, ``isatty``, ``encoding``, any other attribute) to the stream they wrap, so a
progress bar or Lightning still sees the terminal they write to.

Example:
    >>> import io
    >>> class Upper(WrappedStream):
    ...     def write(self, text):
    ...         return self._stream.write(text.upper())
    >>> out = io.StringIO()
    >>> Upper(out).write("ok")
    2
    >>> out.getvalue()
    'OK'
"""

from __future__ import annotations

import io
from typing import IO, Any

__all__ = ["WrappedStream"]


class WrappedStream(io.TextIOBase):
    """A writable text stream over ``stream``; subclasses define ``write`` (and ``flush``)."""

    def __init__(self, stream: IO[str]) -> None:
        super().__init__()
        self._stream = stream

    @property
    def wrapped(self) -> IO[str]:
        """The stream written to."""
        return self._stream

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._stream.fileno()

    def isatty(self) -> bool:
        return self._stream.isatty()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self._stream, "encoding", "utf-8")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)
