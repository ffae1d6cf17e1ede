"""The grid/study report: an experiment's trials ranked by a metric (mean ± std over repeats),
hyperparameters against it, parallel coordinates, learning curves as mean ± std bands, Optuna
study sections and the runs table (:meth:`ExperimentReporter.generate_hpo_report
<lightning_expman.report.ExperimentReporter.generate_hpo_report>`)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from ..errors import QueryError
from ..query import Query, flatten
from . import charts
from .html import Page

__all__ = ["MAX_CURVE_TRIALS", "study_report"]

MAX_CURVE_TRIALS = 10
"""The study report draws learning curves (mean ± std bands) for at most this many best trials."""


def study_report(
    q: Query,
    source: Any,
    experiment: int | str,
    output: str | Path,
    metric: str | None,
    mode: str,
    value: str,
) -> Path:
    """Write the study report of ``experiment`` to ``output`` and return the path.

    The arguments are :meth:`ExperimentReporter.generate_hpo_report
    <lightning_expman.report.ExperimentReporter.generate_hpo_report>`'s (``experiment`` a title or
    id); ``q`` reads the database, ``source`` (the reporter's) locates the Optuna storage of a search.
    """
    exp = q.experiment(experiment)
    names = q.metric_names(exp["id"])
    if metric is None:
        pool = names["epoch"] or names["results"]
        if not pool:
            raise QueryError(f"experiment {exp['title']!r} has no recorded metrics to report")
        metric = "val_loss" if "val_loss" in pool else pool[0]
    summary = q.trial_summary(exp["id"], metric, mode, value=value)
    meta = summary.meta
    rmode = meta["mode"]
    keys = meta["differing_params"]
    page = Page(
        f"{exp['title']}: study report",
        f"experiment id {exp['id']} · {metric} ({rmode} is better, {value} value per run) · "
        f"{len(summary)} trials",
    )
    best = next((r for r in summary.rows if r["is_best"]), None)
    # Ranked, best first (trials without a value last).
    ranked_rows = sorted(
        summary.rows,
        key=lambda r: (r["mean"] is None, (r["mean"] or 0.0) * (1 if rmode == "min" else -1)),
    )
    headers = ["rank", "trial", *keys, "n", "mean", "std", "min", "max", "best run"]
    stats = ("n", "mean", "std", "min", "max", "best_run_id")
    rows = [
        [i, r["trial"], *[r["params"].get(k) for k in keys], *[r[k] for k in stats]]
        for i, r in enumerate(ranked_rows, 1)
    ]
    source = f"{rmode} over epochs" if value == "best" else "its last epoch"
    intro = page.note(
        f"Each completed run contributes its {value} {metric} ({source}); trials are ranked by the mean "
        f"over their repeats ({rmode} is better); bars show ± one standard deviation."
    )
    if best:
        intro += page.note(f"Best trial: {best['trial']} (mean {best['mean']:.5g}, n={best['n']}).")
    page.section(
        "Trials",
        intro,
        page.table(headers, rows, highlight=[r["is_best"] for r in ranked_rows], scroll=len(rows) > 15),
        page.chart(charts.bar_mean_std(ranked_rows, metric, rmode)),
        anchor="trials",
    )

    per_run = q.run_values(exp["id"], metric, rmode)
    params = q._params(None, exp["id"])
    run_points = [
        {
            "run_id": r["run_id"],
            "trial": r["trial"],
            "value": r[value],
            "params": params.get(r["run_id"], {}),
        }
        for r in per_run
        if r[value] is not None
    ]
    if keys and run_points:
        figs = [
            page.chart(
                charts.param_scatter(
                    k,
                    [(p["params"].get(k), p["value"], p["trial"]) for p in run_points if k in p["params"]],
                    summary.rows,
                    metric,
                )
            )
            for k in keys
        ]
        page.section("Hyperparameters against " + metric, page.grid(figs), anchor="params")
        usable = [p for p in run_points if all(k in p["params"] for k in keys)]
        if usable:
            page.section(
                "Parallel coordinates",
                page.note("Drag along an axis to filter runs; colour is " + metric + "."),
                page.chart(charts.parallel_coordinates(keys, usable, metric, rmode)),
                anchor="parallel",
            )
    # Learning curves of the best MAX_CURVE_TRIALS trials (all of them in a small grid).
    ranked = sorted((r for r in summary.rows if r["mean"] is not None), key=lambda r: r["mean"])
    if rmode == "max":
        ranked.reverse()
    shown = {r["trial"] for r in ranked[:MAX_CURVE_TRIALS]}
    run_ids = [r["run_id"] for r in per_run if r["trial"] in shown]
    trial_of = {r["run_id"]: r["trial"] for r in per_run}
    if metric in names["epoch"] and run_ids:
        hist = q.history(run_ids, [metric], by="epoch").rows
        groups: dict[str, dict[int, list[float]]] = {
            r["trial"]: defaultdict(list) for r in ranked if r["trial"] in shown
        }
        for row in hist:
            groups[trial_of[row["run_id"]]][row["epoch"]].append(row["value"])
        note = (
            f"The {len(shown)} best of {len(ranked)} trials, best first."
            if len(ranked) > len(shown)
            else "Every trial; the band is ± one standard deviation over its repeats."
        )
        page.section(
            f"{metric} per epoch: mean ± std over repeats",
            page.note(note),
            page.chart(charts.mean_std_bands(groups, f"{metric} per epoch, by trial", "epoch", metric)),
            anchor="curves",
        )
    from .search import search_sections, storage_url  # Optuna studies (lightning_expman.search)

    search_sections(page, storage_url(source, q.db), exp["title"])
    runs = q.runs(exp["id"], metrics=[metric])
    page.section(
        "Runs",
        page.table(
            [
                "run",
                "trial",
                "repeat",
                "seed",
                "status",
                "duration (s)",
                f"{metric} final",
                f"{metric} best",
            ],
            [
                [
                    r["run_id"],
                    r["trial"],
                    r["repeat"],
                    r["seed"],
                    r["status"],
                    r["duration_s"],
                    r.get(f"{metric}.final"),
                    r.get(f"{metric}.best"),
                ]
                for r in runs.rows
            ],
            scroll=True,
        ),
        anchor="runs",
    )
    if exp.get("config"):
        page.section("Experiment configuration", page.kv_table(flatten(exp["config"]).items()))
    return page.write(output)
