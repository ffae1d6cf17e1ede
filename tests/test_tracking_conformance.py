"""One event sequence, every built-in tracker, read back through each backend's own reader.

Like Lightning's ``tests_pytorch/loggers/test_all.py``: a new built-in tracker must get a
reader here (the first test fails otherwise).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from lightning_expman import Level, RunStatus
from lightning_expman.tracking import TrackerManager, TrackScope, build_tracker
from lightning_expman.tracking.registry import BUILTIN_TRACKERS

EPOCHS = 2
BATCHES = 3


def drive(manager: TrackerManager, tmp_path: Path) -> dict:
    """Experiment -> trial -> run (STOPPED at epoch 1) -> pipeline -> 2 epochs with everything."""
    ckpt_dir = tmp_path / "checkpoints"
    ckpt_dir.mkdir()
    plot = tmp_path / "plot.txt"
    plot.write_text("a plot")
    checkpoints = []
    # Nested on purpose: one block per level, as the hierarchy reads.
    with TrackScope(manager, Level.EXPERIMENT, name="conformance", desc="one sequence, every tracker"):  # noqa: SIM117
        with TrackScope(manager, Level.TRIAL, name="small", config={"hidden": 8}):
            manager.on_create(Level.TRIAL_RUN, repeat_idx=1, seed=42, config={"lr": 0.01})
            manager.on_start(Level.TRIAL_RUN)
            manager.log_params({"lr": 0.01, "model": {"hidden": 8, "act": "relu"}})
            step = 0
            with TrackScope(manager, Level.PIPELINE, stage="fit"):
                for epoch in range(EPOCHS):
                    with TrackScope(manager, Level.EPOCH, epoch_idx=epoch):
                        for _ in range(BATCHES):
                            manager.track_dict(
                                {"train_loss": 1.0 / (step + 1), "lr": 0.01}, step=step, level=Level.BATCH
                            )
                            step += 1
                        manager.track_dict(
                            {"val_loss": 0.5 - 0.1 * epoch, "val_acc": 0.8 + 0.05 * epoch}, level=Level.EPOCH
                        )
                        manager.track("val_acc_per_class", {"cat": 0.9, "dog": 0.7}, level=Level.EPOCH)
                        ckpt = ckpt_dir / f"epoch={epoch}.ckpt"
                        ckpt.write_bytes(b"weights")
                        checkpoints.append(ckpt)
                        manager.on_checkpoint(None, ckpt, {"val_loss": 0.5}, epoch=epoch, best=epoch == 1)
            manager.on_add_artifact(Level.TRIAL_RUN, plot, "plot")
            manager.track("test_acc", 0.875, level=Level.TRIAL_RUN)
            manager.on_end(Level.TRIAL_RUN, status=RunStatus.STOPPED, stop_epoch=1)
    manager.close()
    return {"checkpoints": checkpoints, "plot": plot, "steps": step}


# ----------------------------------------------------------------------------- readers


def check_db(tracker, ws: Path, info: dict) -> None:
    con = sqlite3.connect(ws / "expman.db")
    q = lambda sql, *a: con.execute(sql, a).fetchall()  # noqa: E731
    assert q("SELECT title, desc FROM experiment") == [("conformance", "one sequence, every tracker")]
    assert [r[0] for r in q("SELECT name FROM trial")] == ["small"]
    (run_id, status, repeat, seed, stop_epoch, error, heartbeat) = q(
        "SELECT id, status, repeat_idx, seed, stop_epoch, error, heartbeat FROM trial_run"
    )[0]
    assert (status, repeat, seed, stop_epoch, error) == ("STOPPED", 1, 42, 1, None)
    assert heartbeat is not None
    assert [r[0] for r in q("SELECT idx FROM epoch WHERE trial_run_id=? ORDER BY idx", run_id)] == [0, 1]
    steps = q("SELECT step, epoch, name, value FROM step_metric WHERE name='train_loss' ORDER BY step")
    assert [(s, e) for s, e, _, _ in steps] == [(0, 0), (1, 0), (2, 0), (3, 1), (4, 1), (5, 1)]
    assert steps[3][3] == pytest.approx(0.25)
    assert q("SELECT count(*) FROM step_metric")[0][0] == 2 * info["steps"]
    epoch_metrics = q(
        "SELECT em.epoch_idx, m.type, m.total_val, m.per_label_val FROM epoch_metric em "
        "JOIN metric m ON m.id = em.metric_id ORDER BY em.epoch_idx, m.type"
    )
    by_key = {(e, t): (v, p) for e, t, v, p in epoch_metrics}
    assert by_key[(1, "val_loss")][0] == pytest.approx(0.4)
    assert by_key[(0, "val_acc")][0] == pytest.approx(0.8)
    total, per_label = by_key[(0, "val_acc_per_class")]
    assert total == pytest.approx(0.8) and json.loads(per_label) == {"cat": 0.9, "dog": 0.7}
    results = q(
        "SELECT m.type, m.total_val FROM results_metric rm JOIN metric m ON m.id = rm.metric_id "
        "WHERE rm.results_id=?",
        run_id,
    )
    assert results == [("test_acc", 0.875)]
    params = dict(q("SELECT key, value FROM run_param WHERE trial_run_id=?", run_id))
    assert json.loads(params["lr"]) == 0.01 and json.loads(params["model.hidden"]) == 8
    ckpts = q(
        "SELECT a.location, ea.epoch_idx FROM artifact a JOIN epoch_artifact ea ON ea.artifact_id = a.id "
        "WHERE a.type='checkpoint' ORDER BY ea.epoch_idx"
    )
    assert ckpts == [(str(p), i) for i, p in enumerate(info["checkpoints"])]
    run_arts = {r[0] for r in q("SELECT artifact_id FROM trial_run_artifact WHERE trial_run_id=?", run_id)}
    locations = dict(q("SELECT location, id FROM artifact"))
    assert locations[str(info["plot"])] in run_arts
    assert locations[str(info["checkpoints"][0])] in run_arts
    best = q(
        "SELECT a.location FROM results_artifact ra JOIN artifact a ON a.id = ra.artifact_id "
        "WHERE ra.results_id=?",
        run_id,
    )
    assert best == [(str(info["checkpoints"][1]),)]


def check_mlflow(tracker, ws: Path, info: dict) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(tracker.tracking_uri)
    experiment = client.get_experiment_by_name("conformance")
    runs = client.search_runs([experiment.experiment_id])
    parent = next(r for r in runs if r.data.tags.get("expman.level") == "trial")
    child = next(r for r in runs if r.data.tags.get("expman.level") == "trial_run")
    assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert parent.data.tags["expman.trial"] == "small" and parent.data.params["hidden"] == "8"
    assert (child.info.status, child.data.tags["expman.status"]) == ("FINISHED", "STOPPED")
    assert child.data.tags["expman.seed"] == "42" and child.data.tags["expman.repeat_idx"] == "1"
    assert child.data.params["model.act"] == "relu" and child.data.params["lr"] == "0.01"
    history = client.get_metric_history(child.info.run_id, "train_loss")
    assert sorted(m.step for m in history) == list(range(info["steps"]))
    val = {m.step: m.value for m in client.get_metric_history(child.info.run_id, "val_loss")}
    assert val == pytest.approx({0: 0.5, 1: 0.4})
    assert child.data.metrics["val_acc_per_class/cat"] == pytest.approx(0.9)
    assert child.data.metrics["test_acc"] == pytest.approx(0.875)
    names = {f.path for f in client.list_artifacts(child.info.run_id, "checkpoints")}
    assert names == {"checkpoints/epoch=0.ckpt", "checkpoints/epoch=1.ckpt"}
    assert [f.path for f in client.list_artifacts(child.info.run_id, "plot")] == ["plot/plot.txt"]


def check_log(tracker, ws: Path, info: dict) -> None:
    logs = ws / "logs"
    experiment = (logs / "experiment.log").read_text()
    trial = (logs / "trial.log").read_text()
    run = (logs / "run.log").read_text()
    assert (
        "[conformance] EXPERIMENT start name=conformance" in experiment
        and "EXPERIMENT end status=COMPLETED" in experiment
    )
    assert "[small] TRIAL start name=small" in trial
    assert "[small/run_1] TRIAL_RUN start repeat=1 seed=42" in run
    assert "epoch 1: val_loss=0.4 val_acc=0.85 val_acc_per_class=0.8" in run
    assert "val_acc_per_class[cat]=0.9" in run
    assert "step 4 (epoch 1): train_loss=0.2 lr=0.01" in run
    assert "params: lr=0.01 model.hidden=8 model.act=relu" in run
    assert f"checkpoint epoch=1 best val_loss=0.5: {info['checkpoints'][1]}" in run
    assert f"artifact plot (TRIAL_RUN): {info['plot']}" in run
    assert "results: test_acc=0.875" in run
    assert "TRIAL_RUN end status=STOPPED stop_epoch=1" in run
    from lightning_expman.logfiles import open_log_files

    assert not [p for p in open_log_files() if p.startswith(str(ws))]  # every file let go


def check_tensorboard(tracker, ws: Path, info: dict) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir = ws / "tensorboard" / "conformance" / "small" / "version_0"
    assert tracker.run_dir == run_dir
    acc = EventAccumulator(str(run_dir))
    acc.Reload()
    scalars = set(acc.Tags()["scalars"])
    assert {
        "train_loss",
        "lr",
        "epoch/val_loss",
        "epoch/val_acc_per_class/dog",
        "results/test_acc",
    } <= scalars
    assert [e.step for e in acc.Scalars("train_loss")] == list(range(info["steps"]))
    assert [round(e.value, 4) for e in acc.Scalars("epoch/val_loss")] == [0.5, 0.4]
    assert acc.Scalars("hparams/test_acc")[0].value == pytest.approx(0.875)
    from tensorboard.plugins.hparams import plugin_data_pb2

    content = acc.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    hparams = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info.hparams
    assert hparams["seed"].number_value == 42 and hparams["model.act"].string_value == "relu"
    assert hparams["status"].string_value == "STOPPED"


def check_system(tracker, ws: Path, info: dict) -> None:
    # It stores nothing itself (its samples go to the other trackers, see test_tracking_system):
    # every event is accepted and its sampling thread ended with the run.
    assert tracker._thread is None and not ws.exists()


CHECKS = {
    "db": check_db,
    "mlflow": check_mlflow,
    "log": check_log,
    "tensorboard": check_tensorboard,
    "system": check_system,
}


def test_every_builtin_tracker_has_a_reader():
    assert set(CHECKS) == set(BUILTIN_TRACKERS)


@pytest.mark.parametrize("kind", sorted(CHECKS))
def test_conformance(kind, tmp_path):
    ws = tmp_path / "ws"
    tracker = build_tracker({"type": kind}, workspace=ws)
    info = drive(TrackerManager([tracker]), tmp_path)
    CHECKS[kind](tracker, ws, info)


def _removed_db(tracker, ws: Path, path: Path) -> None:
    con = sqlite3.connect(ws / "expman.db")
    locations = [r[0] for r in con.execute("SELECT location FROM artifact").fetchall()]
    assert locations == [str(path.with_name("epoch=1.ckpt"))]
    links = con.execute("SELECT count(*) FROM epoch_artifact").fetchall()[0][0]
    assert links == 1


def _removed_mlflow(tracker, ws: Path, path: Path) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(tracker.tracking_uri)
    experiment = client.get_experiment_by_name("removal")
    (child,) = [
        r
        for r in client.search_runs([experiment.experiment_id])
        if r.data.tags.get("expman.level") == "trial_run"
    ]
    # Checkpoints are uploaded when the run ends: the one top-k rotation deleted is not.
    names = {f.path for f in client.list_artifacts(child.info.run_id, "checkpoints")}
    assert names == {"checkpoints/epoch=1.ckpt"}


def _removed_log(tracker, ws: Path, path: Path) -> None:
    run = (ws / "logs" / "run.log").read_text()
    assert f"artifact removed checkpoint (TRIAL_RUN epoch=0): {path}" in run


def _removed_tensorboard(tracker, ws: Path, path: Path) -> None:
    assert tracker.run_dir.is_dir()  # records no files: the event is accepted and ignored


def _removed_system(tracker, ws: Path, path: Path) -> None:
    assert tracker._thread is None  # accepted and ignored


REMOVAL_CHECKS = {
    "system": _removed_system,
    "db": _removed_db,
    "mlflow": _removed_mlflow,
    "log": _removed_log,
    "tensorboard": _removed_tensorboard,
}


@pytest.mark.parametrize("kind", sorted(REMOVAL_CHECKS))
def test_remove_artifact_conformance(kind, tmp_path):
    assert set(REMOVAL_CHECKS) == set(BUILTIN_TRACKERS)
    ws = tmp_path / "ws"
    manager = TrackerManager([build_tracker({"type": kind}, workspace=ws)])
    paths = [tmp_path / f"epoch={e}.ckpt" for e in (0, 1)]
    with TrackScope(manager, Level.EXPERIMENT, name="removal"), TrackScope(manager, Level.TRIAL, name="t"):  # noqa: SIM117
        with TrackScope(manager, Level.TRIAL_RUN, repeat_idx=1, seed=1):
            for epoch, path in enumerate(paths):
                with TrackScope(manager, Level.EPOCH, epoch_idx=epoch):
                    manager.track("val_loss", 1.0 - epoch, level=Level.EPOCH)
                    path.write_bytes(b"weights")
                    manager.on_checkpoint(None, path, epoch=epoch)
            paths[0].unlink()  # top-k rotation deleted the first one
            manager.on_remove_artifact(Level.TRIAL_RUN, paths[0], "checkpoint", epoch=0)
    manager.close()
    REMOVAL_CHECKS[kind](manager.trackers[0], ws, paths[0])
