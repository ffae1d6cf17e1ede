"""The ``expman`` command line.

Each command lives in its own module exposing ``register(subparsers)``; that module imports
torch/lightning only inside the handler of a command that trains, so ``expman --help``,
``expman ls`` and reports start fast.

Exit codes: 0 success; 1 a run failed, or a file or folder could not be written (disk full,
permission); 2 bad configuration or usage. Errors are one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import traceback
from collections.abc import Sequence

from . import __version__
from .errors import ExpmanError

# Modules contributing subcommands, in the order they appear in --help.
COMMAND_MODULES = (
    "lightning_expman.cli_init",
    "lightning_expman.cli_run",
    "lightning_expman.cli_read",
    "lightning_expman.cli_reproduce",
    "lightning_expman.cli_rm",
)

EXIT_OK, EXIT_RUNTIME, EXIT_USAGE = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="expman",
        description="Run YAML-configured PyTorch Lightning experiments and read their results back.",
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
    sys.stdout, sys.stderr = MaskingStream(out), MaskingStream(err)
    try:
        return _main(argv)
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):  # a closed pipe: nothing more to show
                pass
        sys.stdout, sys.stderr = out, err


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
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("expman: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # Output piped into `head` & co. that stopped reading: not an error. Point stdout at
        # devnull so the interpreter's final flush doesn't raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except OSError as e:  # the disk, a permission, a path: a runtime failure, one line
        where = f"{e.filename}: " if e.filename else ""
        print(f"expman: error: {where}{e.strerror or e}", file=sys.stderr)
        if args.debug:
            traceback.print_exc()
        return EXIT_RUNTIME


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
