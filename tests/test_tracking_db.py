"""DBTracker on real databases: statuses from TrackScope, artifacts per level, pickling, heartbeat."""

from __future__ import annotations

import pickle
import time

import pytest

from lightning_expman import Level, RunStatus
from lightning_expman.db import DatabaseManager
from lightning_expman.db import models as m
from lightning_expman.errors import ConfigError
from lightning_expman.tracking import TrackerManager, TrackScope, build_tracker
from lightning_expman.tracking.db import DBTracker


def test_failed_and_aborted_runs_keep_their_data(db_url, tmp_path):
    tracker = DBTracker(db_url, flush_interval=3600)
    manager = TrackerManager([tracker])
    ids = []
    with TrackScope(manager, Level.EXPERIMENT, name="statuses"), TrackScope(manager, Level.TRIAL, name="t"):
        with pytest.raises(ValueError), TrackScope(manager, Level.TRIAL_RUN, repeat_idx=1, seed=7):
            ids.append(tracker.trial_run_id)
            manager.log_params({"optimizer": {"name": "adam", "lr": 1e-3}})
            with TrackScope(manager, Level.EPOCH, epoch_idx=0):
                manager.track_dict({"loss": 0.5, "acc": float("nan")}, step=0, level=Level.BATCH)
                manager.track("val_loss", 0.4, level=Level.EPOCH)
                raise ValueError("diverged: loss is nan")
        with pytest.raises(KeyboardInterrupt), TrackScope(manager, Level.TRIAL_RUN, repeat_idx=2):
            ids.append(tracker.trial_run_id)
            manager.track_dict({"loss": 0.9}, step=0, level=Level.BATCH)
            manager.track("acc", {"cat": 1.0, "dog": 0.0}, step=0, level=Level.BATCH)  # per-label
            raise KeyboardInterrupt
        with TrackScope(manager, Level.TRIAL_RUN, repeat_idx=3):  # a third run: COMPLETED
            ids.append(tracker.trial_run_id)
    assert tracker.trial_run_id is None
    tracker.close()

    reader = DatabaseManager(db_url)
    try:
        runs = {r.id: r for r in m.TrialRun.select().where(m.TrialRun.id.in_(ids))}
        failed, aborted, done = (runs[i] for i in ids)
        assert (failed.status, failed.error, failed.seed) == (
            "FAILED",
            "ValueError: diverged: loss is nan",
            7,
        )
        assert aborted.status == "ABORTED" and aborted.error.startswith("KeyboardInterrupt")
        assert done.status == "COMPLETED" and done.error is None and done.end_time is not None
        assert len({r.trial_id for r in runs.values()}) == 1  # one trial, three runs
        steps = {(s.trial_run_id, s.name): s.value for s in m.StepMetric.select()}
        assert steps == {
            (ids[0], "loss"): 0.5,
            (ids[0], "acc"): None,  # NaN
            (ids[1], "loss"): 0.9,
            (ids[1], "acc"): 0.5,
            (ids[1], "acc/cat"): 1.0,
            (ids[1], "acc/dog"): 0.0,
        }
        (val,) = reader.get_epoch_metrics(0, ids[0])
        assert (val.type, val.total_val) == ("val_loss", pytest.approx(0.4))
        params = {p.key: p.value for p in m.RunParam.select().where(m.RunParam.trial_run == ids[0])}
        assert params == {"optimizer.name": "adam", "optimizer.lr": 1e-3}
    finally:
        reader.close()


def test_artifacts_link_to_their_level_and_same_names_reuse_rows(sqlite_url, tmp_path):
    tracker = DBTracker(sqlite_url)
    manager = TrackerManager([tracker])
    for repeat in (1, 2):
        with TrackScope(manager, Level.EXPERIMENT, name="arts"), TrackScope(manager, Level.TRIAL, name="t"):
            manager.on_add_artifact(Level.EXPERIMENT, "exp.yaml")
            manager.on_add_artifact(Level.TRIAL, "trial.yaml", "config")
            with TrackScope(manager, Level.TRIAL_RUN, repeat_idx=repeat):
                with TrackScope(manager, Level.EPOCH, epoch_idx=3):
                    manager.on_add_artifact(Level.EPOCH, "confusion.png")
                manager.on_checkpoint(None, f"last-{repeat}.ckpt", epoch=3)
                manager.on_checkpoint(None, f"last-{repeat}.ckpt", epoch=3, best=True)  # same file again
                manager.track("trial_level", 1.0, level=Level.TRIAL)  # stored with the trial (schema v3)
    tracker.close()

    reader = DatabaseManager(sqlite_url)
    try:
        assert m.Experiment.select().count() == 1 and m.Trial.select().count() == 1
        (exp,) = m.Experiment.select()
        assert sorted((a.location, a.type) for a in reader.get_experiment_artifacts(exp.id)) == [
            ("exp.yaml", "config"),
            ("exp.yaml", "config"),
        ]
        run_ids = [r.id for r in m.TrialRun.select().order_by(m.TrialRun.id)]
        epoch_arts = sorted((a.location, a.type) for a in reader.get_epoch_artifacts(3, run_ids[1]))
        assert epoch_arts == [("confusion.png", "plot"), ("last-2.ckpt", "checkpoint")]
        run_arts = [(a.location, a.type) for a in reader.get_trial_run_artifacts(run_ids[1])]
        assert ("last-2.ckpt", "checkpoint") in run_arts
        # Reported twice (saved, then best at the end): one artifact row with every link.
        assert m.Artifact.select().where(m.Artifact.location == "last-2.ckpt").count() == 1
        (best,) = m.ResultsArtifact.select().where(m.ResultsArtifact.results == run_ids[1])
        assert best.artifact.location == "last-2.ckpt"
        (trial,) = m.Trial.select()
        trial_metrics = reader.get_trial_metrics(trial.id)
        trial_level = [(x.type, x.total_val) for x in trial_metrics if x.type == "trial_level"]
        assert trial_level == [("trial_level", 1.0), ("trial_level", 1.0)]
    finally:
        reader.close()


def test_removed_artifacts_lose_their_rows_and_links_only_for_their_entity(db_url):
    tracker = DBTracker(db_url, flush_interval=3600)
    manager = TrackerManager([tracker])
    runs = []
    with TrackScope(manager, Level.EXPERIMENT, name="removals"), TrackScope(manager, Level.TRIAL, name="t"):
        manager.on_add_artifact(Level.EXPERIMENT, "notes.txt")
        for repeat in (1, 2):
            with TrackScope(manager, Level.TRIAL_RUN, repeat_idx=repeat):
                runs.append(tracker.trial_run_id)
                for epoch in (0, 1):
                    with TrackScope(manager, Level.EPOCH, epoch_idx=epoch):
                        manager.on_checkpoint(None, f"epoch={epoch}.ckpt", epoch=epoch)  # same names per run
                manager.on_checkpoint(None, "epoch=1.ckpt", epoch=1, best=True)
                manager.on_add_artifact(Level.TRIAL_RUN, "summary.txt", "model_summary")
                if repeat == 2:
                    # top-k deleted epoch 0's file, then epoch 1's (the best: RESULTS link too);
                    # a path never recorded, or recorded with another type, is left alone.
                    manager.on_remove_artifact(Level.TRIAL_RUN, "epoch=0.ckpt", "checkpoint", epoch=0)
                    manager.on_remove_artifact(Level.TRIAL_RUN, "epoch=1.ckpt", "checkpoint")
                    manager.on_remove_artifact(Level.TRIAL_RUN, "never-recorded.ckpt", "checkpoint")
                    manager.on_remove_artifact(Level.TRIAL_RUN, "summary.txt", "checkpoint")
        manager.on_remove_artifact(Level.EXPERIMENT, "notes.txt")
    manager.on_remove_artifact(Level.TRIAL_RUN, "epoch=0.ckpt", "checkpoint")  # no open run: ignored
    tracker.close()

    reader = DatabaseManager(db_url)
    try:
        names = {
            run: sorted(a.location for a in reader.get_trial_run_artifacts(run, include_children=True))
            for run in runs
        }
        assert names[runs[0]] == ["epoch=0.ckpt", "epoch=1.ckpt", "summary.txt"]  # the other run keeps its
        assert names[runs[1]] == ["summary.txt"]
        assert m.ResultsArtifact.select().where(m.ResultsArtifact.results == runs[1]).count() == 0
        assert m.EpochArtifact.select().where(m.EpochArtifact.trial_run == runs[1]).count() == 0
        (exp,) = m.Experiment.select().where(m.Experiment.title == "removals")
        assert reader.get_experiment_artifacts(exp.id) == []
        # no orphan artifact rows: 2 checkpoints + a summary for run 1, a summary for run 2
        assert m.Artifact.select().count() == 4
    finally:
        reader.close()


def test_picklable_before_and_during_use(sqlite_url):
    tracker = DBTracker(sqlite_url)
    fresh = pickle.loads(pickle.dumps(tracker))  # before the first event: nothing opened
    manager = TrackerManager([fresh])
    manager.on_create(Level.EXPERIMENT, name="pickled")
    manager.on_create(Level.TRIAL, name="t")
    manager.on_create(Level.TRIAL_RUN)
    manager.track_dict({"loss": 1.0}, step=1, level=Level.BATCH)
    copy = pickle.loads(pickle.dumps(fresh))  # mid-run: ids travel, connection and thread do not
    assert copy.trial_run_id == fresh.trial_run_id and copy._writer is None and copy._manager is None
    copy.track_dict({"loss": 2.0}, step=2, level=Level.BATCH)
    copy.close()
    manager.on_end(Level.TRIAL_RUN, status=RunStatus.COMPLETED)
    manager.close()
    reader = DatabaseManager(sqlite_url)
    try:
        assert sorted(s.step for s in m.StepMetric.select()) == [1, 2]
    finally:
        reader.close()


def test_heartbeat_is_refreshed_while_a_run_is_open(sqlite_url):
    tracker = DBTracker(sqlite_url, flush_interval=0.02, stale_after=0.2)  # a beat every 0.05 s
    manager = TrackerManager([tracker])
    manager.on_create(Level.EXPERIMENT, name="hb")
    manager.on_create(Level.TRIAL, name="t")
    manager.on_create(Level.TRIAL_RUN)
    run_id = tracker.trial_run_id
    first = m.TrialRun.get_by_id(run_id).heartbeat
    deadline = time.monotonic() + 20
    while m.TrialRun.get_by_id(run_id).heartbeat == first:
        assert time.monotonic() < deadline, "heartbeat never refreshed"
        time.sleep(0.02)
    manager.on_end(Level.TRIAL_RUN)
    manager.close()


def test_default_url_from_workspace_and_errors(tmp_path):
    tracker = build_tracker({"type": "db"}, workspace=tmp_path / "ws")
    assert tracker.url == f"sqlite:///{tmp_path / 'ws' / 'expman.db'}"
    tracker.track("loss", 1.0, step=0)  # outside a run: ignored, nothing opened
    assert tracker._manager is None
    with pytest.raises(ConfigError, match="needs a url"):
        DBTracker()
    lazy = DBTracker("mysql://ml:s3cret@db.example.org/runs")  # nothing is opened yet
    assert "s3cret" not in repr(lazy) and "ml:***@db.example.org" in repr(lazy)


def test_a_given_manager_is_shared_not_closed_and_survives_pickling(sqlite_url):
    db = DatabaseManager(sqlite_url)
    tracker = DBTracker(manager=db)
    manager = TrackerManager([tracker])
    with TrackScope(manager, Level.EXPERIMENT, name="shared"), TrackScope(manager, Level.TRIAL_RUN):
        manager.track("test_acc", 0.5, level=Level.TRIAL_RUN)
        copy = pickle.loads(pickle.dumps(tracker))
    tracker.close()
    assert not db.database.is_closed()  # the caller's manager stays open
    assert [r.type for r in db.get_trial_run_metrics(copy.trial_run_id)] == ["test_acc"]
    copy.on_add_artifact(Level.TRIAL_RUN, "model.pt")  # reopens its own connection from the URL
    copy.close()
    assert [a.location for a in db.get_trial_run_artifacts(copy.trial_run_id)] == ["model.pt"]
    db.close()


def test_a_failed_background_write_surfaces_at_run_end_and_fails_the_run(sqlite_url):
    from lightning_expman.errors import DatabaseError

    tracker = DBTracker(sqlite_url, flush_interval=3600)
    manager = TrackerManager([tracker])
    manager.on_create(Level.EXPERIMENT, name="err")
    manager.on_create(Level.TRIAL, name="t")
    manager.on_create(Level.TRIAL_RUN)
    run_id = tracker.trial_run_id
    manager.track_dict({"loss": 1.0}, step=0, level=Level.BATCH)
    tracker.writer.submit(tracker.manager.add_artifact, "plot", "p.png", trial_id=999_999)  # unknown trial
    with pytest.raises(DatabaseError, match="trial id 999999 does not exist") as info:
        manager.on_end(Level.TRIAL_RUN, status=RunStatus.COMPLETED)
    assert info.value.__cause__ is not None
    row = m.TrialRun.get_by_id(run_id)  # its data is incomplete: it does not look successful
    assert row.status == "FAILED" and "1 value(s) not written" in row.error
    assert m.StepMetric.select().where(m.StepMetric.trial_run == run_id).count() == 1
    tracker.close()


def test_levels_above_the_run_steps_at_run_level_and_warnings(sqlite_url, caplog):
    """EXPERIMENT/TRIAL values are stored with their step; ``step=`` at run level is a series point;
    a value with nowhere to go is a WARNING, once per metric and level."""
    import logging

    caplog.set_level(logging.WARNING, "lightning_expman")
    tracker = DBTracker(sqlite_url)
    manager = TrackerManager([tracker])
    for _ in range(2):
        manager.track("orphan", 1.0)
    with TrackScope(manager, Level.EXPERIMENT, name="levels"):
        manager.track("exp_best", 0.9, step=7)
        with TrackScope(manager, Level.TRIAL, name="t"):
            manager.track_dict({"trial_mean": 0.8})
            with TrackScope(manager, Level.TRIAL_RUN, repeat_idx=1):
                manager.track("train_loss", 0.5, step=1)
                manager.track("train_loss", 0.4, step=2)
                manager.track_dict({"val_loss": 0.3}, step=2)
                manager.track("test_acc", 0.7)
    tracker.close()
    orphan_warnings = [r for r in caplog.records if "orphan" in r.getMessage()]
    assert len(orphan_warnings) == 1 and orphan_warnings[0].levelno == logging.WARNING
    reader = DatabaseManager(sqlite_url)
    try:
        exp, trial, run = m.Experiment.get(), m.Trial.get(), m.TrialRun.get()
        assert [(x.type, x.total_val, s) for x, s in reader.get_level_metrics(experiment_id=exp.id)] == [
            ("exp_best", 0.9, 7)
        ]
        assert [(x.type, s) for x, s in reader.get_level_metrics(trial_id=trial.id)] == [("trial_mean", None)]
        steps = sorted(
            (s.name, s.step, s.value) for s in m.StepMetric.select().where(m.StepMetric.trial_run == run.id)
        )
        assert steps == [("train_loss", 1, 0.5), ("train_loss", 2, 0.4), ("val_loss", 2, 0.3)]
        results = [x.type for x in reader.get_trial_run_metrics(run.id)]
        assert results == ["test_acc"]  # the two train_loss values did not become two results
        assert {x.type for x in reader.get_experiment_metrics(exp.id)} == {
            "exp_best",
            "trial_mean",
            "test_acc",
        }
        assert m.MetricRecord.select().where(m.MetricRecord.type == "orphan").count() == 0
    finally:
        reader.close()
