"""The ``expman`` command line.

Each command lives in its own module exposing ``register(subparsers)``; that module imports
torch/lightning only inside the handler of a command that trains, so ``expman --help``,
``expman ls`` and reports start fast.

Conventions every command follows:

* ``--help`` has a description and examples (:func:`describe`).
* Exit codes: 0 success; 1 a runtime failure: a run failed, the database is unreachable or holds
  no such experiment/run/metric, a file could not be written (disk full, permission), an
  optional dependency is missing; 2 bad usage or configuration: an unknown flag, a malformed
  argument or URL, an invalid config file (:class:`~lightning_expman.errors.ConfigError`). Other
  codes are the command's own (``expman run``: 3, 130). Errors are one line on stderr, never a
  traceback (``--debug`` adds it).
* Output piped into a reader that stops early (``expman run ... | head -1``) is cut, not an error:
  the command finishes and keeps its own exit code.
* Table commands take ``--format table|md|csv|json`` (:mod:`lightning_expman.cli_output`).
"""

from __future__ import annotations

import argparse
import importlib
import io
import logging
import os
import sys
import textwrap
import traceback
from collections.abc import Sequence
from typing import IO, Any

from . import __version__
from ._streams import WrappedStream
from .errors import ConfigError, ExpmanError

# Modules contributing subcommands, in the order they appear in --help.
COMMAND_MODULES = (
    "lightning_expman.cli_init",
    "lightning_expman.cli_run",
    "lightning_expman.cli_read",
    "lightning_expman.cli_reproduce",
    "lightning_expman.cli_rm",
)

EXIT_OK, EXIT_RUNTIME, EXIT_USAGE = 0, 1, 2


def describe(description: str, *examples: str) -> dict[str, Any]:
    """``add_parser`` keywords giving a command's ``--help`` its description and examples.

    Paragraphs of ``description`` (separated by blank lines) are wrapped; the examples are shown
    as written, under ``Examples:``.

    Example:
        >>> p = subparsers.add_parser("ls", help="list experiments", **describe(
        ...     "List the experiments of the database.", "expman ls --tag team=vision"))
    """
    paragraphs = [textwrap.fill(" ".join(p.split()), 79) for p in description.strip().split("\n\n")]
    return {
        "description": "\n\n".join(paragraphs),
        "epilog": "Examples:\n" + "\n".join(f"  {e}" for e in examples),
        "formatter_class": argparse.RawDescriptionHelpFormatter,
    }


def exit_code(error: ExpmanError) -> int:
    """The exit code of an error: 2 for usage/configuration (:class:`ConfigError`), 1 otherwise
    (the database, a missing record, a missing optional dependency)."""
    return EXIT_USAGE if isinstance(error, ConfigError) else EXIT_RUNTIME


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="expman",
        **describe(
            "Run YAML-configured PyTorch Lightning experiments and read their results back. "
            "`expman COMMAND --help` describes a command.\n\n"
            "Exit codes: 0 success; 1 a runtime failure (a run failed, the database is unreachable "
            "or has no such experiment/run, a file cannot be written); 2 bad usage or configuration.",
            "expman init my_experiment && expman run my_experiment",
            "expman ls",
            "expman compare my_experiment --metric val_acc --format md",
        ),
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--debug",
        action="store_true",
        help="show tracebacks (errors and library warnings are one line otherwise)",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name != name:
                raise
            continue
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``expman`` console script; returns the exit code.

    Everything the command prints (its own lines, Lightning's and MLflow's warnings, errors) goes
    through :class:`~lightning_expman.masking.MaskingStream`: no secret reaches the console.
    """
    from .masking import MaskingStream

    out, err = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = MaskingStream(_ReaderGoneGuard(out)), MaskingStream(err)
    try:
        return _main(argv)
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):  # a closed pipe: nothing more to show
                pass
        sys.stdout, sys.stderr = out, err


class _ReaderGoneGuard(WrappedStream):
    """stdout whose reader may stop reading (``expman run ... | head -1``): once the pipe is closed,
    the rest of the output goes nowhere and the command goes on to its own exit code (a failed
    run still exits 1). Without it the first write after ``head`` exits raises ``BrokenPipeError``
    wherever it happens: in the middle of a grid, or in the interpreter's last flush (exit 120)."""

    def __init__(self, stream: IO[str]) -> None:
        super().__init__(stream)
        self.gone = False

    def write(self, text: str) -> int:
        if not self.gone:
            try:
                self._stream.write(text)
            except BrokenPipeError:
                self._reader_gone()
        return len(text)

    def flush(self) -> None:
        if not self.gone:
            try:
                self._stream.flush()
            except BrokenPipeError:
                self._reader_gone()

    def _reader_gone(self) -> None:
        self.gone = True
        # Point the descriptor at devnull: what the stream still buffers is flushed there, at exit too.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._stream.fileno())
            os.close(devnull)
        except (OSError, ValueError, io.UnsupportedOperation):
            pass


class _OneLineFormatter(logging.Formatter):
    """``expman: warning: <first line of the message>``: no traceback on the console."""

    def format(self, record: logging.LogRecord) -> str:
        lines = record.getMessage().strip().splitlines() or [""]
        return f"expman: {record.levelname.lower()}: {lines[0]}"


def _console_logging(debug: bool) -> tuple[logging.Logger, logging.Handler, bool]:
    """The package's warnings and errors: one masked line each on stderr (with their traceback
    under ``--debug``). A disk that fills up or a log file that cannot be written must not turn
    the console into pages of tracebacks. Lightning's own console logging is left as it is."""
    from .masking import MaskingFilter

    package = logging.getLogger("lightning_expman")
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(logging.WARNING)
    handler.addFilter(MaskingFilter())
    if not debug:
        handler.setFormatter(_OneLineFormatter())
    package.addHandler(handler)
    propagate, package.propagate = package.propagate, False
    logging.raiseExceptions = debug  # a failing log handler (full disk) reports nothing
    return package, handler, propagate


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return EXIT_USAGE
    raise_exceptions = logging.raiseExceptions
    package, handler, propagate = _console_logging(args.debug)
    try:
        return _call(args)
    finally:
        package.removeHandler(handler)
        package.propagate = propagate
        logging.raiseExceptions = raise_exceptions


def _call(args: argparse.Namespace) -> int:
    try:
        return int(args.handler(args) or 0)
    except ExpmanError as e:  # ConfigError, DatabaseError...: one line, no traceback
        print(f"expman: error: {e}", file=sys.stderr)
        if args.debug:
            traceback.print_exc()
        return exit_code(e)
    except KeyboardInterrupt:
        print("expman: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # Written past the guarded stdout (a stream kept from before main()) to a reader that
        # is gone: the command did not finish, yet a second message would only go nowhere too.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_RUNTIME
    except OSError as e:  # the disk, a permission, a path: a runtime failure, one line
        where = f"{e.filename}: " if e.filename else ""
        print(f"expman: error: {where}{e.strerror or e}", file=sys.stderr)
        if args.debug:
            traceback.print_exc()
        return EXIT_RUNTIME


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
