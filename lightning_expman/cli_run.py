"""``expman run CONFIG_DIR``: execute every trial x repeat of a config folder.

::

    expman run configs/digits                          # the whole grid, serially; run again: only
                                                       # what is unfinished (failed, aborted, crashed)
    expman run configs/digits --workers 2              # two local worker processes
    expman run configs/digits --set trainer.max_epochs=2 --set seed=7
    expman run configs/digits --dry-run                # list the expanded runs, run nothing
    expman run configs/digits --no-resume --force      # record the whole grid again as new runs
    expman run configs/digits --db postgresql://me@host/expman
    expman run configs/digits --db mysql://me@db/expman --wait   # one of many launchers
    expman run configs/digits --db mysql://me@db/expman --executor ray --address auto

Any number of ``expman run`` processes on any hosts pointed at one database split the grid: each
(trial, repeat) is claimed in the database before it runs (see ``lightning_expman.coordination``).

Output: on a terminal, a live display (the grid's progress bar with running/failed counts and
ETA, and per running run its epoch, validation metrics and speed); otherwise one line per run
this process runs (``[3/8] mlp-lr=0.1-hidden=32 run 1/2 seed 43 COMPLETED 4.2s``); then a summary
table. ``--quiet`` shows only the summary, ``--json`` one JSON object per finished run. Exit codes:
0 the whole grid completed or stopped early; 1 a run failed or was lost (here or in another
process); 2 bad configuration or usage (one line on stderr, nothing written); 3 nothing left to
claim here but runs still in progress in other processes (run again later, or pass ``--wait``); 130
interrupted (Ctrl-C: the current runs are recorded ABORTED; running the command again continues).

Class paths are imported like ``python -m`` does: the current directory comes first on ``sys.path``,
so ``examples.digits.model.DigitsMLP`` works from the repository root; the config folder comes next,
so a ``model.py`` beside the YAML files is ``model.MyModel``.

``--dry-run`` and ``--help`` import neither torch nor lightning.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

__all__ = ["register"]


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds > 0, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a number of seconds > 0, got {text!r}")
    return value


def register(subparsers: Any) -> None:
    """Add the ``run`` command to ``expman``'s subparsers."""
    from .cli import describe

    parser = subparsers.add_parser(
        "run",
        help="run every trial x repeat of a config folder",
        **describe(
            "Run the experiment described by CONFIG_DIR (env.yaml, experiment.yaml, base.yaml, "
            "trials.yaml): every trial x repeat is one Lightning fit recorded in the database. "
            "The current directory is importable for class paths. Several expman run processes "
            "pointed at one database split the grid (each run is claimed in the database).\n\n"
            "Exit codes: 0 the whole grid completed or stopped early; 1 a run failed or was lost, "
            "or the database failed; 2 bad configuration or usage; 3 runs still in progress in "
            "other processes; 130 interrupted. Output piped into a reader that stops early "
            "(| head) does not change the exit code.",
            "expman run configs/digits",
            "expman run configs/digits --set trainer.max_epochs=2 --workers 2",
            "expman run configs/digits --dry-run",
            "expman run configs/digits --db mysql://me@db/expman --wait",
        ),
    )
    parser.add_argument(
        "config_dir", metavar="CONFIG_DIR", help="folder with env/experiment/base/trials.yaml"
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a setting for every trial (repeatable), e.g. --set trainer.max_epochs=2",
    )
    parser.add_argument(
        "--resume",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="skip runs already completed or stopped and re-run failed, aborted and crashed ones (the "
        "default); --no-resume refuses an experiment that already has runs",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="resuming: accept a changed configuration; with --no-resume: record the grid again as new runs",
    )
    parser.add_argument(
        "--workers", type=_positive_int, default=1, metavar="N", help="local worker processes (default 1)"
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="list the expanded runs (trial, repeat, seed, params) and exit"
    )
    parser.add_argument("--db", metavar="URL", help="database URL replacing env.yaml's db tracker url")
    parser.add_argument("--fail-fast", action="store_true", help="stop after the first failed run")
    parser.add_argument(
        "--stale-after",
        type=_positive_float,
        default=None,
        metavar="SECONDS",
        help="lease of the runs started here: a run silent (no heartbeat) for longer is declared LOST "
        "by the next process that looks, and run again (default 120)",
    )
    parser.add_argument(
        "--executor",
        choices=("local", "ray"),
        default="local",
        help="where runs execute: local (this process, or --workers processes; default) or ray (one Ray "
        "task per run, with the resources the trial's settings.resources ask for)",
    )
    parser.add_argument(
        "--address",
        metavar="ADDRESS",
        help="--executor ray: the cluster (auto, or ray://host:10001); default: start a local Ray instance",
    )
    output = parser.add_mutually_exclusive_group()
    output.add_argument(
        "--quiet", "-q", action="store_true", help="no progress while running, only the summary at the end"
    )
    output.add_argument(
        "--json",
        action="store_true",
        help="one JSON object per finished run on stdout (the summary line goes to stderr)",
    )
    parser.add_argument(
        "--wait",
        action="store_true",
        help="when nothing is left to claim but runs are in progress in other processes, wait for them "
        "and take over any that are lost (default: exit with code 3)",
    )
    parser.add_argument(
        "--restart",
        action="store_true",
        help="start interrupted runs (aborted, lost, failed by a fault) over as new runs instead of "
        "continuing each from its last checkpoint",
    )
    parser.set_defaults(handler=run_command)


def make_importable(config_dir: str | os.PathLike[str] | None = None) -> None:
    """Class paths resolve from the current directory first (as ``python -m`` does), then from the
    config folder (a ``model.py`` beside the YAML files, as ``expman init`` writes)."""
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    if config_dir is None:
        return
    folder = os.path.abspath(config_dir)
    if os.path.isdir(folder) and folder not in sys.path:
        sys.path.insert(sys.path.index(cwd) + 1, folder)


def dry_run_lines(spec: Any) -> list[str]:
    """The ``--dry-run`` listing: a header, then one line per run with its seed and grid values."""
    from .experiment import spec_db_url

    runs = spec.runs()
    db = spec_db_url(spec)
    lines = [
        f"experiment {spec.name!r}: {len(spec.trials)} trials, {len(runs)} runs "
        f"(workspace {spec.workspace}, database {_mask(db)})"
    ]
    total = len(runs)
    for i, run in enumerate(runs, 1):
        trial = run.trial
        params = " ".join(f"{k}={v}" for k, v in trial.params.items())
        line = f"[{i}/{total}] {trial.name} run {run.repeat_idx}/{trial.repeat} seed {run.seed}"
        lines.append(f"{line}  {params}" if params else line)
    for template, search in getattr(spec, "searches", []):  # searched trials: space and budget
        lines.append(f"search {template.name}: {template.repeat} repeat(s) per trial, seed {template.seed}")
        lines.extend(f"  {line}" for line in search.describe())
    return lines


def _mask(url: str | None) -> str:
    if not url:
        return "none"
    from .masking import mask_url

    return mask_url(url)


def run_command(args: argparse.Namespace) -> int:
    """Handler of ``expman run``; returns the exit code (ConfigError -> 2 is handled by the caller)."""
    make_importable(args.config_dir)
    from .config import load

    spec = load(args.config_dir, overrides=list(args.overrides), db_url=args.db)
    if args.dry_run:
        sys.stdout.write("\n".join(dry_run_lines(spec)) + "\n")
        return 0

    from ._state import remember_db_url
    from .enums import RunStatus
    from .errors import DatabaseError
    from .experiment import DEFAULT_STALE_AFTER, Experiment
    from .progress import make_display

    experiment = Experiment(spec)
    display = make_display(
        sys.stdout, total=len(spec.runs()), name=spec.name, quiet=args.quiet, json_lines=args.json
    )
    try:
        summary = experiment.run(
            resume=args.resume,
            workers=args.workers,
            fail_fast=args.fail_fast,
            force=args.force,
            stale_after=args.stale_after or DEFAULT_STALE_AFTER,
            wait=args.wait,
            executor=args.executor,
            address=args.address,
            on_result=display.finished,
            on_progress=display.progress,
            continue_runs=not args.restart,
        )
    except DatabaseError as e:  # the database failed while the grid ran: a runtime failure
        print(f"expman: error: {e}", file=sys.stderr)
        return 1
    finally:
        display.close()
    if experiment.db_url:
        remember_db_url(experiment.db_url)
    if args.json:  # stdout holds only the runs' JSON lines
        print(summary.totals_line(), file=sys.stderr)
    else:
        print()
        print(summary.table(), flush=True)
    if summary.interrupted:
        print(
            "expman: interrupted; the runs in progress are recorded ABORTED (run again to continue)",
            file=sys.stderr,
        )
    if summary.exit_code == 3:
        running = summary.elsewhere.get(RunStatus.RUNNING, 0)
        print(
            f"expman: {running} run(s) still in progress in other processes; the grid is not finished "
            "(run again later, or pass --wait)",
            file=sys.stderr,
        )
    return summary.exit_code
