"""``expman rm`` on SQLite, MariaDB and PostgreSQL: exactly the rows of what is deleted go."""

from __future__ import annotations

import pytest

from lightning_expman.cli import main
from lightning_expman.coordination import Claimer
from lightning_expman.db import DatabaseManager
from lightning_expman.db import models as m


def _record(db: DatabaseManager, title: str, statuses: list[str], tmp_path) -> list[int]:
    """An experiment with one trial, a run per status (an epoch metric and a checkpoint each)."""
    exp = db.create_experiment(title)
    trial = db.create_trial(exp.id, "t")
    claimer = Claimer(db)
    claimer.register([(trial.id, i) for i in range(1, len(statuses) + 1)])
    runs = []
    for i, status in enumerate(statuses, 1):
        claim = claimer.claim(trial.id, i)
        db.record_epoch_metrics(claim.run_id, 0, [("val_loss", 0.5, None)])
        ckpt = tmp_path / f"{title}-{i}.ckpt"
        ckpt.write_bytes(b"weights")
        db.add_artifact("checkpoint", str(ckpt), trial_run_id=claim.run_id, epoch_idx=0)
        if status != "RUNNING":
            db.finish_trial_run(claim.run_id, status, owner=claim.owner)
        runs.append(claim.run_id)
    return runs


def _count(db: DatabaseManager, model) -> int:
    return model.select().count(db.database)


def test_rm_failed_runs_then_a_run_with_its_files_then_an_experiment(db_url, tmp_path, capsys):
    db = DatabaseManager(db_url)
    try:
        done, *_ = _record(db, "exp", ["COMPLETED", "FAILED", "ABORTED"], tmp_path)
        (other,) = _record(db, "other", ["COMPLETED"], tmp_path)
        before = {model: _count(db, model) for model in (m.TrialRun, m.MetricRecord, m.Artifact, m.Epoch)}

        assert main(["rm", "exp", "--failed", "--dry-run", "--db", db_url]) == 0
        assert "would delete 2 failed/aborted/lost run(s) of experiment 'exp'" in capsys.readouterr().out
        assert main(["rm", "exp", "--failed", "--db", db_url]) == 2  # no terminal, no --yes
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and "pass --yes" in err
        assert {model: _count(db, model) for model in before} == before  # nothing changed

        assert main(["rm", "exp", "--failed", "--yes", "--db", db_url]) == 0
        left = {r.id for r in m.TrialRun.select().execute(db.database)}
        assert left == {done, other}
        assert _count(db, m.MetricRecord) == before[m.MetricRecord] - 2  # their metrics, not shared ones
        assert _count(db, m.Artifact) == before[m.Artifact] - 2 and _count(db, m.Epoch) == 2
        free = m.Claim.select().where(m.Claim.trial_run.is_null()).count(db.database)
        assert free == 2  # the deleted units can run again

        ckpt = tmp_path / "exp-1.ckpt"
        assert main(["rm", "--run", str(done), "--artifacts", "--yes", "--db", db_url]) == 0
        assert not ckpt.exists() and (tmp_path / "other-1.ckpt").exists()

        assert main(["rm", "other", "--yes", "--db", db_url]) == 0
        assert [e.title for e in m.Experiment.select().execute(db.database)] == ["exp"]
        assert _count(db, m.TrialRun) == 0 and _count(db, m.MetricRecord) == 0 and _count(db, m.Artifact) == 0
    finally:
        db.close()


def test_rm_refuses_running_runs_and_bad_arguments(sqlite_url, tmp_path, capsys):
    db = DatabaseManager(sqlite_url)
    try:
        (running,) = _record(db, "exp", ["RUNNING"], tmp_path)
    finally:
        db.close()
    assert main(["rm", "--run", str(running), "--yes", "--db", sqlite_url]) == 1  # the run's state
    assert "RUNNING with a live lease" in capsys.readouterr().err
    assert main(["rm", "--db", sqlite_url]) == 2
    assert "name an EXPERIMENT" in capsys.readouterr().err
    assert main(["rm", "exp", "--run", "1", "--db", sqlite_url]) == 2
    assert "not both" in capsys.readouterr().err
    assert main(["rm", "nope", "--yes", "--db", sqlite_url]) == 1  # not in the database: runtime
    assert "unknown experiment 'nope'" in capsys.readouterr().err


@pytest.mark.parametrize("args", [["rm", "--help"]])
def test_rm_help_has_an_example(args, capsys):
    with pytest.raises(SystemExit):
        main(args)
    assert "Examples:\n  expman rm digits --failed --dry-run" in capsys.readouterr().out
