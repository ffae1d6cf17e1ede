"""``expman reproduce RUN_ID``: a digits run and a drop-in run reproduced exactly on CPU, a changed
data file caught with exit 1 and a table, and the refusals (real fits, in this process)."""

from __future__ import annotations

import copy

import pytest

from tests.experiment_support import db_url, expman, runs_of, write_config

DIGITS = {
    "seed": 42,
    "model": {"class_path": "examples.digits.model.DigitsMLP", "init_args": {"hidden": 32, "lr": 0.01}},
    "data": {"class_path": "examples.digits.data.DigitsDataModule", "init_args": {"batch_size": 64}},
    "trainer": {"max_epochs": 2, "log_every_n_steps": 10},
    "callbacks": [{"type": "checkpoint", "monitor": "val_loss"}],
}


def _table(out: str) -> dict[str, list[str]]:
    """``metric -> [recorded, reproduced, difference]`` from the printed table."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split()[:1] == ["metric"])
    rows = {}
    for line in lines[start + 1 :]:
        parts = line.split()
        if len(parts) != 4:
            break
        rows[parts[0]] = parts[1:]
    return rows


@pytest.mark.slow
def test_reproduce_digits_gives_difference_zero_for_every_final_metric(tmp_path):
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    cfg = write_config(
        tmp_path, [{"name": "mlp", "repeat": 1}], name="digits", settings=copy.deepcopy(DIGITS)
    )
    code, out, err = expman("run", str(cfg), cwd=repo)
    assert code == 0, out + err
    (run,) = runs_of(tmp_path, "digits")
    code, out, err = expman(
        "reproduce", str(run["id"]), "--db", db_url(tmp_path), "--workspace", str(tmp_path / "ws"), cwd=repo
    )
    assert code == 0, out + err
    table = _table(out)
    assert {"val_loss", "val_acc", "test_acc", "test_loss"} <= set(table)
    assert all(diff == "0" and rec == rep for rec, rep, diff in table.values())
    (copy_,) = runs_of(tmp_path, "digits-reproduce")
    assert copy_["tags"] == {"reproduces": run["id"]} and copy_["status"] == "COMPLETED"
    assert copy_["seed"] == run["seed"] == 42


@pytest.mark.slow
def test_a_changed_data_file_exits_1_with_the_differences(tmp_path):
    from pathlib import Path

    from tests.continue_support import write_data

    repo = Path(__file__).resolve().parents[1]
    data = tmp_path / "data.pt"
    write_data(str(data), seed=0)
    settings = {
        "seed": 1,
        "model": {"class_path": "tests.tiny.TinyClassifier", "init_args": {"hidden": 8, "lr": 0.1}},
        "data": {"class_path": "tests.continue_support.FileDataModule", "init_args": {"path": str(data)}},
        "trainer": {"max_epochs": 2},
    }
    cfg = write_config(tmp_path, [{"name": "t", "repeat": 1}], settings=settings)
    code, out, err = expman("run", str(cfg), cwd=repo)
    assert code == 0, out + err
    (run,) = runs_of(tmp_path)
    write_data(str(data), seed=1)  # someone replaced the data file
    code, out, err = expman(
        "reproduce", str(run["id"]), "--db", db_url(tmp_path), "--workspace", str(tmp_path / "ws"), cwd=repo
    )
    assert code == 1, out + err
    table = _table(out)
    assert table["val_loss"][0] != table["val_loss"][1] and table["val_loss"][2] != "0"
    assert "final metrics differ" in err
    # A tolerance wide enough accepts it.
    code, out, err = expman(
        "reproduce", str(run["id"]), "--db", db_url(tmp_path), "--tolerance", "100", cwd=tmp_path
    )
    assert code == 0, out + err


@pytest.mark.slow
def test_a_dropin_run_is_reproduced_from_its_recipe(tmp_path):
    from pathlib import Path

    from tests.scripts.dropin_fit import fit

    repo = Path(__file__).resolve().parents[1]
    logger = fit(str(tmp_path))
    code, out, err = expman(
        "reproduce",
        str(logger.run_id),
        "--db",
        db_url(tmp_path),
        "--workspace",
        str(tmp_path / "ws"),
        cwd=repo,
    )
    assert code == 0, out + err
    table = _table(out)
    assert {"val_loss", "val_acc"} <= set(table) and all(d == "0" for _, _, d in table.values())


def test_unknown_run_and_runs_without_a_record_exit_1(tmp_path):
    from lightning_expman.db import DatabaseManager

    url = db_url(tmp_path)
    with DatabaseManager(url) as db:
        trial = db.create_trial(db.create_experiment("seed").id, "t").id
        bare = db.create_trial_run(trial, "completed").id
    code, _, err = expman("reproduce", "999", "--db", url, cwd=tmp_path)
    assert code == 1 and "no trial run 999" in err  # a runtime error: not in the database
    code, _, err = expman("reproduce", str(bare), "--db", url, cwd=tmp_path)
    assert code == 1 and "no settings to rebuild it from" in err
