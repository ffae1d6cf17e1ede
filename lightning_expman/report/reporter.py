"""``ExperimentReporter``: training, grid/study and comparison reports as self-contained HTML."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import QueryError
from ..query import Query, _run_settings, default_mode, flatten
from . import charts
from .html import Page, esc

__all__ = ["MAX_CURVE_TRIALS", "ExperimentReporter"]

MAX_CURVE_TRIALS = 10
"""The study report draws learning curves (mean ± std bands) for at most this many best trials."""


class ExperimentReporter:
    """Write interactive HTML reports (plotly) that open offline: one self-contained file each.

    Args:
        db_url: a database URL, a DatabaseManager or a peewee Database (as :class:`Query`).
            ``mlflow_tracking_uri=`` is accepted as an alias, for the seed's spelling.

    Example:
        >>> reporter = ExperimentReporter("sqlite:///expman_runs/expman.db")
        >>> reporter.generate_training_report(run_id=12, output_path="reports/run12.html")
        >>> reporter.generate_hpo_report("digits", "reports/digits.html", metric="val_acc", mode="max")
        >>> reporter.generate_model_comparison_report([12, 15, 18], "reports/compare.html")
    """

    def __init__(self, db_url: Any = None, *, mlflow_tracking_uri: Any = None) -> None:
        source = db_url if db_url is not None else mlflow_tracking_uri
        if source is None:
            from .._state import default_db_url

            source = default_db_url()
        self._source = source
        self.query = Query(source, read_only=True)  # a report never writes

    def close(self) -> None:
        self.query.close()

    # ------------------------------------------------------------------ training report

    def generate_training_report(self, run_id: int | str, output_path: str | Path) -> Path:
        """A report for one run: curves per epoch and per step, per-label metrics, artifacts,
        config and environment.

        Returns:
            The written path.

        Raises:
            QueryError: unknown run id.
        """
        q = self.query
        run = q.run(run_id)
        rid = run["run_id"]
        page = Page(
            f"Run {rid}: {run['experiment']} / {run['trial']}",
            f"training report · repeat {run['repeat']} · seed {run['seed']} · {run['status'].lower()}",
        )
        page.section("Summary", self._run_summary(page, run))

        epochs = q.history(rid, by="epoch").rows
        by_metric: dict[str, list[dict]] = defaultdict(list)
        for row in epochs:
            by_metric[row["metric"]].append(row)
        if by_metric:
            figs = []
            for stem, names in charts.group_metrics(sorted(by_metric)).items():
                series = {
                    n: ([r["epoch"] for r in by_metric[n]], [r["value"] for r in by_metric[n]]) for n in names
                }
                figs.append(page.chart(charts.curves(series, f"{stem} per epoch", "epoch", stem)))
            page.section("Metrics per epoch", page.grid(figs), anchor="epochs")
        steps = q.history(rid, by="step").rows
        if steps:
            by_step: dict[str, tuple[list, list]] = {}
            for row in steps:
                xs, ys = by_step.setdefault(row["metric"], ([], []))
                xs.append(row["step"])
                ys.append(row["value"])
            figs = [
                page.chart(charts.curves({n: v}, f"{n} per step", "global step", n))
                for n, v in sorted(by_step.items())
            ]
            page.section("Metrics per step", page.grid(figs), anchor="steps")
        labelled = {n: rows for n, rows in by_metric.items() if any(r.get("per_label") for r in rows)}
        if labelled:
            blocks = []
            for name, rows in sorted(labelled.items()):
                blocks.append(page.chart(charts.per_label_curves(name, rows)))
                final = next((r["per_label"] for r in reversed(rows) if r.get("per_label")), {})
                blocks.append(page.chart(charts.per_label_bars(name, {f"run {rid}": final})))
            page.section("Per-label metrics", page.grid(blocks), anchor="per-label")
        self._artifacts_section(page, run)
        settings = _run_settings(run)
        if settings:
            page.section("Configuration", page.kv_table(settings.items()), anchor="config")
        if run.get("context"):
            extra = {"host": run.get("host"), "git_commit": run.get("git_commit")}
            items = [*flatten(run["context"]).items(), *((k, v) for k, v in extra.items() if v)]
            page.section("Environment", page.kv_table(items), anchor="environment")
        return page.write(output_path)

    def _run_summary(self, page: Page, run: dict[str, Any]) -> str:
        ident = [
            ("experiment", run["experiment"]),
            ("trial", run["trial"]),
            ("run id", run["run_id"]),
            ("repeat", run["repeat"]),
            ("seed", run["seed"]),
            ("status", run["status"]),
            ("started", run["start_time"]),
            ("ended", run["end_time"]),
            ("duration (s)", run["duration_s"]),
            ("stopped at epoch", run["stop_epoch"]),
            ("tags", " ".join(f"{k}={v}" for k, v in sorted(run["tags"].items())) or None),
        ]
        blocks = [page.facts([(k, v) for k, v in ident if v is not None])]
        if run.get("error"):
            blocks.append(f'<pre class="error">{esc(run["error"])}</pre>')
        rows = []
        for name, m in run["metrics"].items():
            per_label = m.get("per_label")
            rows.append(
                [
                    name,
                    m["final"],
                    m["best"],
                    default_mode(name),
                    f"{m['n']} {m['source']}s" if m["source"] != "results" else "result",
                    " ".join(f"{k}: {v:.4g}" for k, v in per_label.items())
                    if isinstance(per_label, dict)
                    else None,
                ]
            )
        if rows:
            blocks.append(
                page.table(
                    ["metric", "final", "best", "best is", "values", "per label (final)"],
                    rows,
                    numeric=[1, 2],
                )
            )
        return "".join(blocks)

    def _artifacts_section(self, page: Page, run: dict[str, Any]) -> None:
        arts = run.get("artifacts") or []
        if arts:
            rows = [[a["type"], a["scope"], a["location"], a["time"]] for a in arts]
            page.section("Checkpoints and artifacts", page.table(["type", "scope", "location", "time"], rows))

    # ------------------------------------------------------------------ grid / study report

    def generate_hpo_report(
        self,
        experiment: int | str | None = None,
        output_path: str | Path = "report.html",
        *,
        metric: str | None = None,
        mode: str = "auto",
        value: str = "best",
        parent_run_id: int | str | None = None,
    ) -> Path:
        """A grid/study report for an experiment: trials ranked by ``metric`` (mean ± std over
        repeats), each hyperparameter against the metric, parallel coordinates, learning curves
        as mean ± std bands, and the runs table.

        Args:
            experiment: title (the latest of that title) or id. ``parent_run_id=`` (the seed's
                name, where the study was a parent run) is accepted as an alias.
            output_path: the HTML file to write.
            metric: the metric to rank by; default ``val_loss`` when recorded, else the first
                epoch metric.
            mode: ``"min"``, ``"max"`` or ``"auto"``.
            value: aggregate each run's ``"best"`` (default) or ``"final"`` value.

        Returns:
            The written path.
        """
        q = self.query
        ref = experiment if experiment is not None else parent_run_id
        if ref is None:
            raise QueryError("generate_hpo_report needs an experiment (title or id)")
        exp = q.experiment(ref)
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
                        [
                            (p["params"].get(k), p["value"], p["trial"])
                            for p in run_points
                            if k in p["params"]
                        ],
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

        search_sections(page, storage_url(self._source, q.db), exp["title"])
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
        return page.write(output_path)

    # ------------------------------------------------------------------ comparison report

    def generate_model_comparison_report(self, run_ids: Sequence[int | str], output_path: str | Path) -> Path:
        """Compare chosen runs (any experiments): metrics table, curves per metric with one line
        per run, final values side by side, per-label values, and the config keys that differ.

        Returns:
            The written path.
        """
        q = self.query
        if not run_ids:
            raise QueryError("generate_model_comparison_report needs at least one run id")
        runs = [q.run(r) for r in run_ids]
        ids = [r["run_id"] for r in runs]
        label = {r["run_id"]: f"run {r['run_id']} · {r['trial']}" for r in runs}
        page = Page(
            f"Comparison of {len(runs)} runs",
            " · ".join(f"{r['run_id']} = {r['experiment']}/{r['trial']}#{r['repeat']}" for r in runs),
        )
        metric_names = sorted({n for r in runs for n in r["metrics"]})
        headers = ["run", "experiment", "trial", "repeat", "status"]
        for n in metric_names:
            headers += [f"{n} final", f"{n} best"]
        rows = []
        for r in runs:
            row = [r["run_id"], r["experiment"], r["trial"], r["repeat"], r["status"]]
            for n in metric_names:
                m = r["metrics"].get(n) or {}
                row += [m.get("final"), m.get("best")]
            rows.append(row)
        page.section("Runs", page.table(headers, rows, scroll=True), anchor="runs")

        settings = {r["run_id"]: _run_settings(r) for r in runs}
        all_keys = sorted({k for s in settings.values() for k in s})
        differing = [k for k in all_keys if len({repr(s.get(k)) for s in settings.values()}) > 1]
        if differing:
            page.section(
                "Configuration differences",
                page.table(
                    ["key", *[label[i] for i in ids]],
                    [[k, *[settings[i].get(k) for i in ids]] for k in differing],
                    numeric=[],
                ),
            )

        hist = q.history(ids, by="epoch").rows
        by_metric: dict[str, dict[int, tuple[list, list]]] = defaultdict(dict)
        per_label: dict[str, dict[str, dict]] = defaultdict(dict)
        for row in hist:
            xs, ys = by_metric[row["metric"]].setdefault(row["run_id"], ([], []))
            xs.append(row["epoch"])
            ys.append(row["value"])
            if row.get("per_label"):
                per_label[row["metric"]][label[row["run_id"]]] = row["per_label"]
        if by_metric:
            figs = [
                page.chart(
                    charts.curves(
                        {label[i]: s for i, s in series.items()}, f"{name} per epoch", "epoch", name
                    )
                )
                for name, series in sorted(by_metric.items())
            ]
            page.section("Metrics per epoch", page.grid(figs), anchor="curves")
        finals = [
            n for n in metric_names if all(r["metrics"].get(n, {}).get("final") is not None for r in runs)
        ]
        if finals:
            figs = []
            for n in finals:
                figs.append(
                    page.chart(
                        charts.curves(
                            {
                                label[r["run_id"]]: ([label[r["run_id"]]], [r["metrics"][n]["final"]])
                                for r in runs
                            },
                            f"{n}: final value",
                            "run",
                            n,
                        ).update_traces(mode="markers", marker={"size": 12})
                    )
                )
            page.section("Final values", page.grid(figs), anchor="finals")
        if per_label:
            page.section(
                "Per-label metrics (final epoch)",
                page.grid(page.chart(charts.per_label_bars(n, v)) for n, v in sorted(per_label.items())),
            )
        steps = q.history(ids, by="step").rows
        if steps:
            by_step: dict[str, dict[int, tuple[list, list]]] = defaultdict(dict)
            for row in steps:
                xs, ys = by_step[row["metric"]].setdefault(row["run_id"], ([], []))
                xs.append(row["step"])
                ys.append(row["value"])
            figs = [
                page.chart(
                    charts.curves({label[i]: s for i, s in series.items()}, f"{n} per step", "global step", n)
                )
                for n, series in sorted(by_step.items())
            ]
            page.section("Metrics per step", page.grid(figs), anchor="steps")
        return page.write(output_path)
