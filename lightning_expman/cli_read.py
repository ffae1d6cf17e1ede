"""Read commands of the ``expman`` CLI: ``ls``, ``show``, ``compare``, ``diff``, ``export``, ``report``.

Every command takes ``--db URL`` (default: ``$EXPMAN_DB``, else the database the last
``expman run`` in this folder used, else ``sqlite:///expman_runs/expman.db``) and, where it makes
sense, ``--json`` for machine-readable output. Tables fit the terminal (80-120 columns).

Examples::

    expman ls --tag team=vision
    expman show digits            # an experiment: trials, runs, final metrics
    expman show 12                # a run: config, metrics (final/best/per-label), artifacts
    expman compare digits --metric val_loss --mode min
    expman diff 12 15
    expman export digits --format parquet -o runs.parquet
    expman report digits -o report.html --metric val_acc
    expman report --run 12 -o run12.html
    expman report --runs 12 15 18 -o cmp.html

This module imports neither torch nor lightning (nor plotly/pandas until a command needs them).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
from collections.abc import Sequence
from typing import Any

from .errors import QueryError

__all__ = ["register", "render_table"]

_STATUS_ORDER = ("RUNNING", "COMPLETED", "STOPPED", "PRUNED", "FAILED", "ABORTED", "LOST", "SKIPPED")


# --------------------------------------------------------------------------- formatting


def _width() -> int:
    """Terminal width clamped to 80..120 (pipes get 100)."""
    cols = shutil.get_terminal_size((100, 24)).columns
    return max(80, min(120, cols))


def fmt(value: Any, digits: int = 4) -> str:
    """Compact text for a table cell: floats to ``digits`` significant digits, None as ``-``."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return f"{value:.{digits}g}"
    if isinstance(value, dict | list):
        return json.dumps(value, default=str, separators=(",", ":"))
    if hasattr(value, "isoformat"):
        return value.isoformat(sep=" ", timespec="minutes")
    return str(value)


def _elide(text: str, width: int, *, collapse: bool = True) -> str:
    text = " ".join(str(text).split()) if collapse else str(text).replace("\t", " ")  # one line
    if len(text) <= width:
        return text
    return text[: max(0, width - 1)] + "…" if width > 1 else text[:width]


def render_table(
    headers: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    width: int | None = None,
    right: Sequence[int] = (),
    left_elide: Sequence[int] = (),
    min_col: int = 6,
) -> str:
    """Render rows as an aligned text table no wider than ``width``.

    Columns that do not fit are narrowed, widest first, down to ``min_col`` characters, eliding
    the end of their text with ``…`` (the start, for the ``left_elide`` columns such as paths,
    whose file name matters most).

    Example:
        >>> print(render_table(["a", "b"], [[1, "x"]]))
        a  b
        1  x
    """
    width = width or _width()
    cells = [[_elide(fmt(c) if not isinstance(c, str) else c, 10_000) for c in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, c in enumerate(row):
            widths[i] = max(widths[i], len(c))
    sep = 2
    while sum(widths) + sep * (len(widths) - 1) > width:
        i = max(range(len(widths)), key=lambda k: widths[k])
        floor = max(min_col, min(len(headers[i]), min_col))
        if widths[i] <= floor:
            break
        widths[i] -= 1

    def line(values: Sequence[str]) -> str:
        parts = []
        for i, v in enumerate(values):
            if i in left_elide and len(v) > widths[i]:
                v = "…" + v[len(v) - widths[i] + 1 :]
            v = _elide(v, widths[i])
            parts.append(v.rjust(widths[i]) if i in right else v.ljust(widths[i]))
        return (" " * sep).join(parts).rstrip()

    return "\n".join([line(list(headers)), *(line(r) for r in cells)])


def _status_text(statuses: dict[str, int]) -> str:
    keys = sorted(statuses, key=lambda s: (_STATUS_ORDER.index(s) if s in _STATUS_ORDER else 99, s))
    return ", ".join(f"{statuses[k]} {k.lower()}" for k in keys) or "-"


def _tags_text(tags: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" if v is not True else k for k, v in sorted(tags.items())) or "-"


def _mean_std_text(mean: float | None, std: float | None, n: int) -> str:
    if mean is None:
        return "-"
    if std is None:
        return f"{mean:.4g} (n={n})"
    return f"{mean:.4g} ± {std:.2g} ({n})"


def _short_keys(keys: Sequence[str]) -> dict[str, str]:
    """Shortest unique dotted suffix of each key: ``model.init_args.lr`` -> ``lr``."""
    out = {}
    for key in keys:
        parts = key.split(".")
        for n in range(1, len(parts) + 1):
            cand = ".".join(parts[-n:])
            if sum(1 for k in keys if k == cand or k.endswith("." + cand)) == 1:
                out[key] = cand
                break
        else:
            out[key] = key
    return out


def _print_json(data: Any) -> None:
    print(json.dumps(data, default=_json_default, indent=2, allow_nan=False))


def _json_default(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def _clean_json(value: Any) -> Any:
    """Replace NaN/inf (not JSON) by None, recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean_json(v) for v in value]
    return value


def _say(text: str = "") -> None:
    """Print free text, each line elided to the terminal width."""
    width = _width()
    print("\n".join(_elide(line, width, collapse=False) if line.strip() else "" for line in text.split("\n")))


def _section(title: str) -> None:
    _say(f"\n{title}")


# --------------------------------------------------------------------------- commands


def _query(args: argparse.Namespace):
    from .query import Query

    return Query(args.db, read_only=True)  # read commands never create or alter a file


def _cmd_ls(args: argparse.Namespace) -> int:
    with _query(args) as q:
        table = q.experiments(tags=args.tag)
    if args.json:
        _print_json(_clean_json(table.to_records()))
        return 0
    if not table.rows:
        _say("no experiments" + (f" with tags {' '.join(args.tag)}" if args.tag else "") + f" in {q.name}")
        return 0
    rows = [
        [
            str(r["id"]),
            r["title"],
            str(r["trials"]),
            str(r["runs"]),
            _status_text(r["statuses"]),
            fmt(r["start_time"]),
            _tags_text(r["tags"]),
        ]
        for r in table.rows
    ]
    _say(
        render_table(
            ["ID", "EXPERIMENT", "TRIALS", "RUNS", "STATUS", "STARTED", "TAGS"], rows, right=(0, 2, 3)
        )
    )
    return 0


def _is_run_ref(q: Any, ref: str) -> int | None:
    """A run id when ``ref`` names a run (``run:N``, or digits that are no experiment title)."""
    if ref.startswith("run:"):
        return q._run_id(ref)
    if ref.startswith(("exp:", "experiment:")):
        return None
    if ref.isdigit():
        # digits that are an experiment *title* win; an experiment id needs exp:N
        E = q.m.Experiment
        if q._rows(E.select(E.id).where(E.title == ref)):
            return None
        return q._run_id(ref)
    return None


def _cmd_show(args: argparse.Namespace) -> int:
    with _query(args) as q:
        rid = _is_run_ref(q, args.target)
        if rid is not None:
            return _show_run(q, rid, args)
        ref = args.target.split(":", 1)[1] if args.target.startswith(("exp:", "experiment:")) else args.target
        return _show_experiment(q, ref, args)


def _show_experiment(q: Any, ref: str, args: argparse.Namespace) -> int:
    exp = q.experiment(ref)
    names = q.metric_names(exp["id"])
    # The columns: up to three epoch metrics (val_loss and val_acc first) and one result metric.
    preferred = ("val_loss", "val_acc")
    epoch = [n for n in preferred if n in names["epoch"]]
    epoch += [n for n in names["epoch"] if n.startswith("val") and n not in epoch]
    epoch += [n for n in names["epoch"] if n not in epoch]
    main = epoch[:3] + [n for n in ("test_acc", "test_loss", *names["results"]) if n in names["results"]][:1]
    runs = q.runs(exp["id"], metrics=main or None) if main else q.runs(exp["id"], metrics=None)
    if args.json:
        _print_json(_clean_json({"experiment": exp, "metrics": names, "runs": runs.to_records()}))
        return 0
    _say(f"Experiment {exp['title']} (id {exp['id']})  started {fmt(exp['start_time'])}")
    if exp["desc"]:
        _say(f"  {exp['desc']}")
    if exp["tags"]:
        _say(f"  tags: {_tags_text(exp['tags'])}")
    metric_list = sorted(set(names["epoch"]) | set(names["results"]))
    _say(
        f"  metrics: {', '.join(metric_list) or '-'}"
        + (f"; per step: {', '.join(names['step'])}" if names["step"] else "")
    )
    if exp["config"]:
        _section("CONFIG")
        from .query import flatten

        for k, v in flatten(exp["config"]).items():
            _say(f"  {k} = {fmt(v)}")
    _section(f"RUNS ({len(runs)})  final values ({', '.join(main) or 'no metrics'})")
    headers = ["RUN", "TRIAL", "REP", "SEED", "STATUS", "TIME(s)", *[n.upper() for n in main]]
    rows = [
        [
            str(r["run_id"]),
            r["trial"],
            fmt(r["repeat"]),
            fmt(r["seed"]),
            r["status"].lower(),
            fmt(r["duration_s"]),
        ]
        + [fmt(r.get(f"{n}.final")) for n in main]
        for r in runs.rows
    ]
    print(render_table(headers, rows, right=(0, 2, 3, 5, *range(6, 6 + len(main)))))
    _say(
        f"\n`expman show RUN_ID` for a run's details; "
        f"`expman compare {exp['title']} --metric NAME` to rank trials."
    )
    return 0


def _show_run(q: Any, rid: int, args: argparse.Namespace) -> int:
    run = q.run(rid)
    if args.json:
        _print_json(_clean_json(run))
        return 0
    _say(
        f"Run {run['run_id']}  {run['experiment']} / {run['trial']}  "
        f"repeat {fmt(run['repeat'])}  seed {fmt(run['seed'])}"
    )
    line = f"  status {run['status'].lower()}"
    if run["duration_s"] is not None:
        line += f"  duration {run['duration_s']:.1f}s"
    if run["stop_epoch"] is not None:
        line += f"  stopped at epoch {run['stop_epoch']}"
    line += f"  started {fmt(run['start_time'])}"
    if run["host"]:
        line += f"  host {run['host']}"
    _say(line)
    if run["error"]:
        _say(f"  error: {run['error']}")
    if run["tags"]:
        _say(f"  tags: {_tags_text(run['tags'])}")
    from .query import flatten

    config = flatten(run.get("config") or {})
    if config:
        _section("CONFIG")
        print(render_table(["KEY", "VALUE"], [[k, fmt(v)] for k, v in config.items()]))
    extra = {k: v for k, v in run["params"].items() if k not in config}
    if extra:
        _section("PARAMS (logged hyperparameters not in the config)")
        print(render_table(["KEY", "VALUE"], [[k, fmt(v)] for k, v in extra.items()]))
    if run["metrics"]:
        _section("METRICS")
        rows = []
        for name, m in run["metrics"].items():
            from .query import default_mode

            mode = default_mode(name)
            per_label = m.get("per_label")
            pl = (
                " ".join(f"{k}:{fmt(v, 3)}" for k, v in per_label.items())
                if isinstance(per_label, dict)
                else ""
            )
            count = f"{m['n']} {m['source']}s" if m["source"] != "results" else "result"
            rows.append([name, fmt(m["final"]), f"{fmt(m['best'])} ({mode})", count, pl or "-"])
        print(render_table(["METRIC", "FINAL", "BEST", "VALUES", "PER-LABEL (FINAL)"], rows, right=(1,)))
    if run["artifacts"]:
        _section("ARTIFACTS")
        rows = [[a["type"], a["scope"], a["location"]] for a in run["artifacts"]]
        print(render_table(["TYPE", "SCOPE", "LOCATION"], rows, left_elide=(2,)))
    if run["context"]:
        _section("ENVIRONMENT")
        from .query import flatten

        _say("  " + "  ".join(f"{k}={fmt(v)}" for k, v in flatten(run["context"]).items()))
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    statuses = None if args.all else ("COMPLETED", "STOPPED")
    with _query(args) as q:
        table = q.trial_summary(
            args.experiment, args.metric, args.mode, value=args.value, statuses=statuses, tags=args.tag
        )
    meta = table.meta
    if args.json:
        _print_json(_clean_json({"meta": meta, "trials": table.to_records()}))
        return 0
    keys = meta["differing_params"]
    short = _short_keys(keys)
    headers = [
        "",
        "TRIAL",
        *[short[k].upper() for k in keys],
        meta["metric"].upper() + " mean ± std (n)",
        "BEST RUN",
    ]
    rows = []
    for r in table.rows:
        rows.append(
            [
                "*" if r["is_best"] else "",
                r["trial"],
                *[fmt(r["params"].get(k)) for k in keys],
                _mean_std_text(r["mean"], r["std"], r["n"]),
                f"{r['best_run_id']} ({fmt(r['best_run_value'])})",
            ]
        )
    counted = "all runs" if args.all else "completed/stopped runs"
    _say(
        f"{meta['experiment']} (id {meta['experiment_id']}): {meta['metric']}, {meta['value']} value per run "
        f"({meta['mode']}), over {counted}"
    )
    if not rows:
        _say(f"no completed/stopped run recorded {meta['metric']} yet (--all counts running and failed runs)")
        return 0
    print(render_table(headers, rows, right=(len(headers) - 2,)))
    best = next((r for r in table.rows if r["is_best"]), None)
    if best:
        _say(f"* best trial: {best['trial']} ({meta['mode']} mean {meta['metric']} = {best['mean']:.4g})")
    return 0


def _cmd_diff(args: argparse.Namespace) -> int:
    with _query(args) as q:
        d = q.diff(args.run_a, args.run_b)
        a, b = q.run(d["a"]), q.run(d["b"])
    if args.json:
        _print_json(_clean_json(d))
        return 0
    label = lambda r: f"run {r['run_id']} ({r['experiment']} / {r['trial']} #{fmt(r['repeat'])})"  # noqa: E731
    _say(f"A = {label(a)}\nB = {label(b)}")
    if d["config"]:
        _section(f"CONFIG ({len(d['config'])} differences)")
        print(render_table(["KEY", "A", "B"], [[k, fmt(x), fmt(y)] for k, x, y in d["config"]]))
    else:
        _section("CONFIG: identical")
    if d["metrics"]:
        _section("METRICS")
        rows = []
        for name, kind, x, y in d["metrics"]:
            delta = fmt(y - x) if isinstance(x, int | float) and isinstance(y, int | float) else "-"
            if delta != "-" and not delta.startswith("-"):
                delta = "+" + delta
            rows.append([f"{name} ({kind})", fmt(x), fmt(y), delta])
        print(render_table(["METRIC", "A", "B", "B - A"], rows, right=(1, 2, 3)))
    else:
        _section("METRICS: identical")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    with _query(args) as q:
        exp = q.experiment(args.experiment)
        if args.table == "runs":
            table = q.runs(exp["id"], metrics=args.metric or None, tags=args.tag)
        elif args.table == "trials":
            if not args.metric:
                raise QueryError("--table trials needs --metric NAME (the metric to aggregate)")
            table = q.trial_summary(exp["id"], args.metric[0], args.mode, tags=args.tag)
        else:
            ids = [r["run_id"] for r in q.runs(exp["id"], tags=args.tag, metrics=[])]
            table = q.history(ids, args.metric or None, by="epoch" if args.table == "epochs" else "step")
    path = table.export(args.output, args.format)
    print(f"wrote {len(table)} rows ({args.table}) of {exp['title']} to {path}")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from .report import ExperimentReporter

    reporter = ExperimentReporter(args.db)
    if args.run is not None:
        path = reporter.generate_training_report(args.run, args.output)
    elif args.runs:
        path = reporter.generate_model_comparison_report(args.runs, args.output)
    elif args.experiment:
        path = reporter.generate_hpo_report(args.experiment, args.output, metric=args.metric, mode=args.mode)
    else:
        raise QueryError("expman report needs an EXPERIMENT, --run RUN_ID or --runs RUN_ID [RUN_ID ...]")
    print(f"wrote {path}")
    return 0


# --------------------------------------------------------------------------- registration


def _common(p: argparse.ArgumentParser, *, json_flag: bool = True) -> None:
    from ._state import default_db_url

    p.add_argument(
        "--db",
        default=None,
        metavar="URL",
        help="database URL (default: $EXPMAN_DB, else the last `expman run` here, else sqlite:///expman_runs/expman.db)",
    )
    if json_flag:
        p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    p.set_defaults(_default_db=default_db_url)


def _with_db(handler):
    def run(args: argparse.Namespace) -> int:
        if args.db is None:
            args.db = args._default_db()
        return handler(args)

    return run


def _mode_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--mode",
        choices=("min", "max", "auto"),
        default="auto",
        help="whether lower or higher is better (auto: min for loss/error-like names, else max)",
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``ls``, ``show``, ``compare``, ``diff``, ``export`` and ``report`` to ``expman``."""
    p = subparsers.add_parser("ls", help="list experiments with trial/run counts and statuses")
    p.add_argument(
        "--tag", action="append", default=[], metavar="KEY[=VALUE]", help="filter by tag (repeatable)"
    )
    _common(p)
    p.set_defaults(handler=_with_db(_cmd_ls))

    p = subparsers.add_parser("show", help="show an experiment (by title or id) or a run (by id)")
    p.add_argument("target", metavar="EXPERIMENT|RUN_ID", help="experiment title, exp:ID, run id or run:ID")
    _common(p)
    p.set_defaults(handler=_with_db(_cmd_show))

    p = subparsers.add_parser(
        "compare", help="rank an experiment's trials by a metric, mean ± std over repeats"
    )
    p.add_argument("experiment", metavar="EXPERIMENT", help="experiment title (latest of that title) or id")
    p.add_argument("--metric", required=True, help="metric name, e.g. val_loss")
    _mode_arg(p)
    p.add_argument(
        "--value",
        choices=("best", "final"),
        default="best",
        help="aggregate each run's best value over epochs (default) or its final value",
    )
    p.add_argument(
        "--all", action="store_true", help="count runs of every status, not only completed/stopped"
    )
    p.add_argument(
        "--tag", action="append", default=[], metavar="KEY[=VALUE]", help="only runs with this tag"
    )
    _common(p)
    p.set_defaults(handler=_with_db(_cmd_compare))

    p = subparsers.add_parser("diff", help="config and metric differences between two runs")
    p.add_argument("run_a", metavar="RUN_A")
    p.add_argument("run_b", metavar="RUN_B")
    _common(p)
    p.set_defaults(handler=_with_db(_cmd_diff))

    p = subparsers.add_parser("export", help="export an experiment's runs (or trials/histories) to a file")
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
    _mode_arg(p)
    p.add_argument(
        "--tag", action="append", default=[], metavar="KEY[=VALUE]", help="only runs with this tag"
    )
    _common(p, json_flag=False)
    p.set_defaults(handler=_with_db(_cmd_export))

    p = subparsers.add_parser("report", help="write a self-contained interactive HTML report")
    p.add_argument("experiment", metavar="EXPERIMENT", nargs="?", help="experiment for a grid/study report")
    p.add_argument(
        "-o", "--output", default="report.html", metavar="FILE", help="output file (default report.html)"
    )
    p.add_argument("--run", metavar="RUN_ID", help="a training report for this run instead")
    p.add_argument("--runs", nargs="+", metavar="RUN_ID", help="a comparison report for these runs instead")
    p.add_argument(
        "--metric", default=None, help="metric for the study report (default: val_loss, or the first)"
    )
    _mode_arg(p)
    _common(p, json_flag=False)
    p.set_defaults(handler=_with_db(_cmd_report))


def main(argv: Sequence[str] | None = None) -> int:  # pragma: no cover - convenience
    """Run a read command without the rest of the CLI (``python -m lightning_expman.cli_read ls``)."""
    from .cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
