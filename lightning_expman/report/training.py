"""The training report: one run's curves per epoch and per step, per-label metrics, artifacts,
configuration and environment (:meth:`ExperimentReporter.generate_training_report
<lightning_expman.report.ExperimentReporter.generate_training_report>`)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from ..query import Query, _run_settings, default_mode, flatten
from . import charts
from .html import Page, esc

__all__ = ["training_report"]


def training_report(q: Query, run_id: int | str, output_path: str | Path) -> Path:
    """Write the training report of run ``run_id`` to ``output_path`` and return the path.

    Raises:
        QueryError: unknown run id.
    """
    run = q.run(run_id)
    rid = run["run_id"]
    page = Page(
        f"Run {rid}: {run['experiment']} / {run['trial']}",
        f"training report · repeat {run['repeat']} · seed {run['seed']} · {run['status'].lower()}",
    )
    page.section("Summary", _run_summary(page, run))

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
    _artifacts_section(page, run)
    settings = _run_settings(run)
    if settings:
        page.section("Configuration", page.kv_table(settings.items()), anchor="config")
    if run.get("context"):
        extra = {"host": run.get("host"), "git_commit": run.get("git_commit")}
        items = [*flatten(run["context"]).items(), *((k, v) for k, v in extra.items() if v)]
        page.section("Environment", page.kv_table(items), anchor="environment")
    return page.write(output_path)


def _run_summary(page: Page, run: dict[str, Any]) -> str:
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


def _artifacts_section(page: Page, run: dict[str, Any]) -> None:
    arts = run.get("artifacts") or []
    if arts:
        rows = [[a["type"], a["scope"], a["location"], a["time"]] for a in arts]
        page.section("Checkpoints and artifacts", page.table(["type", "scope", "location", "time"], rows))
