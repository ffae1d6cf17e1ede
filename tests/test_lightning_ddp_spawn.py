"""``ddp_spawn`` with 2 CPU processes, as Lightning's own logger suite runs every logger
(``test_logger_initialization``): rank zero gets the real experiment, other ranks a dummy, and
only rank zero writes. The main process learns the run id / status of a fit that ran in spawned
workers, and a ``trainer.test()`` after such a fit lands in the same run (spawn.py's handoff)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from lightning_expman.db import models as m
from tests.ddp_support import run_ddp_script
from tests.test_lightning_logger import query, results_metrics

SCRIPT = Path(__file__).parent / "scripts" / "ddp_spawn_fit.py"


@pytest.fixture(scope="module")
def spawned(tmp_path_factory) -> tuple[str, subprocess.CompletedProcess]:
    root = tmp_path_factory.mktemp("spawn")
    url = f"sqlite:///{root / 'expman.db'}"
    proc = run_ddp_script(SCRIPT, url, root)
    return url, proc


@pytest.mark.slow
def test_ddp_spawn_rank_zero_writes_one_completed_fit(spawned):
    url, proc = spawned
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]  # RankZeroLoggerCheck passed
    with query(url):
        runs = list(m.TrialRun.select().order_by(m.TrialRun.id))
        assert runs[0].status == "COMPLETED"
        assert m.Epoch.select().where(m.Epoch.trial_run == runs[0].id).count() == 1
        steps = list(m.StepMetric.select(m.StepMetric.name, m.StepMetric.step).tuples())
        assert steps and len(steps) == len(set(steps)), "duplicated step rows: a second rank wrote"


@pytest.mark.slow
def test_ddp_spawn_main_process_knows_the_run(spawned):
    _, proc = spawned
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "after fit: run_id=1 status=COMPLETED" in proc.stdout
    assert "after test: run_id=1 status=COMPLETED" in proc.stdout
    assert "after validate: run_id=2 status=COMPLETED" in proc.stdout
    assert "after local test: run_id=2 status=COMPLETED" in proc.stdout


@pytest.mark.slow
def test_ddp_spawn_test_after_fit_is_the_same_run(spawned):
    url, _ = spawned
    with query(url):
        runs = list(m.TrialRun.select().order_by(m.TrialRun.id))
        assert [r.status for r in runs] == ["COMPLETED", "COMPLETED"]
        # The test joined the fit's run; after logger.close() the validate is a run of its own,
        # which the main process's own test then joins.
        assert set(results_metrics(runs[0].id)) == {"test_loss", "test_acc"}
        assert set(results_metrics(runs[1].id)) == {"val_loss", "val_acc", "test_loss", "test_acc"}
