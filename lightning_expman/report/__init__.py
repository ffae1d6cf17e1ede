"""Interactive HTML reports that open offline (one self-contained file, plotly.js inlined).

Example:
    >>> from lightning_expman.report import ExperimentReporter
    >>> reporter = ExperimentReporter("sqlite:///expman_runs/expman.db")
    >>> reporter.generate_training_report(run_id=12, output_path="reports/run12.html")
    >>> reporter.generate_hpo_report("digits", "reports/digits.html", metric="val_loss", mode="min")
    >>> reporter.generate_model_comparison_report([12, 15], "reports/compare.html")

From the shell: ``expman report digits -o report.html``, ``expman report --run 12 -o run.html``,
``expman report --runs 12 15 -o cmp.html``.

Files: ``reporter.py`` (:class:`ExperimentReporter`), one module per report (``training.py``,
``study.py``, ``comparison.py``), ``search.py`` (Optuna study sections), ``html.py`` (the page),
``charts.py`` (plotly figures).
"""

from __future__ import annotations

from .reporter import ExperimentReporter

__all__ = ["ExperimentReporter"]
