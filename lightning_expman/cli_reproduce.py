"""``expman reproduce RUN_ID``: fit a recorded run again from its record and compare final metrics.

::

    expman reproduce 17                          # the database of the last `expman run` here
    expman reproduce 17 --db postgresql://me@host/expman --tolerance 1e-6

The new run is recorded in experiment ``<experiment>-reproduce`` tagged ``reproduces=17`` (see
:mod:`lightning_expman.reproduce`). Output: a warning per environment difference (git commit,
Python / torch / lightning versions), then a table of final metrics — recorded, reproduced,
difference. Exit codes: 0 every final metric equal within the tolerance (default 0: exact); 1 one
differs, is missing, or the reproduction did not complete, or the run is unknown or has no record
to rebuild it from; 2 bad usage (a malformed --db URL or --tolerance).

Class paths are imported with the current directory first on ``sys.path``, as for ``expman run``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["register"]


def _tolerance(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text!r}")
    return value


def register(subparsers: Any) -> None:
    """Add the ``reproduce`` command to ``expman``'s subparsers."""
    from .cli import describe
    from .cli_output import add_db

    p = subparsers.add_parser(
        "reproduce",
        help="fit a recorded run again from its record and compare its final metrics",
        **describe(
            "Re-run trial run RUN_ID from its stored record alone (settings or drop-in recipe, "
            "seed) into a new run tagged reproduces=RUN_ID, warn about git commit / library version "
            "differences, and print its final metrics beside the recorded ones. Exit 0 when all "
            "are equal within --tolerance; 1 when one differs, the reproduction failed, or the run "
            "is unknown or has no record to rebuild it from.",
            "expman reproduce 17",
            "expman reproduce 17 --db postgresql://me@host/expman --tolerance 1e-6",
        ),
    )
    p.add_argument("run_id", metavar="RUN_ID", type=int, help="the trial run to reproduce")
    add_db(p)
    p.add_argument(
        "--tolerance",
        type=_tolerance,
        default=0.0,
        metavar="X",
        help="largest absolute difference accepted per metric (default 0: exactly equal)",
    )
    p.add_argument(
        "--workspace",
        default="expman_runs",
        metavar="DIR",
        help="folder of the new run's files (default expman_runs)",
    )
    p.set_defaults(handler=reproduce_command)


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.10g}"


def reproduce_command(args: argparse.Namespace) -> int:
    """Handler of ``expman reproduce``; returns the exit code."""
    from .cli_output import resolve_db
    from .cli_run import make_importable
    from .masking import mask_url
    from .query.render import render
    from .reproduce import reproduce

    make_importable()
    url = resolve_db(args)
    outcome = reproduce(url, args.run_id, workspace=args.workspace, tolerance=args.tolerance)
    for line in outcome.warnings:
        print(f"expman: warning: {line}", file=sys.stderr)
    print(
        f"run {args.run_id} reproduced as run {outcome.run_id} ({outcome.status}) in experiment "
        f"{outcome.experiment!r}, tagged reproduces={args.run_id} ({mask_url(url)})"
    )
    rows = [[name, _num(a), _num(b), "missing" if d is None else _num(d)] for name, a, b, d in outcome.rows]
    print(render(["metric", "recorded", "reproduced", "difference"], rows, right=(1, 2, 3)))
    bad = sum(
        1 for _, a, b, d in outcome.rows if (a, b) != (None, None) and (d is None or abs(d) > args.tolerance)
    )
    ok = outcome.ok and outcome.status in ("COMPLETED", "STOPPED")
    if ok:
        print(f"all {len(outcome.rows)} final metrics equal (tolerance {args.tolerance:g})")
        return 0
    if outcome.status not in ("COMPLETED", "STOPPED"):
        print(f"expman: the reproduction ended {outcome.status}", file=sys.stderr)
    else:
        print(
            f"expman: {bad} of {len(outcome.rows)} final metrics differ (tolerance {args.tolerance:g})",
            file=sys.stderr,
        )
    return 1
