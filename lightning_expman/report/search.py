"""The study report's Optuna sections: for each study of the experiment (one per searched
trial, ``<experiment>/<trial>``), the trials table, optimization history, parameter importances
(:mod:`optuna.importance`), parallel coordinates, slice plots and the intermediate values
(pruned trials' curves end where they were pruned). Figures are Optuna's own plotly figures,
drawn offline like the rest of the report.

Nothing is written to the database; without Optuna installed, or without studies, the report
is the plain grid report.
"""

from __future__ import annotations

import logging
from typing import Any

from .html import Page

__all__ = ["search_sections", "storage_url"]

log = logging.getLogger(__name__)


def storage_url(source: Any, db: Any) -> str | None:
    """The SQLAlchemy URL of the database the report reads, when it holds Optuna studies (``None``
    otherwise, or when it cannot be told)."""
    import peewee as pw

    if "studies" not in db.get_tables():  # no Optuna study here: open nothing more
        return None
    if isinstance(db, pw.SqliteDatabase) and db.database != ":memory:":
        # Read-only, like every read command: no -wal/-shm file, no change to the database.
        path = db.database.removeprefix("file:").split("?", 1)[0]
        return f"sqlite:///file:{path}?mode=ro&uri=true"
    if isinstance(source, str):
        from ..search.planner import optuna_url

        try:
            return optuna_url(source)
        except Exception:  # an unusual URL: no search sections
            return None
    return None


def _studies(url: str, experiment: str) -> list[Any]:
    try:
        import optuna
    except ImportError:
        return []
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        storage = optuna.storages.RDBStorage(url, skip_table_creation=True)
        names = optuna.get_all_study_names(storage)
    except Exception as e:  # no Optuna tables in this database
        log.debug("no Optuna studies in the database: %s", e)
        return []
    prefix = f"{experiment}/"
    return [optuna.load_study(study_name=n, storage=storage) for n in sorted(names) if n.startswith(prefix)]


def _figure(make: Any, *args: Any, **kwargs: Any) -> Any | None:
    """An Optuna figure, or ``None`` when the study cannot have it yet (too few trials...)."""
    try:
        fig = make(*args, **kwargs)
    except Exception as e:  # e.g. importances need two finished trials
        log.debug("figure %s skipped: %s", getattr(make, "__name__", make), e)
        return None
    fig.update_layout(height=380, margin={"l": 50, "r": 20, "t": 50, "b": 40})
    return fig


def search_sections(page: Page, url: str | None, experiment: str) -> int:
    """Append one section per study of ``experiment``; returns how many studies were found."""
    if url is None:
        return 0
    studies = _studies(url, experiment)
    if not studies:
        return 0
    import optuna
    from optuna import visualization as vis

    for study in studies:
        trials = study.get_trials(deepcopy=False)
        finished = [t for t in trials if t.state.name == "COMPLETE"]
        multi = len(study.directions) > 1
        counts: dict[str, int] = {}
        for t in trials:
            counts[t.state.name.lower()] = counts.get(t.state.name.lower(), 0) + 1
        blocks = [
            page.note(
                f"Optuna study {study.study_name}: {len(trials)} trials ("
                + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
                + "); directions "
                + ", ".join(d.name.lower() for d in study.directions)
                + ". Each value is the mean over the trial's repeats."
            )
        ]
        params = sorted({k for t in trials for k in t.params})
        rows = [
            [
                t.number,
                f"{study.study_name.split('/', 1)[-1]}-t{t.number:03d}",  # as the planner names it
                t.state.name,
                *(t.values if t.values else [None] * len(study.directions)),
                *[t.params.get(k) for k in params],
            ]
            for t in trials
        ]
        value_cols = ["value"] if not multi else [f"value {i}" for i in range(len(study.directions))]
        blocks.append(page.table(["#", "trial", "state", *value_cols, *params], rows, scroll=len(rows) > 15))
        figs = []
        target = (lambda t: t.values[0]) if multi else None
        name = "objective 0" if multi else "objective"
        if finished:
            figs.append(_figure(vis.plot_optimization_history, study, target=target, target_name=name))
            if len(finished) >= 2 and params:
                try:
                    importances = optuna.importance.get_param_importances(study, target=target)
                except Exception as e:  # a constant objective, one distinct value...
                    log.debug("importances skipped: %s", e)
                    importances = None
                if importances is not None:
                    figs.append(_figure(vis.plot_param_importances, study, target=target, target_name=name))
            if params:
                figs.append(_figure(vis.plot_parallel_coordinate, study, target=target, target_name=name))
                figs.append(_figure(vis.plot_slice, study, target=target, target_name=name))
        if any(t.intermediate_values for t in trials):
            figs.append(_figure(vis.plot_intermediate_values, study))
        charts = [page.chart(f) for f in figs if f is not None]
        if charts:
            blocks.append(page.grid(charts))
        page.section(f"Search {study.study_name}", *blocks, anchor=f"search-{study.study_name}")
    return len(studies)
