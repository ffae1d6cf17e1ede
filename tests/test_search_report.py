"""The study report of a search: Optuna's sections (history, importances, parallel coordinates,
slices, intermediate values with pruned trials) rendered offline, in headless Chromium when the
browser is there (``.ci/install-browser``)."""

from __future__ import annotations

from pathlib import Path

import pytest

optuna = pytest.importorskip("optuna")

from lightning_expman import Experiment  # noqa: E402
from lightning_expman.report import ExperimentReporter  # noqa: E402
from tests.experiment_support import write_config  # noqa: E402
from tests.test_report import assert_rendered, assert_self_contained, browser, open_report  # noqa: E402, F401

SETTINGS = {
    "seed": 5,
    "model": {"class_path": "tests.tiny.TinyClassifier", "init_args": {"hidden": 4, "lr": 0.1}},
    "data": {"class_path": "tests.tiny.TinyDataModule", "init_args": {"n": 32, "batch_size": 16}},
    "trainer": {"max_epochs": 3, "log_every_n_steps": 1},
}
SEARCH = {
    "num_trials": 5,
    "sampler": {"type": "tpe", "n_startup_trials": 2},
    "pruner": {"type": "median", "n_startup_trials": 2},
    "space": {
        "model.init_args.lr": {"low": 0.0, "high": 0.5},
        "model.init_args.hidden": {"low": 2, "high": 8},
    },
}


@pytest.fixture(scope="module")
def study_db(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("search-report")
    cfg = write_config(root, [{"name": "s", "repeat": 2, "search": SEARCH}], settings=SETTINGS, name="study")
    assert Experiment.create(cfg).run().exit_code == 0
    return f"sqlite:///{root / 'expman.db'}"


def _report(url: str, path: Path) -> Path:
    reporter = ExperimentReporter(url)
    try:
        return reporter.generate_hpo_report("study", path, metric="val_loss", mode="min")
    finally:
        reporter.close()


def test_study_report_has_the_search_sections(study_db: str, tmp_path: Path) -> None:
    path = _report(study_db, tmp_path / "study.html")
    assert_self_contained(path)
    text = path.read_text(encoding="utf-8")
    assert "Search study/s" in text and "Optuna study study/s: 5 trials" in text
    for title in (
        "Optimization History Plot",
        "Hyperparameter Importances",
        "Parallel Coordinate Plot",
        "Slice Plot",
        "Intermediate Values Plot",
    ):
        assert title in text, title


def test_search_report_in_chromium(browser, study_db: str, tmp_path: Path) -> None:  # noqa: F811
    path = _report(study_db, tmp_path / "study.html")
    state = open_report(browser, path)
    assert_rendered(state)
    assert "Search study/s" in state["sections"]
    for title in (
        "Optimization History Plot",
        "Hyperparameter Importances",
        "Parallel Coordinate Plot",
        "Slice Plot",
        "Intermediate Values Plot",
    ):
        assert title in state["titles"], state["titles"]
