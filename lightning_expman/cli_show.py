"""``expman show EXPERIMENT|RUN``: one experiment (its trials and runs with their final metrics) or
one run (config, logged parameters, metrics final/best/per label, artifacts, environment).

``--format csv`` prints the main table only: the runs of an experiment, the metrics of a run.
This module imports neither torch nor lightning.
"""

from __future__ import annotations

import argparse
from typing import Any

from .cli_output import Output, add_db, add_format, open_query, tags_text, with_db

__all__ = ["environment_rows", "register"]

# Context keys shown elsewhere (seed: the header; hparams: PARAMS) or too long for a console
# (a drop-in run's recipe: `expman show RUN --json` has it).
_CONTEXT_SHOWN = ("git_commit", "python", "torch", "lightning", "platform", "host", "pid", "argv", "gpus")
_CONTEXT_SKIPPED = ("seed", "hparams", "recipe", "cuda", "cudnn")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``show`` to ``expman``."""
    from .cli import describe

    p = subparsers.add_parser(
        "show",
        help="show an experiment (by title or id) or a run (by id)",
        **describe(
            "Show an experiment: its configuration and one row per run (trial, repeat, seed, "
            "status, time, final values of its main metrics). Or show a run: its configuration, "
            "logged parameters, metrics (final, best, per label), artifacts and environment "
            "(git commit, Python/torch/lightning versions, host, command).\n\n"
            "Digits name a run unless an experiment has that title; exp:ID names an experiment "
            "by id, run:ID a run.",
            "expman show digits",
            "expman show 12",
            "expman show run:12 --format json",
            "expman show digits --format csv > runs.csv",
        ),
    )
    p.add_argument("target", metavar="EXPERIMENT|RUN_ID", help="experiment title, exp:ID, run id or run:ID")
    add_format(p, "the runs of an experiment, the metrics of a run")
    add_db(p)
    p.set_defaults(handler=with_db(show_command))


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


def show_command(args: argparse.Namespace) -> int:
    """Handler of ``expman show``."""
    out = Output(args.format)
    with open_query(args) as q:
        rid = _is_run_ref(q, args.target)
        if rid is not None:
            return _show_run(q, rid, out)
        ref = args.target.split(":", 1)[1] if args.target.startswith(("exp:", "experiment:")) else args.target
        return _show_experiment(q, ref, out)


def _main_metrics(names: dict[str, list[str]]) -> list[str]:
    """Up to three epoch metrics (val_loss and val_acc first, then other val_*) and one result."""
    epoch = [n for n in ("val_loss", "val_acc") if n in names["epoch"]]
    epoch += [n for n in names["epoch"] if n.startswith("val") and n not in epoch]
    epoch += [n for n in names["epoch"] if n not in epoch]
    results = [n for n in ("test_acc", "test_loss", *names["results"]) if n in names["results"]]
    return epoch[:3] + results[:1]


def _show_experiment(q: Any, ref: str, out: Output) -> int:
    from .query import flatten
    from .query.render import fmt

    exp = q.experiment(ref)
    names = q.metric_names(exp["id"])
    main = _main_metrics(names)
    runs = q.runs(exp["id"], metrics=main or None)
    if out.is_json:
        out.json({"experiment": exp, "metrics": names, "runs": runs.to_records()})
        return 0
    out.say(f"Experiment {exp['title']} (id {exp['id']})  started {fmt(exp['start_time'])}")
    if exp["desc"]:
        out.say(f"  {exp['desc']}")
    if exp["tags"]:
        out.say(f"  tags: {tags_text(exp['tags'])}")
    metric_list = sorted(set(names["epoch"]) | set(names["results"]))
    out.say(
        f"  metrics: {', '.join(metric_list) or '-'}"
        + (f"; per step: {', '.join(names['step'])}" if names["step"] else "")
    )
    if exp["config"]:
        out.section("CONFIG")
        for k, v in flatten(exp["config"]).items():
            out.say(f"  {k} = {fmt(v)}")
    out.section(f"RUNS ({len(runs)})  final values ({', '.join(main) or 'no metrics'})")
    headers = ["RUN", "TRIAL", "REP", "SEED", "STATUS", "TIME(s)", *[n.upper() for n in main]]
    rows = [
        [r["run_id"], r["trial"], r["repeat"], r["seed"], r["status"].lower(), r["duration_s"]]
        + [r.get(f"{n}.final") for n in main]
        for r in runs.rows
    ]
    out.table(headers, rows, main=True, keep=(4,))
    out.say(
        f"\n`expman show RUN_ID` for a run's details; "
        f"`expman compare {exp['title']} --metric NAME` to rank trials."
    )
    return 0


def _show_run(q: Any, rid: int, out: Output) -> int:
    from .query import default_mode, flatten
    from .query.render import fmt

    run = q.run(rid)
    if out.is_json:
        out.json(run)
        return 0
    out.say(
        f"Run {run['run_id']}  {run['experiment']} / {run['trial']}  "
        f"repeat {fmt(run['repeat'])}  seed {fmt(run['seed'])}"
    )
    line = f"  status {run['status'].lower()}"
    if run["duration_s"] is not None:
        line += f"  duration {run['duration_s']:.1f}s"
    if run["stop_epoch"] is not None:
        line += f"  stopped at epoch {run['stop_epoch']}"
    line += f"  started {fmt(run['start_time'])}"
    out.say(line)
    if run["error"]:
        out.say(f"  error: {run['error']}")
    if run["tags"]:
        out.say(f"  tags: {tags_text(run['tags'])}")
    config = flatten(run.get("config") or {})
    if config:
        out.section("CONFIG")
        out.table(["KEY", "VALUE"], [[k, v] for k, v in config.items()])
    extra = {k: v for k, v in run["params"].items() if k not in config}
    if extra:
        out.section("PARAMS (logged hyperparameters not in the config)")
        out.table(["KEY", "VALUE"], [[k, v] for k, v in extra.items()])
    out.section("METRICS" if run["metrics"] else "METRICS: none recorded")
    rows = []
    for name, m in run["metrics"].items():
        per_label = m.get("per_label")
        labels = (
            " ".join(f"{k}:{fmt(v, 3)}" for k, v in per_label.items())
            if isinstance(per_label, dict)
            else None
        )
        count = f"{m['n']} {m['source']}s" if m["source"] != "results" else "result"
        rows.append([name, m["final"], m["best"], default_mode(name), count, labels])
    if rows or out.format == "csv":
        out.table(["METRIC", "FINAL", "BEST", "MODE", "VALUES", "PER-LABEL (FINAL)"], rows, main=True)
    if run["artifacts"]:
        out.section("ARTIFACTS")
        rows = [[a["type"], a["scope"], a["location"]] for a in run["artifacts"]]
        out.table(["TYPE", "SCOPE", "LOCATION"], rows, left_elide=(2,))
    env = environment_rows(run)
    if env:
        out.section("ENVIRONMENT")
        out.table(["KEY", "VALUE"], env, keep=(0,))
    return 0


def environment_rows(run: dict[str, Any]) -> list[list[str]]:
    """What a run ran on, one ``[label, text]`` row per fact: git commit, versions, platform,
    host (pid), GPUs, the command line, then any other recorded context.

    Example:
        >>> environment_rows({"git_commit": "ab12", "context": {"python": "3.11.2", "torch": "2.5.0"}})
        [['git commit', 'ab12'], ['versions', 'python 3.11.2, torch 2.5.0']]
    """
    from .query import flatten
    from .query.render import fmt

    ctx = dict(run.get("context") or {})
    rows: list[list[str]] = []
    commit = run.get("git_commit") or ctx.get("git_commit")
    if commit or ctx:
        rows.append(["git commit", str(commit) if commit else "not recorded"])
    versions = ", ".join(f"{k} {ctx[k]}" for k in ("python", "torch", "lightning") if ctx.get(k))
    if versions:
        rows.append(["versions", versions])
    if ctx.get("gpus"):
        gpus = list(ctx["gpus"])
        names = ", ".join(f"{gpus.count(g)} x {g}" for g in dict.fromkeys(gpus))
        cuda = ", ".join(f"{k} {ctx[k]}" for k in ("cuda", "cudnn") if ctx.get(k))
        rows.append(["gpus", f"{names} ({cuda})" if cuda else names])
    if ctx.get("platform"):
        rows.append(["platform", str(ctx["platform"])])
    host = run.get("host") or ctx.get("host")
    if host:
        rows.append(["host", f"{host} (pid {ctx['pid']})" if ctx.get("pid") else str(host)])
    if ctx.get("argv"):
        argv = ctx["argv"]
        rows.append(["command", " ".join(map(str, argv)) if isinstance(argv, list) else str(argv)])
    rest = {k: v for k, v in ctx.items() if k not in (*_CONTEXT_SHOWN, *_CONTEXT_SKIPPED)}
    rows += [[k, fmt(v)] for k, v in flatten(rest).items() if v not in (None, "", {}, [])]
    return rows
