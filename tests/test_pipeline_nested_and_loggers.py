"""Real grid runs through ``expman run``: a nested ``class_path`` reaches the model as an object, and
Lightning loggers listed in ``trainer.logger`` run beside the ExpmanLogger."""

from __future__ import annotations

import csv
import json
import sqlite3
from pathlib import Path

import pytest
import yaml

from tests.experiment_support import expman, runs_of, tree, write_config

SETTINGS = {
    "seed": 3,
    "model": {
        "class_path": "tests.tiny_nested.ActClassifier",
        "init_args": {"hidden": 4, "lr": 0.1, "act": {"class_path": "torch.nn.GELU", "init_args": {}}},
    },
    "data": {"class_path": "tests.tiny.TinyDataModule", "init_args": {"n": 32, "batch_size": 16}},
    "trainer": {"max_epochs": 2, "log_every_n_steps": 1},
}


def _params(root: Path) -> list[dict[str, object]]:
    """Each run's recorded params (key -> JSON value), by run id."""
    with sqlite3.connect(root / "expman.db") as con:
        rows = con.execute("SELECT trial_run_id, key, value FROM run_param ORDER BY trial_run_id").fetchall()
    runs: dict[int, dict[str, object]] = {}
    for run, key, value in rows:
        runs.setdefault(run, {})[key] = json.loads(value) if value is not None else None
    return [runs[k] for k in sorted(runs)]


@pytest.mark.slow
def test_nested_class_path_reaches_the_model_as_a_module_in_a_grid_run(tmp_path):
    cfg = write_config(
        tmp_path,
        [{"name": "act", "id": 1, "grid": {"model.init_args.hidden": [4, 8]}}],
        settings=SETTINGS,
    )
    code, _, err = expman("run", str(cfg), cwd=tmp_path)
    assert code == 0, err
    runs = runs_of(tmp_path)
    assert [r["status"] for r in runs] == ["COMPLETED", "COMPLETED"]
    # ActClassifier refuses an ``act`` that is not a module; Lightning saved the module it got as
    # a hyperparameter, which the run's params record by its repr (a dict would be its keys).
    assert [p["act"] for p in _params(tmp_path)] == ["GELU(approximate='none')"] * 2


@pytest.mark.slow
def test_a_csv_logger_beside_ours_in_a_grid_run(tmp_path):
    settings = {
        **SETTINGS,
        "model": {"class_path": "tests.tiny.TinyClassifier", "init_args": {"hidden": 4, "lr": 0.1}},
        "trainer": {
            **SETTINGS["trainer"],
            "logger": [{"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": {"name": "csv"}}],
        },
    }
    cfg = write_config(
        tmp_path, [{"name": "t", "id": 1, "grid": {"model.init_args.lr": [0.1, 0.05]}}], settings=settings
    )
    code, _, err = expman("run", str(cfg), cwd=tmp_path)
    assert code == 0, err
    runs = runs_of(tmp_path)
    assert [r["status"] for r in runs] == ["COMPLETED", "COMPLETED"] and all(r["epochs"] == 2 for r in runs)
    # One metrics.csv per run, in the run's own folder (save_dir defaults to it).
    files = sorted(p for p in tree(tmp_path / "ws") if p.endswith("/csv/version_0/metrics.csv"))
    assert len(files) == 2, sorted(tree(tmp_path / "ws"))
    for file in files:
        with open(tmp_path / "ws" / file, newline="") as f:
            rows = list(csv.DictReader(f))
        assert {"val_loss", "train_loss"} <= set(rows[0]) and any(r["val_loss"] for r in rows)
        hparams = yaml.safe_load((tmp_path / "ws" / Path(file).parent / "hparams.yaml").read_text())
        assert hparams["lr"] in (0.1, 0.05)
    # Ours records as without it: both runs, their epochs and their params.
    assert [p["lr"] for p in _params(tmp_path)] == [0.1, 0.05]


_CSV = {"class_path": "lightning.pytorch.loggers.CSVLogger"}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (False, ["ExpmanLogger"]),
        (True, ["ExpmanLogger"]),
        (None, ["ExpmanLogger"]),
        (_CSV, ["ExpmanLogger", "CSVLogger"]),
        (
            [_CSV, {**_CSV, "init_args": {"save_dir": "elsewhere"}}],
            ["ExpmanLogger", "CSVLogger", "CSVLogger"],
        ),
    ],
)
def test_trainer_logger_values(value, expected, tmp_path):
    from lightning_expman.lightning.logger import ExpmanLogger
    from lightning_expman.pipeline import LightningPipeline
    from lightning_expman.workspace import Environment

    env = Environment.from_config({"workspace": str(tmp_path / "ws")}).create_child("solo")
    pipe = LightningPipeline(env, {**SETTINGS, "trainer": {"max_epochs": 1, "logger": value}})
    trainer = pipe.build_trainer()
    assert [type(lg).__name__ for lg in trainer.loggers] == expected
    assert isinstance(trainer.logger, ExpmanLogger)  # ours first: ``trainer.logger`` is ours
    assert [lg.save_dir for lg in trainer.loggers[1:]] == [str(env.workdir), "elsewhere"][: len(expected) - 1]
    assert pipe.model.act_name == "GELU"
    env.close()
