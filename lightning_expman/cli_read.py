"""Read commands of the ``expman`` CLI: ``ls``, ``show``, ``compare``, ``diff``, ``export``, ``report``.

Every command takes ``--db URL`` (default: ``$EXPMAN_DB``, else the database the last
``expman run`` in this folder used, else ``sqlite:///expman_runs/expman.db``); the table commands
(``ls``, ``show``, ``compare``, ``diff``) take ``--format table|md|csv|json`` (``--json`` for
short). Tables fit the terminal (80-120 columns). ``show`` lives in :mod:`.cli_show`, the shared
options and output in :mod:`.cli_output`.

Examples::

    expman ls --tag team=vision
    expman show digits            # an experiment: trials, runs, final metrics
    expman show 12                # a run: config, metrics (final/best/per-label), artifacts, environment
    expman compare digits --metric val_loss --mode min --format md
    expman diff 12 15
    expman export digits --format parquet -o runs.parquet
    expman report digits -o report.html --metric val_acc
    expman report --run 12 -o run12.html
    expman report --runs 12 15 18 -o cmp.html

Exit codes: 0 success; 1 the database cannot be read or has no such experiment, run or metric, or
the output file cannot be written; 2 a malformed argument (flag, run id, tag, URL, output path).
This module imports neither torch nor lightning (nor plotly/pandas until a command needs them).
"""

from __future__ import annotations

import argparse
from typing import Any

from . import cli_show
from .cli_output import (
    Output,
    add_db,
    add_format,
    add_mode,
    add_tag,
    mean_std_text,
    open_query,
    run_ref,
    short_keys,
    status_text,
    tags_text,
    with_db,
)
from .errors import ConfigError

__all__ = ["register"]


# --------------------------------------------------------------------------- commands


def _cmd_ls(args: argparse.Namespace) -> int:
    out = Output(args.format)
    with open_query(args) as q:
        table = q.experiments(tags=args.tag)
    if out.is_json:
        out.json(table.to_records())
        return 0
    if not table.rows and out.format != "csv":
        out.say("no experiments" + (f" with tags {' '.join(args.tag)}" if args.tag else "") + f" in {q.name}")
        return 0
    rows = [
        [
            r["id"],
            r["title"],
            r["trials"],
            r["runs"],
            status_text(r["statuses"]),
            r["start_time"],
            tags_text(r["tags"]),
        ]
        for r in table.rows
    ]
    # Statuses and dates are read in full: the title and the tags give way.
    headers = ["ID", "EXPERIMENT", "TRIALS", "RUNS", "STATUS", "STARTED", "TAGS"]
    out.table(headers, rows, main=True, keep=(0, 2, 3, 4, 5))
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    out = Output(args.format)
    statuses = None if args.all else ("COMPLETED", "STOPPED")
    with open_query(args) as q:
        table = q.trial_summary(
            args.experiment, args.metric, args.mode, value=args.value, statuses=statuses, tags=args.tag
        )
    meta = table.meta
    if out.is_json:
        out.json({"meta": meta, "trials": table.to_records()})
        return 0
    keys = meta["differing_params"]
    short = short_keys(keys)
    metric = meta["metric"].upper()
    if out.format == "csv":  # raw numbers, one per column
        headers = [
            "TRIAL",
            *[short[k].upper() for k in keys],
            f"{metric} MEAN",
            "STD",
            "N",
            "BEST RUN",
            "BEST",
        ]
        rows = [
            [
                r["trial"],
                *[r["params"].get(k) for k in keys],
                *(r["mean"], r["std"], r["n"], r["best_run_id"], r["best_run_value"]),
            ]
            for r in table.rows
        ]
        out.table(headers, rows, main=True)
        return 0
    headers = ["", "TRIAL", *[short[k].upper() for k in keys], f"{metric} mean ± std (n)", "BEST RUN"]
    rows = [
        [
            "*" if r["is_best"] else "",
            r["trial"],
            *[r["params"].get(k) for k in keys],
            mean_std_text(r["mean"], r["std"], r["n"]),
            f"{r['best_run_id']} ({_fmt(r['best_run_value'])})",
        ]
        for r in table.rows
    ]
    counted = "all runs" if args.all else "completed/stopped runs"
    out.say(
        f"{meta['experiment']} (id {meta['experiment_id']}): {meta['metric']}, {meta['value']} value per run "
        f"({meta['mode']}), over {counted}"
    )
    if not rows:
        out.say(
            f"no completed/stopped run recorded {meta['metric']} yet (--all counts running and failed runs)"
        )
        return 0
    out.table(headers, rows, main=True, right=(len(headers) - 2,))
    best = next((r for r in table.rows if r["is_best"]), None)
    if best:
        out.say(f"* best trial: {best['trial']} ({meta['mode']} mean {meta['metric']} = {best['mean']:.4g})")
    return 0


def _fmt(value: Any) -> str:
    from .query.render import fmt

    return fmt(value)


def _cmd_diff(args: argparse.Namespace) -> int:
    out = Output(args.format)
    with open_query(args) as q:
        d = q.diff(args.run_a, args.run_b)
        a, b = q.run(d["a"]), q.run(d["b"])
    if out.is_json:
        out.json(d)
        return 0
    metrics = []
    for name, kind, x, y in d["metrics"]:
        numbers = isinstance(x, int | float) and isinstance(y, int | float)
        metrics.append([f"{name} ({kind})", x, y, y - x if numbers else None])
    if out.format == "csv":  # one table: what differs, config keys then metrics
        rows = [["config", k, x, y, None] for k, x, y in d["config"]]
        rows += [["metric", *row] for row in metrics]
        out.table(["SECTION", "KEY", "A", "B", "B - A"], rows, main=True)
        return 0
    label = lambda r: f"run {r['run_id']} ({r['experiment']} / {r['trial']} #{_fmt(r['repeat'])})"  # noqa: E731
    out.say(f"A = {label(a)}\nB = {label(b)}")
    if d["config"]:
        out.section(f"CONFIG ({len(d['config'])} differences)")
        out.table(["KEY", "A", "B"], [[k, _fmt(x), _fmt(y)] for k, x, y in d["config"]])
    else:
        out.section("CONFIG: identical")
    if metrics:
        out.section("METRICS")
        signed = [
            [*row[:3], "-" if row[3] is None else ("" if row[3] < 0 else "+") + _fmt(row[3])]
            for row in metrics
        ]
        out.table(["METRIC", "A", "B", "B - A"], signed, right=(3,))
    else:
        out.section("METRICS: identical")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from .errors import QueryError
    from .query.table import export_format

    try:  # a file name with an unknown suffix is a usage error: found before reading anything
        export_format(args.output, args.format)
    except QueryError as e:
        raise ConfigError(str(e), key="--format" if args.format else "--output") from None
    if args.table == "trials" and not args.metric:
        raise ConfigError("--table trials needs --metric NAME (the metric to aggregate)")
    with open_query(args) as q:
        exp = q.experiment(args.experiment)
        if args.table == "runs":
            table = q.runs(exp["id"], metrics=args.metric or None, tags=args.tag)
        elif args.table == "trials":
            table = q.trial_summary(exp["id"], args.metric[0], args.mode, tags=args.tag)
        else:
            ids = [r["run_id"] for r in q.runs(exp["id"], tags=args.tag, metrics=[])]
            table = q.history(ids, args.metric or None, by="epoch" if args.table == "epochs" else "step")
    path = table.export(args.output, args.format)
    print(f"wrote {len(table)} rows ({args.table}) of {exp['title']} to {path}")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    if args.run is None and not args.runs and not args.experiment:
        raise ConfigError("expman report needs an EXPERIMENT, --run RUN_ID or --runs RUN_ID [RUN_ID ...]")
    from .report import ExperimentReporter

    reporter = ExperimentReporter(args.db)
    if args.run is not None:
        path = reporter.generate_training_report(args.run, args.output)
    elif args.runs:
        path = reporter.generate_model_comparison_report(args.runs, args.output)
    else:
        path = reporter.generate_hpo_report(args.experiment, args.output, metric=args.metric, mode=args.mode)
    print(f"wrote {path}")
    return 0


# --------------------------------------------------------------------------- registration


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``ls``, ``show``, ``compare``, ``diff``, ``export`` and ``report`` to ``expman``."""
    from .cli import describe

    p = subparsers.add_parser(
        "ls",
        help="list experiments with trial/run counts and statuses",
        **describe(
            "List the experiments of the database: id, title, number of trials and runs, runs by "
            "status, start time and tags.",
            "expman ls",
            "expman ls --tag team=vision --format md",
            "expman ls --db postgresql://me@host/expman --format csv > experiments.csv",
        ),
    )
    add_tag(p, "only experiments with this tag (repeatable)")
    add_format(p, "the table")
    add_db(p)
    p.set_defaults(handler=with_db(_cmd_ls))

    cli_show.register(subparsers)

    p = subparsers.add_parser(
        "compare",
        help="rank an experiment's trials by a metric, mean ± std over repeats",
        **describe(
            "Rank the trials of an experiment by a metric: per trial, the mean ± sample std over "
            "its repeats of each run's best (or final) value, the best run, and the parameters that "
            "differ between trials. The best trial is marked *. Only completed and stopped runs "
            "count unless --all.",
            "expman compare digits --metric val_loss",
            "expman compare digits --metric val_acc --mode max --value final --format md",
        ),
    )
    p.add_argument("experiment", metavar="EXPERIMENT", help="experiment title (latest of that title) or id")
    p.add_argument("--metric", required=True, help="metric name, e.g. val_loss")
    add_mode(p)
    p.add_argument(
        "--value",
        choices=("best", "final"),
        default="best",
        help="aggregate each run's best value over epochs (default) or its final value",
    )
    p.add_argument(
        "--all", action="store_true", help="count runs of every status, not only completed/stopped"
    )
    add_tag(p)
    add_format(p, "the table, mean, std and n in their own columns")
    add_db(p)
    p.set_defaults(handler=with_db(_cmd_compare))

    p = subparsers.add_parser(
        "diff",
        help="config and metric differences between two runs",
        **describe(
            "Show what differs between two runs: configuration keys with their two values, and "
            "metrics (final and best) with B - A.",
            "expman diff 12 15",
            "expman diff 12 15 --format csv",
        ),
    )
    p.add_argument("run_a", metavar="RUN_A", type=run_ref, help="run id (or run:ID)")
    p.add_argument("run_b", metavar="RUN_B", type=run_ref, help="run id (or run:ID)")
    add_format(p, "one table: section, key, A, B, B - A")
    add_db(p)
    p.set_defaults(handler=with_db(_cmd_diff))

    p = subparsers.add_parser(
        "export",
        help="export an experiment's runs (or trials/histories) to a file",
        **describe(
            "Write an experiment's runs (one row per run: params, final/best metrics), its trials "
            "(mean/std per trial of --metric) or its metric histories (per epoch or per step) to "
            "a CSV, JSON lines or Parquet file. The file appears whole or not at all.",
            "expman export digits -o runs.csv",
            "expman export digits --table epochs --metric val_loss -o curves.parquet",
        ),
    )
    p.add_argument("experiment", metavar="EXPERIMENT")
    p.add_argument("-o", "--output", required=True, metavar="FILE")
    p.add_argument(
        "--format", choices=("csv", "jsonl", "parquet"), default=None, help="default: from FILE's suffix"
    )
    p.add_argument(
        "--table",
        choices=("runs", "trials", "epochs", "steps"),
        default="runs",
        help="runs (default): one row per run; trials: mean/std per trial (needs --metric); "
        "epochs/steps: metric histories",
    )
    p.add_argument("--metric", action="append", default=[], help="restrict to this metric (repeatable)")
    add_mode(p)
    add_tag(p)
    add_db(p)
    p.set_defaults(handler=with_db(_cmd_export))

    p = subparsers.add_parser(
        "report",
        help="write a self-contained interactive HTML report",
        **describe(
            "Write one self-contained HTML file (plotly charts, no network needed to view it): a "
            "study of an experiment (trials ranked by --metric, curves, parameter effects), a "
            "training report of one run (--run), or a comparison of runs (--runs). Needs the "
            "[report] extra: pip install 'lightning-expman[report]'.",
            "expman report digits -o report.html --metric val_acc",
            "expman report --run 12 -o run12.html",
            "expman report --runs 12 15 18 -o compare.html",
        ),
    )
    p.add_argument("experiment", metavar="EXPERIMENT", nargs="?", help="experiment for a grid/study report")
    p.add_argument(
        "-o", "--output", default="report.html", metavar="FILE", help="output file (default report.html)"
    )
    p.add_argument("--run", metavar="RUN_ID", type=run_ref, help="a training report for this run instead")
    p.add_argument(
        "--runs", nargs="+", metavar="RUN_ID", type=run_ref, help="a comparison report for these runs instead"
    )
    p.add_argument(
        "--metric", default=None, help="metric for the study report (default: val_loss, or the first)"
    )
    add_mode(p)
    add_db(p)
    p.set_defaults(handler=with_db(_cmd_report))
