"""``expman run``: dry runs, usage and configuration errors (exit 2, one line, nothing written),
start-up without torch/lightning, the digits example, and Ctrl-C."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.bad_config_cases import BAD_CONFIGS
from tests.bad_config_cases import write_config as write_bad_config
from tests.experiment_support import expman, runs_of, tree, write_config

REPO = Path(__file__).resolve().parents[1]
EXPMAN = Path(sys.executable).with_name("expman")

TINY = {
    "seed": 42,
    "model": {"class_path": "tests.tiny.TinyClassifier", "init_args": {"hidden": 4}},
    "data": {"class_path": "tests.tiny.TinyDataModule", "init_args": {"n": 32, "batch_size": 16}},
    "trainer": {"max_epochs": 1},
}


def _digits_folder(tmp_path: Path) -> Path:
    """A fresh folder holding configs/digits and the examples package, as a clone has them."""
    shutil.copytree(REPO / "configs" / "digits", tmp_path / "configs" / "digits")
    (tmp_path / "examples").symlink_to(REPO / "examples", target_is_directory=True)
    return tmp_path


# --------------------------------------------------------------------------- bad configurations


@pytest.mark.parametrize("case", BAD_CONFIGS, ids=[c.name for c in BAD_CONFIGS])
def test_bad_config_exits_2_with_one_line_and_writes_nothing(case, tmp_path):
    cfg = write_bad_config(tmp_path / "cfg", case.files)
    before = tree(tmp_path)
    sets = [arg for value in case.overrides for arg in ("--set", value)]
    code, out, err = expman("run", str(cfg), *sets, cwd=tmp_path)
    assert code == 2
    assert out == ""
    assert err.startswith("expman: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for expected in case.expected:
        assert expected in err
    assert tree(tmp_path) == before  # no workspace, no database, no .expman state


def test_bad_config_corpus_is_large_enough():
    assert len(BAD_CONFIGS) >= 60


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--workers", "0"), "--workers: must be an integer >= 1, got 0"),
        (("--workers", "two"), "--workers: must be an integer >= 1, got 'two'"),
        (("--stale-after", "-1"), "--stale-after: must be a number of seconds > 0"),
        (("--bogus",), "unrecognized arguments: --bogus"),
    ],
)
def test_usage_errors_exit_2(args, message, tmp_path):
    cfg = write_config(tmp_path, [{"name": "a", "id": 1}], settings=TINY)
    code, _, err = expman("run", str(cfg), *args, cwd=tmp_path)
    assert code == 2 and message in err


def test_missing_config_dir_exits_2(tmp_path):
    code, _, err = expman("run", str(tmp_path / "nope"), cwd=tmp_path)
    assert code == 2 and err.count("\n") == 1 and "nope" in err
    assert tree(tmp_path) == set()


# --------------------------------------------------------------------------- dry run


def test_dry_run_lists_runs_and_writes_nothing(tmp_path):
    cfg = write_config(
        tmp_path,
        [{"name": "g", "id": 1, "repeat": 2, "grid": {"model.init_args.lr": [0.1, 0.01]}}],
        settings=TINY,
    )
    before = tree(tmp_path)
    code, out, err = expman("run", str(cfg), "--dry-run", "--set", "seed=100", cwd=tmp_path)
    assert code == 0, err
    assert out.splitlines() == [
        f"experiment 'exp': 2 trials, 4 runs (workspace {tmp_path / 'ws'}, database sqlite:///{tmp_path}/expman.db)",
        "[1/4] g-lr=0.1 run 1/2 seed 100  model.init_args.lr=0.1",
        "[2/4] g-lr=0.1 run 2/2 seed 101  model.init_args.lr=0.1",
        "[3/4] g-lr=0.01 run 1/2 seed 100  model.init_args.lr=0.01",
        "[4/4] g-lr=0.01 run 2/2 seed 101  model.init_args.lr=0.01",
    ]
    assert tree(tmp_path) == before


def test_digits_dry_run(tmp_path):
    folder = _digits_folder(tmp_path)
    before = tree(folder)
    code, out, err = expman("run", "configs/digits", "--dry-run", cwd=folder)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("experiment 'digits': 4 trials, 8 runs")
    assert (
        lines[1]
        == "[1/8] mlp-lr=0.01-hidden=32 run 1/2 seed 42  model.init_args.lr=0.01 model.init_args.hidden=32"
    )
    assert lines[8] == (
        "[8/8] mlp-lr=0.001-hidden=128 run 2/2 seed 43  model.init_args.lr=0.001 model.init_args.hidden=128"
    )
    assert tree(folder) == before


_NO_TORCH = """
import sys
from lightning_expman.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as e:
    code = e.code
loaded = sorted(m for m in ("torch", "lightning", "lightning.pytorch", "torchmetrics") if m in sys.modules)
print("LOADED:", loaded)
sys.exit(code)
"""


@pytest.mark.parametrize(
    "args",
    [("--help",), ("run", "--help"), ("run", "configs/digits", "--dry-run")],
    ids=["help", "run-help", "dry-run"],
)
def test_help_and_dry_run_import_neither_torch_nor_lightning(args, tmp_path):
    folder = _digits_folder(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-c", _NO_TORCH, *args],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.returncode == 0, proc.stderr
    assert "LOADED: []" in proc.stdout


def test_console_script_help():
    proc = subprocess.run([str(EXPMAN), "run", "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0
    assert "--resume" in proc.stdout and "--workers N" in proc.stdout and "--dry-run" in proc.stdout


# --------------------------------------------------------------------------- the digits example


@pytest.mark.slow
def test_digits_short_run_records_per_class_f1(tmp_path):
    folder = _digits_folder(tmp_path)
    code, out, err = expman(
        "run",
        "configs/digits",
        "--set",
        "trainer.max_epochs=1",
        "--set",
        "trainer.limit_train_batches=3",
        cwd=folder,
    )
    assert code == 0, err
    assert "digits: 8 runs: 8 completed" in out
    from lightning_expman.db import DatabaseManager
    from lightning_expman.db import models as m

    manager = DatabaseManager(f"sqlite:///{folder / 'expman_runs' / 'expman.db'}")
    try:
        with manager.database.bind_ctx(m.ALL_MODELS):
            run = m.TrialRun.select().order_by(m.TrialRun.id).first()
            epoch = {
                link.metric.type: link.metric
                for link in m.EpochMetric.select(m.EpochMetric, m.MetricRecord)
                .join(m.MetricRecord)
                .where(m.EpochMetric.trial_run == run.id)
            }
            results = {
                link.metric.type: link.metric
                for link in m.ResultsMetric.select(m.ResultsMetric, m.MetricRecord)
                .join(m.MetricRecord)
                .where(m.ResultsMetric.results == run.id)
            }
    finally:
        manager.close()
    assert {"val_loss", "val_acc", "val_f1", "val_f1_per_class", "train_acc"} <= set(epoch)
    assert sorted(epoch["val_f1_per_class"].per_label_val) == [str(i) for i in range(10)]
    assert epoch["val_f1_per_class"].total_val == pytest.approx(epoch["val_f1"].total_val, abs=1e-6)
    assert {"test_acc", "test_f1", "test_f1_per_class"} <= set(results)
    assert len(results["test_f1_per_class"].per_label_val) == 10
    assert (folder / ".expman" / "last_db").read_text().strip() == "sqlite:///expman_runs/expman.db"


# --------------------------------------------------------------------------- Ctrl-C


def _wait_for_running(root: Path, proc: subprocess.Popen, count: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        if (root / "expman.db").exists():
            try:
                running = [r for r in runs_of(root) if r["status"] == "RUNNING" and r["epochs"] >= 1]
            except Exception:  # the schema may be being created right now
                running = []
            if len(running) >= count:
                return
        time.sleep(0.3)
    raise AssertionError("the runs never started")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("workers", "sig"),
    [(1, signal.SIGINT), (2, signal.SIGINT), (1, signal.SIGTERM)],
    ids=["ctrl-c", "ctrl-c-workers-2", "sigterm"],
)
def test_interrupt_records_aborted_and_resume_continues(workers, sig, tmp_path):
    """Ctrl-C (SIGINT to the process group, as a terminal sends it) or SIGTERM to expman while
    runs are training: the runs in progress are recorded ABORTED, the rest is not started, exit 130."""
    trials = [{"name": "long", "id": 1, "repeat": 3}]
    cfg = write_config(tmp_path, trials, settings={**TINY, "trainer": {"max_epochs": 100_000}})
    proc = subprocess.Popen(
        [str(EXPMAN), "run", str(cfg), "--workers", str(workers)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        start_new_session=True,
    )
    try:
        _wait_for_running(tmp_path, proc, workers)
        if sig == signal.SIGINT:
            os.killpg(proc.pid, sig)
        else:
            os.kill(proc.pid, sig)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    rows = runs_of(tmp_path)
    assert len(rows) == workers
    assert all(r["status"] == "ABORTED" and r["end_time"] is not None for r in rows)
    assert f"{workers} aborted, {3 - workers} not run" in out
    # Resume (with a config that finishes quickly) runs the aborted and the never-started runs.
    code, out, err = expman(
        "run", str(cfg), "--resume", "--force", "--set", "trainer.max_epochs=1", cwd=tmp_path
    )
    assert code == 0, err
    after = runs_of(tmp_path)
    assert after[:workers] == rows
    assert sorted((r["repeat_idx"], r["status"]) for r in after[workers:]) == [
        (k, "COMPLETED") for k in (1, 2, 3)
    ]


@pytest.mark.slow
def test_drop_in_example(tmp_path, monkeypatch, capsys):
    from examples.drop_in import main

    monkeypatch.chdir(tmp_path)
    assert main(["--epochs", "1", "--db", f"sqlite:///{tmp_path / 'expman.db'}"]) == 0
    assert "trial run 1: COMPLETED, test_acc=" in capsys.readouterr().out
    (row,) = runs_of(tmp_path, "digits_drop_in")
    assert row["status"] == "COMPLETED" and row["epochs"] == 1 and row["trial"] == "mlp-h64"


@pytest.mark.slow
def test_killed_worker_run_is_recorded_lost(tmp_path):
    """A worker killed mid-run (OOM killer, segfault): its run is LOST at once, the other goes on."""
    trials = [{"name": "long", "id": 1, "repeat": 2}]
    cfg = write_config(tmp_path, trials, settings={**TINY, "trainer": {"max_epochs": 100_000}})
    proc = subprocess.Popen(
        [str(EXPMAN), "run", str(cfg), "--workers", "2"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        start_new_session=True,
    )
    try:
        _wait_for_running(tmp_path, proc, 2)
        victim = next(r for r in runs_of(tmp_path) if r["repeat_idx"] == 1)
        os.kill(victim["context"]["pid"], signal.SIGKILL)
        # Recorded while the other worker still trains (its progress events keep the parent
        # busy): not only when the grid ends.
        deadline = time.monotonic() + 30
        seen = "RUNNING"
        while seen == "RUNNING" and time.monotonic() < deadline:
            seen = next(r for r in runs_of(tmp_path) if r["id"] == victim["id"])["status"]
            time.sleep(0.3)
        assert seen == "LOST"
        os.killpg(proc.pid, signal.SIGINT)  # end the other, endless run
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    rows = {r["repeat_idx"]: r for r in runs_of(tmp_path)}
    assert rows[1]["status"] == "LOST" and "its process is gone" in rows[1]["error"]
    assert rows[2]["status"] == "ABORTED"
    assert re.search(r"\[1/2\] long run 1/2 seed 42 LOST .*died \(exit code -9\)", out)
    assert proc.returncode == 130, err
