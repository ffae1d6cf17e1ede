"""The experiment runner end to end from YAML: workspace, rows, seeds, failures, resume, workers.

Real tiny Lightning fits on CPU recorded in SQLite files; the grids are run once per module and
shared by the assertions.
"""

from __future__ import annotations

import copy
import datetime as dt
import re

import pytest
import yaml

from lightning_expman import ConfigError, RunStatus
from lightning_expman.config import load
from lightning_expman.experiment import Experiment
from tests.experiment_support import (
    TINY_SETTINGS,
    db_url,
    experiments_of,
    expman,
    runs_of,
    set_run,
    tree,
    write_config,
)

pytestmark = pytest.mark.slow

GRID_TRIALS = [
    {"name": "small", "id": 1, "repeat": 2},
    {"name": "grid", "id": 2, "repeat": 2, "grid": {"model.init_args.lr": [0.1, 0.01]}},
]
CALLBACKS = [
    {"type": "early_stopping", "monitor": "val_loss", "patience": 5},
    {"type": "checkpoint", "interval": 1, "monitor": "val_loss"},
    {"type": "metrics_tracker"},
]


def _settings(**trainer):
    return {
        "seed": 42,
        "model": {"class_path": "tests.tiny.TinyClassifier", "init_args": {"hidden": 4, "lr": 0.1}},
        "data": {"class_path": "tests.tiny.TinyDataModule", "init_args": {"n": 32, "batch_size": 16}},
        "trainer": {"max_epochs": 2, "log_every_n_steps": 1, **trainer},
        "callbacks": CALLBACKS,
    }


# --------------------------------------------------------------------------- a grid, serially


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    root = tmp_path_factory.mktemp("grid")
    cfg = write_config(root, GRID_TRIALS, settings=_settings())
    code, out, err = expman("run", str(cfg), cwd=root)
    return root, cfg, code, out, err


def test_grid_exit_code_and_progress(grid):
    _, _, code, out, err = grid
    assert code == 0, err
    lines = out.splitlines()
    progress = [line for line in lines if line.startswith("[")]
    assert len(progress) == 6
    assert re.fullmatch(r"\[1/6\] small run 1/2 seed 42 COMPLETED \d+\.\d+s", progress[0])
    assert re.fullmatch(r"\[6/6\] grid-lr=0\.01 run 2/2 seed 43 COMPLETED \d+\.\d+s", progress[5])
    assert any(re.match(r"exp: 6 runs: 6 completed in \d+\.\d+s", line) for line in lines)


def test_grid_workspace_tree(grid):
    root, _, _, _, _ = grid
    ws = root / "ws" / "exp"
    files = tree(ws)
    assert {"configs/experiment.yaml", "logs/experiment.log", "artifacts"} <= files
    for trial in ("small", "grid-lr=0.1", "grid-lr=0.01"):
        t = f"trials/{trial}"
        assert {f"{t}/configs/trial.yaml", f"{t}/logs/trial.log", f"{t}/artifacts"} <= files
        for k in (1, 2):
            r = f"{t}/run_{k}"
            assert {f"{r}/config.yaml", f"{r}/logs/run.log", f"{r}/artifacts/metrics.log"} <= files
            assert any(f.startswith(f"{r}/artifacts/checkpoints/") and f.endswith(".ckpt") for f in files)
            saved = yaml.safe_load((ws / r / "config.yaml").read_text())
            assert saved["seed"] == 42 + k - 1  # the run's own seed, resolved
    trial_cfg = yaml.safe_load((ws / "trials/grid-lr=0.01/configs/trial.yaml").read_text())
    assert trial_cfg["settings"]["model"]["init_args"]["lr"] == 0.01
    assert trial_cfg["params"] == {"model.init_args.lr": 0.01}
    assert "[6/6] grid-lr=0.01 run 2/2 seed 43 COMPLETED" in (ws / "logs/experiment.log").read_text()
    # Lightning's own lines go to the run's log, not the console.
    assert "max_epochs=2" in (ws / "trials/small/run_1/logs/run.log").read_text()


def test_grid_rows(grid):
    root, cfg, _, _, _ = grid
    rows = runs_of(root)
    assert [(r["trial"], r["repeat_idx"], r["seed"], r["status"]) for r in rows] == [
        ("small", 1, 42, "COMPLETED"),
        ("small", 2, 43, "COMPLETED"),
        ("grid-lr=0.1", 1, 42, "COMPLETED"),
        ("grid-lr=0.1", 2, 43, "COMPLETED"),
        ("grid-lr=0.01", 1, 42, "COMPLETED"),
        ("grid-lr=0.01", 2, 43, "COMPLETED"),
    ]
    assert all(r["epochs"] == 2 and r["end_time"] and r["error"] is None for r in rows)
    assert all(r["config"]["seed"] == r["seed"] for r in rows)
    assert rows[4]["config"]["model"]["init_args"]["lr"] == 0.01
    assert all({"python", "lightning", "git_commit"} <= set(r["context"]) for r in rows)
    assert rows[3]["context"]["params"] == {"model.init_args.lr": 0.1}
    assert len({r["trial_id"] for r in rows}) == 3
    (experiment,) = experiments_of(root)
    assert experiment["title"] == "exp"
    assert experiment["config_hash"] == load(cfg).config_hash
    assert experiment["config"]["trials"][0]["name"] == "small"


def test_grid_remembers_db_url(grid):
    root, _, _, _, _ = grid
    assert (root / ".expman" / "last_db").read_text().strip() == db_url(root)


def test_rerun_with_no_resume_is_refused(grid):
    root, cfg, _, _, _ = grid
    before = runs_of(root)
    code, out, err = expman("run", str(cfg), "--no-resume", cwd=root)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "already has 6 recorded runs (6 completed); drop --no-resume" in err
    assert runs_of(root) == before


@pytest.mark.parametrize("flags", [(), ("--resume",)], ids=["default", "explicit"])
def test_running_a_finished_grid_again_runs_nothing(grid, flags):
    root, cfg, _, _, _ = grid
    before = runs_of(root)
    code, out, _ = expman("run", str(cfg), *flags, cwd=root)
    assert code == 0
    assert "[3/6] grid-lr=0.1 run 1/2 seed 42 SKIPPED (COMPLETED before)" in out
    assert "6 runs: 6 skipped" in out
    assert runs_of(root) == before


# --------------------------------------------------------------------------- failures and resume

FAILING_TRIALS = [
    {"name": "ok", "id": 1, "repeat": 2},
    {"name": "bad", "id": 2, "repeat": 2, "settings": {"model": {"init_args": {"fail_at_step": 1}}}},
    # Fails while the model is BUILT (nn.Linear with -1 features), before any fit starts.
    {"name": "unbuildable", "id": 3, "repeat": 2, "settings": {"model": {"init_args": {"hidden": -1}}}},
]
FIXES = ("--set", "model.init_args.fail_at_step=null", "--set", "model.init_args.hidden=4")


@pytest.fixture(scope="module")
def failing(tmp_path_factory):
    root = tmp_path_factory.mktemp("failing")
    cfg = write_config(root, FAILING_TRIALS, settings=_settings())
    first = expman("run", str(cfg), cwd=root)
    rows_first = runs_of(root)
    refused = expman("run", str(cfg), "--resume", *FIXES, cwd=root)
    rows_refused = runs_of(root)
    resumed = expman("run", str(cfg), "--resume", "--force", *FIXES, cwd=root)
    rows_resumed = runs_of(root)
    return root, cfg, first, rows_first, refused, rows_refused, resumed, rows_resumed


def test_failures_are_recorded_and_the_grid_goes_on(failing):
    _, _, (code, out, _), rows, *_ = failing
    assert code == 1
    assert [(r["trial"], r["repeat_idx"], r["status"]) for r in rows] == [
        ("ok", 1, "COMPLETED"),
        ("ok", 2, "COMPLETED"),
        ("bad", 1, "FAILED"),
        ("bad", 2, "FAILED"),
        ("unbuildable", 1, "FAILED"),
        ("unbuildable", 2, "FAILED"),
    ]
    assert "planted failure at step 1" in rows[2]["error"]
    assert rows[4]["error"].startswith("RuntimeError") and rows[4]["end_time"] is not None
    assert rows[4]["epochs"] == 0 and rows[4]["seed"] == 42 and rows[5]["seed"] == 43
    assert re.search(r"\[3/6\] bad run 1/2 seed 42 FAILED \d+\.\d+s: RuntimeError: planted failure", out)
    assert "2 completed, 4 failed" in out


def test_resume_refuses_a_changed_config(failing):
    _, _, _, rows_first, (code, out, err), rows_refused, *_ = failing
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "configuration changed since it was recorded" in err
    assert "--force" in err
    assert rows_refused == rows_first


def test_resume_finishes_exactly_the_failed_runs(failing):
    _, _, _, rows_first, _, _, (code, out, err), rows = failing
    assert code == 0, err
    assert rows[:6] == rows_first  # completed and failed rows untouched (ids, times, statuses)
    new = rows[6:]
    assert [(r["trial"], r["repeat_idx"], r["seed"], r["status"]) for r in new] == [
        ("bad", 1, 42, "COMPLETED"),
        ("bad", 2, 43, "COMPLETED"),
        ("unbuildable", 1, 42, "COMPLETED"),
        ("unbuildable", 2, 43, "COMPLETED"),
    ]
    assert "[1/6] ok run 1/2 seed 42 SKIPPED (COMPLETED before)" in out
    assert "4 completed, 2 skipped" in out


def test_resume_reruns_lost_runs_and_leaves_live_ones_to_their_process(failing):
    root, cfg, *_ = failing
    rows = runs_of(root)
    old = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) - dt.timedelta(minutes=10)
    fresh = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    crashed = next(r for r in rows if (r["trial"], r["repeat_idx"]) == ("ok", 2))
    live = next(r for r in reversed(rows) if (r["trial"], r["repeat_idx"]) == ("bad", 1))
    # The live run belongs to this (alive) test process; the crashed one's lease ran out long ago.
    set_run(root, crashed["id"], status="RUNNING", heartbeat=old, end_time=None)
    set_run(root, live["id"], status="RUNNING", heartbeat=fresh, end_time=None)
    code, out, err = expman("run", str(cfg), "--resume", *FIXES, cwd=root)
    assert code == 3, err  # unfinished only because a run is in progress elsewhere
    assert "1 run(s) still in progress in other processes" in err
    after = runs_of(root)
    assert len(after) == len(rows) + 1
    assert next(r for r in after if r["id"] == crashed["id"])["status"] == "LOST"
    assert (after[-1]["trial"], after[-1]["repeat_idx"], after[-1]["seed"], after[-1]["status"]) == (
        "ok",
        2,
        43,
        "COMPLETED",
    )
    assert "bad run 1/2" not in out.split("\n\n")[0]  # progress lines: only this process's runs
    assert "1 by other processes (1 running)" in out
    # The live run's holder declared a short lease and went silent: it is lost, and continued
    # from its last checkpoint in its own row (lightning_expman.continuation).
    set_run(root, live["id"], lease_s=0.001)
    code, out, err = expman("run", str(cfg), "--resume", *FIXES, cwd=root)
    assert code == 0, err
    assert len(runs_of(root)) == len(rows) + 1
    continued = next(r for r in runs_of(root) if r["id"] == live["id"])
    assert (continued["status"], continued["attempts"]) == ("COMPLETED", 2)


def test_fail_fast_stops_at_the_first_failure(tmp_path):
    cfg = write_config(tmp_path, FAILING_TRIALS[1:], settings=_settings())
    summary = Experiment.create(cfg).run(fail_fast=True)
    assert [r.status for r in summary.results] == [RunStatus.FAILED, None, None, None]
    assert summary.exit_code == 1 and "1 failed, 3 not run" in summary.table()
    assert all(line == line.rstrip() for line in summary.table().splitlines())  # no padding at the ends
    assert len(runs_of(tmp_path)) == 1
    # With resume=False an experiment with recorded runs is refused; force records the grid again.
    with pytest.raises(ConfigError, match="already has 1 recorded runs"):
        Experiment.create(cfg).run(resume=False, fail_fast=True)
    again = Experiment.create(cfg).run(resume=False, fail_fast=True, force=True)
    assert again.results[0].status is RunStatus.FAILED
    assert [r["status"] for r in runs_of(tmp_path)] == ["FAILED", "FAILED"]


def test_api_overrides_db_url_and_bad_workers(tmp_path):
    cfg = write_config(tmp_path, [{"name": "one", "id": 1, "repeat": 1}], settings=_settings())
    other = tmp_path / "other"
    other.mkdir()
    experiment = Experiment.create(
        cfg, overrides=["trainer.max_epochs=1"], db_url=f"sqlite:///{other / 'expman.db'}"
    )
    with pytest.raises(ConfigError, match="workers must be an integer >= 1, got 0"):
        experiment.run(workers=0)
    summary = experiment.run()
    assert summary.exit_code == 0 and summary.results[0].run_id == 1
    assert not (tmp_path / "expman.db").exists()
    (row,) = runs_of(other)
    assert row["epochs"] == 1 and row["status"] == "COMPLETED"


# --------------------------------------------------------------------------- local workers


@pytest.fixture(scope="module")
def parallel(tmp_path_factory):
    root = tmp_path_factory.mktemp("parallel")
    cfg = write_config(root, GRID_TRIALS, settings=_settings())
    code, out, err = expman("run", str(cfg), "--workers", "2", cwd=root)
    return root, code, out, err


def _shape(row: dict) -> tuple:
    """What must not depend on serial vs parallel execution."""
    filled = tuple(sorted(k for k, v in row.items() if v is not None and k not in ("context",)))
    config = {k: v for k, v in row["config"].items()}
    return (
        row["trial"],
        row["repeat_idx"],
        row["seed"],
        row["status"],
        row["epochs"],
        filled,
        yaml.safe_dump(config),
    )


def test_workers_2_rows_match_a_serial_run(parallel, grid):
    root, code, out, err = parallel
    assert code == 0, err
    assert len([line for line in out.splitlines() if line.startswith("[")]) == 6
    rows = runs_of(root)
    serial = runs_of(grid[0])
    assert sorted(_shape(r) for r in rows) == sorted(_shape(r) for r in serial)
    assert {r["context"]["pid"] for r in rows}.isdisjoint({__import__("os").getpid()})  # not run here
    assert tree(root / "ws") == tree(grid[0] / "ws")


def test_seed_interpolation_follows_the_run_seed(tmp_path):
    settings = copy.deepcopy(TINY_SETTINGS)
    settings["data"]["init_args"]["seed"] = "${seed}"
    settings["trainer"]["max_epochs"] = 1
    cfg = write_config(tmp_path, [{"name": "a", "repeat": 2}], settings=settings)
    Experiment.create(cfg).run()
    rows = runs_of(tmp_path)
    seeds = [(r["seed"], r["config"]["seed"], r["config"]["data"]["init_args"]["seed"]) for r in rows]
    assert seeds == [(42, 42, 42), (43, 43, 43)]
