"""The public names DESIGN.md promises, importable where users look for them, without heavy imports."""

from __future__ import annotations

import subprocess
import sys

import lightning_expman


def test_top_level_names_resolve():
    for name in lightning_expman.__all__:
        assert getattr(lightning_expman, name) is not None, name


def test_seed_api_import_paths():
    from lightning_expman import Experiment, ExpmanLogger, ExpmanTrainer, Level, Metric, RunStatus
    from lightning_expman.callbacks import CheckpointCallback, EarlyStopping, MetricsTracker
    from lightning_expman.db import ConnectionError, DatabaseError, DatabaseManager, QueryError
    from lightning_expman.tracking import Tracker, TrackerManager, TrackScope

    assert issubclass(ConnectionError, DatabaseError) and issubclass(QueryError, DatabaseError)
    assert Level.EXPERIMENT == 0 and Level.BATCH == 5
    assert Metric.VAL_LOSS == "val_loss" and RunStatus.parse("completed") is RunStatus.COMPLETED
    assert all((Experiment, ExpmanLogger, ExpmanTrainer, CheckpointCallback, EarlyStopping, MetricsTracker))
    assert all((DatabaseManager, Tracker, TrackerManager, TrackScope))


def test_package_cli_and_read_side_import_neither_torch_nor_lightning_nor_mlflow():
    code = (
        "import sys, lightning_expman, lightning_expman.cli, lightning_expman.query, "
        "lightning_expman.report, lightning_expman.config, lightning_expman.tracking, lightning_expman.db\n"
        "lightning_expman.cli.build_parser()\n"
        "heavy = sorted({'torch', 'lightning', 'mlflow', 'plotly'} & set(sys.modules))\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_database_manager_exposes_the_query_api(sqlite_url):
    from lightning_expman.db import DatabaseManager

    with DatabaseManager(sqlite_url) as db:
        db.create_experiment("cifar", "a study")
        titles = db.query().experiments().column("title")
    assert titles == ["cifar"]


def test_cli_output_piped_into_a_closed_pipe_is_not_an_error(sqlite_url, tmp_path):
    from lightning_expman.db import DatabaseManager

    with DatabaseManager(sqlite_url) as db, db.transaction():
        for i in range(3000):  # ~200 KB of output: more than a pipe buffer holds
            db.create_experiment(f"experiment-{i}", "")
    # `expman ls | head -1`: head exits after one line, expman must not print a traceback.
    proc = subprocess.run(
        f"{sys.executable} -m lightning_expman.cli ls --db {sqlite_url} | head -n 1",
        shell=True,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert proc.stdout.split()[:2] == ["ID", "EXPERIMENT"]
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr
