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
    # One run per folder: the aborted run's files moved aside, its recorded paths with them.
    trials = tmp_path / "ws" / "exp" / "trials" / "t"
    aside = trials / f"run_1.r{first['id']}"
    assert (aside / "artifacts" / "checkpoints" / "last.ckpt").is_file()
    from lightning_expman.db import DatabaseManager

    with DatabaseManager(db_url(tmp_path)) as db:
        old = [a.location for a in db.get_trial_run_artifacts(first["id"])]
        new = [a.location for a in db.get_trial_run_artifacts(second["id"])]
    assert old and all(p.startswith(str(aside)) and os.path.exists(p) for p in old)
    assert new and all(p.startswith(str(trials / "run_1") + os.sep) for p in new)


# --------------------------------------------------------------------------- drop-in

SCRIPT = REPO / "tests" / "scripts" / "dropin_fit.py"


def _kill(args: list[str], kill: str, env: dict[str, str] | None = None) -> None:
    died = subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        cwd=REPO,
        env={**_env(kill), **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert died.returncode != 0, died.stdout + died.stderr


@pytest.mark.slow
def test_dropin_fit_from_last_checkpoint_continues_the_same_run(tmp_path, monkeypatch):
    from tests.scripts.dropin_fit import EPOCHS, fit

    _kill([str(tmp_path)], f"{KILL_EPOCH}:KILL")
    (first,) = runs_of(tmp_path, "dropin")
    assert first["status"] == "RUNNING" and KILL_EPOCH in _history(tmp_path, first["id"])[0]

    monkeypatch.delenv("EXPMAN_TEST_KILL", raising=False)
    logger = fit(str(tmp_path), "last")
    (run,) = runs_of(tmp_path, "dropin")  # no second row: the fit continued the killed one
    assert logger.run_id == first["id"] == run["id"]
    assert (run["status"], run["attempts"]) == ("COMPLETED", 2)
    epochs, steps, _ = _history(tmp_path, run["id"])
    assert epochs == list(range(EPOCHS)) and steps == list(range(EPOCHS * 4))


@pytest.mark.slow
def test_slurm_requeue_continues_the_same_run(tmp_path, monkeypatch):
    """Lightning's requeue path without SLURM: SIGUSR1 saves ``hpc_ckpt_1.ckpt`` mid-epoch and calls
    ``scontrol requeue`` (here a script that SIGKILLs the job, as the scheduler would); the requeued
    job (same job id, restart count 1) fits again and Lightning restores the hpc checkpoint."""
    from tests.scripts.dropin_fit import EPOCHS, fit

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    scontrol = bin_dir / "scontrol"
    scontrol.write_text('#!/bin/sh\necho "$@" > "$(dirname "$0")/requeued"\nkill -9 $PPID\n')
    scontrol.chmod(0o755)
    slurm = {"SLURM_NTASKS": "1", "SLURM_JOB_NAME": "train", "SLURM_JOB_ID": "4242", "SLURM_PROCID": "0"}
    slurm |= {"SLURM_LOCALID": "0", "SLURM_NODEID": "0", "SLURM_NODELIST": "localhost"}
    save_dir = tmp_path / "runs"
    path = f"{bin_dir}{os.pathsep}{os.environ['PATH']}"
    _kill([str(save_dir)], f"{KILL_EPOCH}:USR1", {**slurm, "PATH": path})
    assert (bin_dir / "requeued").read_text().split() == ["requeue", "4242"]
    assert list(save_dir.glob("hpc_ckpt_*.ckpt"))
    (first,) = runs_of(save_dir, "dropin")

    for key, value in {**slurm, "SLURM_RESTART_COUNT": "1"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("EXPMAN_TEST_KILL", raising=False)
    logger = fit(str(save_dir))  # no ckpt_path: Lightning picks the hpc checkpoint on SLURM
    (run,) = runs_of(save_dir, "dropin")
    assert logger.run_id == first["id"] == run["id"]
    assert (run["status"], run["attempts"]) == ("COMPLETED", 2)
    epochs, steps, _ = _history(save_dir, run["id"])
    assert epochs == list(range(EPOCHS)) and len(steps) == len(set(steps))
    # Each step once. The signal arrived in on_train_batch_end of step 9, before Lightning logs
    # that step's values; the hpc checkpoint counts the batch as done, so nobody logs step 9.
    assert set(range(EPOCHS * 4)) - set(steps) <= {KILL_EPOCH * 4 + 1}


@pytest.mark.slow
def test_tuner_calls_record_no_run(tmp_path):
    import lightning as L
    from lightning.pytorch.tuner import Tuner

    from lightning_expman.lightning import ExpmanLogger
    from tests.tiny import TinyClassifier, TinyDataModule, fast_trainer_kwargs

    logger = ExpmanLogger("tuned", "tiny", save_dir=str(tmp_path))
    trainer = L.Trainer(logger=logger, **fast_trainer_kwargs(max_epochs=2, default_root_dir=str(tmp_path)))
    model, data = TinyClassifier(), TinyDataModule()
    tuner = Tuner(trainer)
    tuner.lr_find(model, datamodule=data, num_training=5)
    tuner.scale_batch_size(model, datamodule=data, max_trials=2, steps_per_trial=1)
    assert runs_of(tmp_path, "tuned") == []
    trainer.fit(model, datamodule=data)
    logger.close()
    (run,) = runs_of(tmp_path, "tuned")
    assert (run["status"], run["epochs"], run["attempts"]) == ("COMPLETED", 2, 1)


@pytest.mark.slow
def test_recording_the_grid_again_moves_each_runs_files_aside(tmp_path):
    from lightning_expman import Experiment

    settings = {**copy.deepcopy(SETTINGS), "trainer": {"max_epochs": 1}}
    cfg = write_config(tmp_path, [{"name": "t", "repeat": 1}], settings=settings)
    assert Experiment.create(cfg).run().exit_code == 0
    assert Experiment.create(cfg).run(resume=False, force=True).exit_code == 0  # --no-resume --force
    first, second = runs_of(tmp_path)
    trials = tmp_path / "ws" / "exp" / "trials" / "t"
    assert (trials / f"run_1.r{first['id']}" / "artifacts" / "checkpoints" / "last.ckpt").is_file()
    with open(trials / "run_1" / "artifacts" / "metrics.log", newline="") as f:
        assert [r["epoch"] for r in csv.DictReader(f)] == ["0", "final"]  # the new run's rows only
    assert second["status"] == "COMPLETED"
