"""Continuing a run, database side (no Lightning): the claim that continues a unit's run, the
drop-in ``reclaim``, superseding rows past a checkpoint, and which failures continue — on SQLite,
MariaDB and PostgreSQL."""

from __future__ import annotations

import time

import pytest

from lightning_expman.continuation import continuable_status, fault_error, supersede
from lightning_expman.coordination import Claimer, reclaim
from lightning_expman.db import DatabaseManager
from lightning_expman.db import models as m


@pytest.fixture
def db(db_url):
    manager = DatabaseManager(db_url)
    yield manager
    manager.close()


def _row(db: DatabaseManager, run_id: int) -> m.TrialRun:
    return m.TrialRun.select().where(m.TrialRun.id == run_id).get(db.database)


def _interrupted_unit(db: DatabaseManager) -> tuple[int, int]:
    trial = db.create_trial(db.create_experiment("grid").id, "t").id
    claimer = Claimer(db, stale_after=60)
    claimer.register([(trial, 1)])
    claim = claimer.claim(trial, 1, seed=7)
    db.finish_trial_run(claim.run_id, "aborted", error="KeyboardInterrupt: ", owner=claim.owner)
    time.sleep(0.01)  # later sessions start after the claim (the clock has millisecond steps)
    return trial, claim.run_id


def test_claim_continues_the_units_run_in_the_same_row(db):
    trial, run = _interrupted_unit(db)
    later = Claimer(db, stale_after=30)  # a later session: the ABORTED unit is free
    claim = later.claim(trial, 1, continue_run=run)
    assert claim is not None and claim.run_id == run
    row = _row(db, run)
    assert (row.status, row.attempts, row.owner, row.lease_s) == ("RUNNING", 2, claim.owner, 30.0)
    assert row.end_time is None and row.error is None and row.seed == 7
    assert m.TrialRun.select().count(db.database) == 1
    # Held now: nobody else continues it, nor claims the unit.
    assert Claimer(db).claim(trial, 1, continue_run=run) is None
    assert Claimer(db).claim(trial, 1) is None
    db.finish_trial_run(run, "completed", owner=claim.owner)
    assert _row(db, run).status == "COMPLETED"


def test_claim_refuses_to_continue_a_run_that_is_no_longer_the_units(db):
    trial, run = _interrupted_unit(db)
    fresh = Claimer(db).claim(trial, 1)  # another process started the unit over
    db.finish_trial_run(fresh.run_id, "failed", error="OSError: disk", owner=fresh.owner)
    time.sleep(0.01)
    assert Claimer(db).claim(trial, 1, continue_run=run) is None
    assert _row(db, run).attempts == 1


def test_reclaim_takes_a_finished_run_but_never_a_live_one(db):
    trial, run = _interrupted_unit(db)
    claim = reclaim(db, run, stale_after=45)
    assert claim is not None and (claim.trial_id, claim.repeat_idx, claim.run_id) == (trial, 1, run)
    assert (_row(db, run).status, _row(db, run).attempts) == ("RUNNING", 2)
    # RUNNING under a live lease (this process): refused, unless its holder is known to be dead.
    assert reclaim(db, run) is None
    taken = reclaim(db, run, take_over=claim.owner)
    assert taken is not None and taken.owner != claim.owner
    assert (_row(db, run).attempts, _row(db, run).owner) == (3, taken.owner)
    assert reclaim(db, 9999) is None


def test_supersede_deletes_what_was_recorded_past_the_checkpoint(db):
    trial = db.create_trial(db.create_experiment("e").id, "t").id
    run = db.create_trial_run(trial).id
    for epoch in range(4):
        db.record_epoch_metrics(run, epoch, {"val_loss": 1.0 / (epoch + 1)})
    db.record_step_metrics([(run, step, step // 3, "train_loss", float(step)) for step in range(12)])
    db.record_results_metrics(run, {"test_acc": 0.5})
    other = db.create_trial_run(trial).id
    db.record_epoch_metrics(other, 3, {"val_loss": 0.1})

    counts = supersede(db, run, epoch=2, step=7)
    assert counts["epochs"] == 2 and counts["epoch_metrics"] == 2 and counts["results"] == 1
    epochs = [e.idx for e in m.Epoch.select().where(m.Epoch.trial_run == run).order_by(m.Epoch.idx)]
    assert epochs == [0, 1]
    steps = sorted(s.step for s in m.StepMetric.select().where(m.StepMetric.trial_run == run))
    assert steps == [0, 1, 2, 3, 4, 5, 6]  # step 6 belongs to epoch 2 but precedes the checkpoint
    assert m.ResultsMetric.select().where(m.ResultsMetric.results == run).count(db.database) == 0
    assert [x.total_val for x in db.get_epoch_metrics(3, other)] == [0.1]  # other runs untouched
    assert m.MetricRecord.select().count(db.database) == 3  # deleted links took their metrics along


@pytest.mark.parametrize(
    ("status", "error", "continues"),
    [
        ("ABORTED", "KeyboardInterrupt: ", True),
        ("LOST", "lost: its process is gone", True),
        ("FAILED", "OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB", True),
        ("FAILED", "OSError: [Errno 28] No space left on device", True),
        ("FAILED", "RuntimeError: DefaultCPUAllocator: can't allocate memory", True),
        ("FAILED", "RuntimeError: planted failure at step 3", False),
        ("FAILED", "ValueError: bad shape", False),
        ("FAILED", None, False),
        ("COMPLETED", None, False),
        ("RUNNING", None, False),
    ],
)
def test_which_interrupted_runs_continue(status, error, continues):
    assert continuable_status(status, error) is continues
    assert fault_error(error) is (continues and status == "FAILED")
