"""The ``expman`` command line.

Each command lives in its own module exposing ``register(subparsers)``; that module imports
torch/lightning only inside the handler of a command that trains, so ``expman --help``,
``expman ls`` and reports start fast.

Exit codes: 0 success; 1 a run failed; 2 bad configuration or usage (one line on stderr, no traceback).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from . import __version__
from .errors import ExpmanError

# Modules contributing subcommands, in the order they appear in --help.
COMMAND_MODULES = ("lightning_expman.cli_run", "lightning_expman.cli_read", "lightning_expman.cli_reproduce")

EXIT_OK, EXIT_USAGE = 0, 2  # 1 (a run failed) comes from `expman run` itself


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="expman",
        description="Run YAML-configured PyTorch Lightning experiments and read their results back.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
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
    """Entry point of the ``expman`` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args.handler(args) or 0)
    except ExpmanError as e:  # ConfigError, DatabaseError...: one line, no traceback
        print(f"expman: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("expman: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # Output piped into `head` & co. that stopped reading: not an error. Point stdout at
        # devnull so the interpreter's final flush doesn't raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
