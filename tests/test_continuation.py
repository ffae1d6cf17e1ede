"""Continuing a run from its last checkpoint: ``expman run`` after a real SIGKILL / SIGTERM, the
drop-in logger with ``fit(ckpt_path="last")``, SLURM's requeue path, and Tuner calls.

Each fit is real (tiny models on CPU). A killed attempt runs in a subprocess (``KillAt`` kills it
mid-epoch after the database writer flushed that epoch's first rows); the continuing attempt runs
in this process.
"""

from __future__ import annotations

import copy
import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.experiment_support import db_url, expman, runs_of, write_config

REPO = Path(__file__).resolve().parents[1]

EPOCHS = 5
KILL_EPOCH = 2
SETTINGS = {
    "seed": 42,
    "model": {"class_path": "tests.tiny.TinyClassifier", "init_args": {"hidden": 8, "lr": 0.1}},
    "data": {"class_path": "tests.tiny.TinyDataModule", "init_args": {"n": 64, "batch_size": 16}},
    "trainer": {"max_epochs": EPOCHS, "log_every_n_steps": 1},
    "callbacks": [{"type": "metrics_tracker"}, {"class_path": "tests.continue_support.KillAt"}],
}


def _env(kill: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "EXPMAN_TEST_KILL"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    if kill:
        env["EXPMAN_TEST_KILL"] = kill
    return env


def _history(root: Path, run_id: int) -> tuple[list[int], list[int], dict[str, float]]:
    """(epoch indexes, train_loss steps, final epoch's metrics) of a run, as stored."""
    from lightning_expman.db import DatabaseManager
    from lightning_expman.db import models as m

    with DatabaseManager(db_url(root)) as db:
        d = db.database
        epochs = [
            r[0] for r in m.Epoch.select(m.Epoch.idx).where(m.Epoch.trial_run == run_id).tuples().execute(d)
        ]
        SM = m.StepMetric
        steps = [
            r[0]
            for r in SM.select(SM.step)
            .where((SM.trial_run == run_id) & (SM.name == "train_loss"))
            .tuples()
            .execute(d)
        ]
        last = max(epochs) if epochs else None
        final = (
            {mr.type: mr.total_val for mr in db.get_epoch_metrics(last, run_id)} if last is not None else {}
        )
        final.update({mr.type: mr.total_val for mr in db.get_trial_run_metrics(run_id)})
    return sorted(epochs), sorted(steps), final


@pytest.mark.slow
@pytest.mark.parametrize("sig", ["KILL", "TERM"])
def test_expman_run_continues_a_killed_run_in_the_same_row(tmp_path, sig):
    cfg = write_config(tmp_path, [{"name": "t", "repeat": 1}], settings=copy.deepcopy(SETTINGS))
    died = subprocess.run(
        [sys.executable, "-m", "lightning_expman.cli", "run", str(cfg)],
        cwd=REPO,
        env=_env(f"{KILL_EPOCH}:{sig}"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert died.returncode != 0, died.stdout + died.stderr
    (first,) = runs_of(tmp_path)
    epochs, _, _ = _history(tmp_path, first["id"])
    assert KILL_EPOCH in epochs  # the dead attempt recorded part of the epoch it died in

    code, out, err = expman("run", str(cfg), cwd=REPO)
    assert code == 0, out + err
    (run,) = runs_of(tmp_path)
    assert run["id"] == first["id"] and run["status"] == "COMPLETED" and run["attempts"] == 2
    epochs, steps, final = _history(tmp_path, run["id"])
    assert epochs == list(range(EPOCHS))
    assert steps == list(range(EPOCHS * 4))  # 4 batches per epoch, each step once
    log = tmp_path / "ws" / "exp" / "trials" / "t" / "run_1" / "artifacts" / "metrics.log"
    with open(log, newline="") as f:
        assert [r["epoch"] for r in csv.DictReader(f)] == [*map(str, range(EPOCHS)), "final"]

    # The same grid never interrupted: the same final metrics (same seed, restored RNG state).
    other = tmp_path / "plain"
    cfg2 = write_config(other, [{"name": "t", "repeat": 1}], settings=copy.deepcopy(SETTINGS))
    code, out, err = expman("run", str(cfg2), cwd=REPO)
    assert code == 0, out + err
    (plain,) = runs_of(other)
    assert _history(other, plain["id"])[2] == final


@pytest.mark.slow
def test_restart_starts_an_interrupted_run_over_as_a_new_row(tmp_path):
    cfg = write_config(tmp_path, [{"name": "t", "repeat": 1}], settings=copy.deepcopy(SETTINGS))
    died = subprocess.run(
        [sys.executable, "-m", "lightning_expman.cli", "run", str(cfg)],
        cwd=REPO,
        env=_env(f"{KILL_EPOCH}:TERM"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert died.returncode != 0
    code, out, err = expman("run", str(cfg), "--restart", cwd=REPO)
    assert code == 0, out + err
    first, second = runs_of(tmp_path)
    assert first["status"] == "ABORTED" and second["status"] == "COMPLETED"
    assert second["attempts"] == 1 and _history(tmp_path, second["id"])[0] == list(range(EPOCHS))
