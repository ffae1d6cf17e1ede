"""The comparison report: chosen runs of any experiments side by side — metrics table, curves
with one line per run, final values, per-label values and the configuration keys that differ
(:meth:`ExperimentReporter.generate_model_comparison_report
<lightning_expman.report.ExperimentReporter.generate_model_comparison_report>`)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from ..errors import QueryError
from ..query import Query, _run_settings
from . import charts
from .html import Page

__all__ = ["comparison_report"]


def comparison_report(q: Query, run_ids: Sequence[int | str], output_path: str | Path) -> Path:
    """Write the comparison report of ``run_ids`` to ``output_path`` and return the path.

    Raises:
        QueryError: no run ids, or an unknown one.
    """
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
                charts.curves({label[i]: s for i, s in series.items()}, f"{name} per epoch", "epoch", name)
            )
            for name, series in sorted(by_metric.items())
        ]
        page.section("Metrics per epoch", page.grid(figs), anchor="curves")
    finals = [n for n in metric_names if all(r["metrics"].get(n, {}).get("final") is not None for r in runs)]
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
