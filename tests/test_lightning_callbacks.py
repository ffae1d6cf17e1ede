"""EarlyStopping (min_delta_percent), CheckpointCallback, MetricsTracker and the callback registry."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from lightning.pytorch.callbacks import LearningRateMonitor

from lightning_expman import ConfigError, Metric, RunStatus
from lightning_expman.callbacks import (
    CALLBACKS,
    CheckpointCallback,
    EarlyStopping,
    MetricsTracker,
    build_callback,
    register_callback,
)
from lightning_expman.db import models as m
from tests.test_lightning_logger import fit, make_logger, query
from tests.tiny import ScriptedModel, TinyClassifier


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# ---------------------------------------------------------------------- EarlyStopping


def test_early_stopping_min_delta_percent_stops_at_the_computed_epoch(tmp_path):
    # Strictly decreasing, so plain EarlyStopping would never stop. With 1 % required:
    # e0 1.0 best | e1 0.995 (-0.5 %) wait 1 | e2 0.985 (-1.5 %) best | e3 0.98 (-0.5 %) wait 1
    # | e4 0.976 (-0.9 %) wait 2 = patience -> stop at epoch 4.
    losses = (1.0, 0.995, 0.985, 0.98, 0.976, 0.97, 0.96)
    logger = make_logger(tmp_path)
    stopper = EarlyStopping(metric=Metric.VAL_LOSS, patience=2, min_delta_percent=1.0, mode="min")
    fit(logger, ScriptedModel(val_losses=losses), callbacks=[stopper], max_epochs=7)
    assert stopper.stopped_epoch == 4
    assert logger.status is RunStatus.STOPPED
    with query(logger._db_url):
        run = m.TrialRun.get_by_id(logger.run_id)
        assert (run.status, run.stop_epoch, run.error) == ("STOPPED", 4, None)
        assert m.Epoch.select().where(m.Epoch.trial_run == run.id).count() == 5


def test_early_stopping_percent_in_max_mode_and_absolute_delta():
    stopper = EarlyStopping(monitor="val_acc", mode="max", patience=1, min_delta_percent=10.0)
    stopper.best_score = torch.tensor(0.5)
    should_stop, _ = stopper._evaluate_stopping_criteria(torch.tensor(0.54))  # +8 %: not enough
    assert should_stop and stopper.best_score == pytest.approx(0.5)
    stopper.wait_count = 0
    should_stop, _ = stopper._evaluate_stopping_criteria(torch.tensor(0.56))  # +12 %
    assert not should_stop and stopper.best_score == pytest.approx(0.56)
    assert stopper.min_delta == 0.0  # the widened delta applies to one check only

    absolute = EarlyStopping(monitor="val_loss", patience=1, min_delta=0.2, min_delta_percent=1.0)
    absolute.best_score = torch.tensor(1.0)
    assert absolute._evaluate_stopping_criteria(torch.tensor(0.85))[0]  # 0.15 < 0.2 absolute
    assert EarlyStopping().monitor == "val_loss"
    with pytest.raises(ConfigError, match="min_delta_percent"):
        EarlyStopping(min_delta_percent=-1)


# ---------------------------------------------------------------------- CheckpointCallback


def test_checkpoint_callback_periodic_plus_best_all_recorded(tmp_path):
    logger = make_logger(tmp_path)
    ckpt = CheckpointCallback(interval=2, monitor="val_loss", save_top_k=1)
    fit(logger, ScriptedModel(val_losses=(0.9, 0.5, 0.7, 0.8)), callbacks=[ckpt], max_epochs=4)
    folder = Path(logger.artifact_dir) / "checkpoints"
    assert Path(ckpt.dirpath) == folder
    assert ckpt.best == ckpt.best_model_path and Path(ckpt.best).name == "epoch=1-step=6.ckpt"
    assert [Path(p).name for p in ckpt.periodic_paths] == ["periodic-epoch=1.ckpt", "periodic-epoch=3.ckpt"]
    assert sorted(p.name for p in folder.iterdir()) == [
        "epoch=1-step=6.ckpt",
        "periodic-epoch=1.ckpt",
        "periodic-epoch=3.ckpt",
    ]
    with query(logger._db_url) as db:
        run = logger.run_id
        names = {e: sorted({Path(a.location).name for a in db.get_epoch_artifacts(e, run)}) for e in range(4)}
        # epoch 0's best file was later deleted by top-1: its record went with it.
        assert names[0] == []
        assert names[1] == ["epoch=1-step=6.ckpt", "periodic-epoch=1.ckpt"]
        assert names[2] == []
        assert names[3] == ["periodic-epoch=3.ckpt"]
        results = (
            m.Artifact.select()
            .join(m.ResultsArtifact, on=(m.ResultsArtifact.artifact == m.Artifact.id))
            .where(m.ResultsArtifact.results == run)
        )
        assert [a.location for a in results] == [ckpt.best]


def recorded_checkpoints(url: str, run_id: int) -> dict[str, set[str]]:
    """Checkpoint artifacts of a run as ``expman show`` reads them: file name -> scopes."""
    from lightning_expman.query import Query

    out: dict[str, set[str]] = {}
    with Query(url) as q:
        for a in q.run(run_id)["artifacts"]:
            if a["type"] == "checkpoint":
                out.setdefault(Path(a["location"]).name, set()).add(a["scope"])
        # every link, not only the first scope Query.artifacts reports per artifact
        with query(url):
            for model in (m.TrialRunArtifact, m.EpochArtifact, m.ResultsArtifact):
                field = model.results if model is m.ResultsArtifact else model.trial_run
                rows = (
                    m.Artifact.select(m.Artifact.location)
                    .join(model, on=(model.artifact == m.Artifact.id))
                    .where((field == run_id) & (m.Artifact.type == "checkpoint"))
                )
                for a in rows:
                    out.setdefault(Path(a.location).name, set()).add(model.__name__)
    return out


def test_checkpoints_deleted_by_top_k_are_no_longer_recorded(tmp_path):
    # val_loss improves every epoch: top-1 replaces (deletes) the best file at every epoch.
    logger = make_logger(tmp_path, trackers=[{"type": "log"}])
    ckpt = CheckpointCallback(interval=2, monitor="val_loss", save_top_k=1)
    fit(logger, ScriptedModel(val_losses=(0.9, 0.8, 0.7, 0.6, 0.5)), callbacks=[ckpt], max_epochs=5)
    on_disk = sorted(p.name for p in Path(ckpt.dirpath).iterdir())
    assert on_disk == ["epoch=4-step=15.ckpt", "periodic-epoch=1.ckpt", "periodic-epoch=3.ckpt"]
    recorded = recorded_checkpoints(logger._db_url, logger.run_id)
    assert sorted(recorded) == on_disk  # exactly the files on disk
    assert "ResultsArtifact" in recorded["epoch=4-step=15.ckpt"]  # the best one is the run's result
    assert "ResultsArtifact" not in recorded["periodic-epoch=3.ckpt"]
    with query(logger._db_url):
        assert m.Artifact.select().where(m.Artifact.location.contains("epoch=0-step=3")).count() == 0
    run_log = (Path(logger.log_dir) / "logs" / "run.log").read_text()
    assert (
        f"artifact removed checkpoint (TRIAL_RUN epoch=0): {Path(ckpt.dirpath) / 'epoch=0-step=3.ckpt'}"
        in run_log
    )


def test_checkpoint_callback_without_monitor_keeps_every_interval(tmp_path):
    logger = make_logger(tmp_path)
    ckpt = CheckpointCallback(interval=2)
    fit(logger, TinyClassifier(), callbacks=[ckpt], max_epochs=4)
    assert [Path(p).name for p in ckpt.periodic_paths] == ["epoch=1-step=6.ckpt", "epoch=3-step=12.ckpt"]
    assert ckpt.best == ckpt.periodic_paths[-1]
    assert all(Path(p).is_file() for p in ckpt.periodic_paths)
    with pytest.raises(ConfigError, match="interval"):
        CheckpointCallback(interval=0)


# ---------------------------------------------------------------------- MetricsTracker


def test_metrics_tracker_writes_rows_and_appends_on_resume(tmp_path):
    logger = make_logger(tmp_path)
    ckpt = CheckpointCallback(interval=1)
    fit(logger, TinyClassifier(), callbacks=[MetricsTracker(), ckpt], max_epochs=2)
    path = Path(logger.artifact_dir) / "metrics.log"
    first = read_csv(path)
    assert [r["epoch"] for r in first] == ["0", "1", "final"]
    assert {"epoch", "train_loss", "val_loss", "val_acc"} <= set(first[0])
    assert all(float(r["val_loss"]) > 0 for r in first)
    with query(logger._db_url) as db:
        logged = [a for a in db.get_trial_run_artifacts(logger.run_id) if a.type == "metrics_log"]
        assert [a.location for a in logged] == [str(path)]

    # Resume from the last checkpoint with a model logging other columns: rows are appended,
    # earlier ones are kept verbatim, the header widens.
    fit(
        logger,
        ScriptedModel(),
        callbacks=[MetricsTracker(), CheckpointCallback(interval=1)],
        max_epochs=3,
        ckpt_path=ckpt.best,
    )
    rows = read_csv(path)
    assert [r["epoch"] for r in rows] == ["0", "1", "final", "2", "final"]
    for old, new in zip(first, rows[:3]):
        assert {k: new[k] for k in old} == old
    assert "train_loss_epoch" in rows[0] and rows[0]["train_loss_epoch"] == ""
    assert rows[3]["train_loss_epoch"] != ""


# ---------------------------------------------------------------------- registry


def test_build_callback_by_type_and_class_path_and_errors():
    es = build_callback(
        {"type": "early_stopping", "monitor": "val_acc", "mode": "max", "min_delta_percent": 2}
    )
    assert isinstance(es, EarlyStopping) and es.monitor == "val_acc" and es.min_delta_percent == 2.0
    assert isinstance(build_callback({"type": "Metrics_Tracker"}), MetricsTracker)
    lr = build_callback(
        {
            "class_path": "lightning.pytorch.callbacks.LearningRateMonitor",
            "init_args": {"logging_interval": "step"},
        }
    )
    assert isinstance(lr, LearningRateMonitor) and lr.logging_interval == "step"
    with pytest.raises(
        ConfigError, match=r"unknown callback type 'early_stoping'; did you mean 'early_stopping'"
    ):
        build_callback({"type": "early_stoping"})
    with pytest.raises(ConfigError, match="checkpoint, early_stopping, metrics_tracker"):
        build_callback({"type": "nope"})
    with pytest.raises(ConfigError, match=r"callbacks: callback 'checkpoint'.*'no_such_arg'"):
        build_callback({"type": "checkpoint", "no_such_arg": 1})
    with pytest.raises(ConfigError, match="not a lightning Callback"):
        build_callback({"class_path": "collections.OrderedDict"})
    with pytest.raises(
        ConfigError, match=r"callbacks\.class_path: 'no\.such\.Module': cannot import module 'no\.such'"
    ):
        build_callback({"class_path": "no.such.Module"})


def test_register_callback():
    register_callback("lr_monitor", LearningRateMonitor)
    try:
        assert isinstance(build_callback({"type": "lr_monitor"}), LearningRateMonitor)
    finally:
        CALLBACKS.pop("lr_monitor")
    with pytest.raises(ConfigError):
        register_callback("bad", dict)  # type: ignore[arg-type]
