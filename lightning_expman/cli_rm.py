"""``expman rm``: delete an experiment, some of its runs, or its failed runs.

::

    expman rm digits --failed --dry-run     # what would go: FAILED, ABORTED and LOST runs
    expman rm digits --failed               # asks first on a terminal; --yes in scripts
    expman rm --run 12 13 --artifacts       # two runs, and their files (checkpoints...) on disk
    expman rm digits --yes                  # the whole experiment

A run still RUNNING under a live lease is never deleted. Deleted units of a grid are free again:
the next ``expman run`` runs them anew. Without ``--artifacts`` files on disk stay where they are.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from .errors import ConfigError

__all__ = ["register"]

FAILED_STATUSES = ("FAILED", "ABORTED", "LOST")


def register(subparsers: Any) -> None:
    """Add the ``rm`` command to ``expman``'s subparsers."""
    from .cli import describe
    from .cli_output import add_db

    p = subparsers.add_parser(
        "rm",
        help="delete an experiment, some of its runs, or its failed runs",
        **describe(
            "Delete an experiment (all its trials and runs), --run IDs, or with --failed its "
            "FAILED/ABORTED/LOST runs, with every row recorded for them; --artifacts also deletes "
            "their files. Running runs are never deleted (exit 1). Asks first on a terminal; "
            "--yes in scripts.",
            "expman rm digits --failed --dry-run",
            "expman rm --run 12 13 --artifacts --yes",
        ),
    )
    p.add_argument("experiment", metavar="EXPERIMENT", nargs="?", help="experiment title or id")
    p.add_argument(
        "--run", dest="runs", nargs="+", type=int, default=[], metavar="RUN_ID", help="runs to delete"
    )
    p.add_argument(
        "--failed", action="store_true", help="only the experiment's FAILED, ABORTED and LOST runs"
    )
    p.add_argument("--artifacts", action="store_true", help="also delete the recorded files (checkpoints...)")
    p.add_argument("--dry-run", action="store_true", help="show what would be deleted, delete nothing")
    p.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    add_db(p)
    p.set_defaults(handler=rm_command)


def _check(args: argparse.Namespace) -> None:
    """Usage errors, found before the database is opened."""
    if args.runs and (args.experiment or args.failed):
        raise ConfigError("expman rm: give --run IDs, or an EXPERIMENT (with or without --failed), not both")
    if not args.runs and not args.experiment:
        raise ConfigError("expman rm: name an EXPERIMENT or --run RUN_ID ...")


def _plan(db: Any, args: argparse.Namespace) -> tuple[str, Any]:
    """(what, deletion function) for the arguments."""
    if args.runs:
        return f"{len(args.runs)} run(s)", lambda dry: db.delete_runs(args.runs, dry_run=dry)
    with db.query() as q:
        exp = q.experiment(args.experiment)
        if args.failed:
            runs = q.runs(exp["id"], statuses=list(FAILED_STATUSES)).rows
            ids = [r["run_id"] for r in runs]
            return (
                f"{len(ids)} failed/aborted/lost run(s) of experiment {exp['title']!r}",
                lambda dry: db.delete_runs(ids, dry_run=dry),
            )
    return f"experiment {exp['title']!r} (id {exp['id']})", lambda dry: db.delete_experiment(
        exp["id"], dry_run=dry
    )


def rm_command(args: argparse.Namespace) -> int:
    """Handler of ``expman rm``."""
    from .cli_output import resolve_db
    from .db import DatabaseManager

    _check(args)
    url = resolve_db(args)
    with DatabaseManager(url) as db:
        what, delete = _plan(db, args)
        plan = delete(True)
        files = [p for p in plan.artifacts if os.path.exists(p)] if args.artifacts else []
        summary = (
            f"{what}: {len(plan.runs)} run(s), {len(plan.trials)} trial(s), {plan.metrics} metric value(s), "
            f"{len(plan.artifacts)} artifact record(s)"
            + (f", {len(files)} file(s) on disk" if args.artifacts else "")
        )
        if args.dry_run or not (plan.runs or plan.trials or plan.experiments):
            print(("would delete " if args.dry_run else "nothing to delete: ") + summary)
            for path in files:
                print(f"  {path}")
            return 0
        if not args.yes:
            if not sys.stdin.isatty():
                raise ConfigError(
                    f"expman rm: would delete {summary}; pass --yes to confirm without a prompt"
                )
            if input(f"delete {summary}? [y/N] ").strip().lower() not in ("y", "yes"):
                print("nothing deleted")
                return 0
        delete(False)
    removed = 0
    for path in files:
        try:
            os.remove(path)
            removed += 1
        except OSError as e:
            print(f"expman: warning: could not delete {path}: {e.strerror}", file=sys.stderr)
    print(f"deleted {summary}" + (f" ({removed} file(s) removed)" if args.artifacts else ""))
    return 0
