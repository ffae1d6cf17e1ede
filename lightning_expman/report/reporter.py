"""``ExperimentReporter``: training, grid/study and comparison reports as self-contained HTML.

Each report is built in its own module: :mod:`~lightning_expman.report.training`,
:mod:`~lightning_expman.report.study` and :mod:`~lightning_expman.report.comparison` (page
building blocks in :mod:`~lightning_expman.report.html`, figures in
:mod:`~lightning_expman.report.charts`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import QueryError
from ..query import Query
from .comparison import comparison_report
from .study import MAX_CURVE_TRIALS, study_report
from .training import training_report

__all__ = ["MAX_CURVE_TRIALS", "ExperimentReporter"]


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

    def generate_training_report(self, run_id: int | str, output_path: str | Path) -> Path:
        """A report for one run: curves per epoch and per step, per-label metrics, artifacts,
        config and environment.

        Returns:
            The written path.

        Raises:
            QueryError: unknown run id.
        """
        return training_report(self.query, run_id, output_path)

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
        ref = experiment if experiment is not None else parent_run_id
        if ref is None:
            raise QueryError("generate_hpo_report needs an experiment (title or id)")
        return study_report(self.query, self._source, ref, output_path, metric, mode, value)

    def generate_model_comparison_report(self, run_ids: Sequence[int | str], output_path: str | Path) -> Path:
        """Compare chosen runs (any experiments): metrics table, curves per metric with one line
        per run, final values side by side, per-label values, and the config keys that differ.

        Returns:
            The written path.
        """
        return comparison_report(self.query, run_ids, output_path)
