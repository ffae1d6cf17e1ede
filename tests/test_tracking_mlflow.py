"""MLflowTracker against a real local store (SQLite), read back through MlflowClient."""

from __future__ import annotations

import pickle

import pytest

from lightning_expman import Level
from lightning_expman.tracking import TrackerManager, TrackScope
from lightning_expman.tracking.mlflow import MLflowTracker, mlflow_status

pytest.importorskip("mlflow")


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    """One MLflow store for the module: creating its tables takes a second or two."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


_CLIENTS: dict = {}


def client(uri: str):
    from mlflow import MlflowClient

    if uri not in _CLIENTS:  # each new client re-checks the store's schema (~0.5 s)
        _CLIENTS[uri] = MlflowClient(uri)
    return _CLIENTS[uri]


def runs_of(uri: str, experiment: str) -> list:
    c = client(uri)
    exp = c.get_experiment_by_name(experiment)
    return c.search_runs([exp.experiment_id], order_by=["attributes.start_time ASC"])


def test_statuses_nesting_and_parent_reuse_across_trackers(store):
    # Two trackers (e.g. two processes) record repeats of the same trial: one parent run.
    for attempt, outcome in enumerate((ValueError("boom"), KeyboardInterrupt(), None)):
        # synchronous: ending a run with async logging active costs ~0.5 s (MLflow's queue poll);
        # the conformance test covers the asynchronous path.
        tracker = MLflowTracker(store, synchronous=True)
        manager = TrackerManager([tracker])
        with (
            TrackScope(manager, Level.EXPERIMENT, name="statuses"),
            TrackScope(manager, Level.TRIAL, name="t"),
        ):
            try:
                with TrackScope(manager, Level.TRIAL_RUN, repeat_idx=attempt + 1, seed=attempt):
                    for step in range(3):
                        manager.track("loss", 1.0 / (step + 1), step=step, level=Level.BATCH)
                    if outcome is not None:
                        raise outcome
            except (ValueError, KeyboardInterrupt):
                pass
        manager.close()

    runs = runs_of(store, "statuses")
    parents = [r for r in runs if r.data.tags.get("expman.level") == "trial"]
    children = [r for r in runs if r.data.tags.get("expman.level") == "trial_run"]
    assert len(parents) == 1 and len(children) == 3
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parents[0].info.run_id}
    by_repeat = {c.data.tags["expman.repeat_idx"]: c for c in children}
    assert (
        by_repeat["1"].info.status == "FAILED"
        and by_repeat["1"].data.tags["expman.error"] == "ValueError: boom"
    )
    assert by_repeat["2"].info.status == "KILLED" and by_repeat["2"].data.tags["expman.status"] == "ABORTED"
    assert (
        by_repeat["3"].info.status == "FINISHED" and by_repeat["3"].data.tags["expman.status"] == "COMPLETED"
    )
    assert parents[0].info.status == "FINISHED"
    history = client(store).get_metric_history(by_repeat["3"].info.run_id, "loss")
    assert [(h.step, round(h.value, 3)) for h in history] == [(0, 1.0), (1, 0.5), (2, 0.333)]
    assert by_repeat["3"].data.tags["expman.host"]


def test_params_are_flattened_and_truncated_and_tags_carry_the_context(store, tmp_path):
    tracker = MLflowTracker(store, experiment_name="renamed")  # overrides our experiment's name
    manager = TrackerManager([tracker])
    context = {"git_commit": "abc123", "host": "node-7", "torch": "2.13"}
    with (
        TrackScope(manager, Level.EXPERIMENT, name="ours", desc="about"),
        TrackScope(manager, Level.TRIAL, name="p"),
        TrackScope(manager, Level.TRIAL_RUN, repeat_idx=1, context=context),
    ):
        manager.log_params({"model": {"layers": [64, 32], "notes": "x" * 7000}, "lr": 0.1})
    manager.close()
    (parent, child) = runs_of(store, "renamed")
    assert parent.data.tags["expman.level"] == "trial"
    assert client(store).get_experiment_by_name("ours") is None
    params = child.data.params
    assert params["model.layers"] == "[64, 32]" and params["lr"] == "0.1"
    assert len(params["model.notes"]) == 6000 and params["model.notes"].endswith("...")
    tags = child.data.tags
    assert tags["mlflow.source.git.commit"] == "abc123" and tags["expman.host"] == "node-7"
    assert tags["expman.context.torch"] == "2.13" and tags["mlflow.runName"] == "p-r1"


def test_picklable_before_use_checkpoints_and_status_mapping(store, tmp_path):
    tracker = pickle.loads(pickle.dumps(MLflowTracker(store, synchronous=True)))
    manager = TrackerManager([tracker])
    ckpt = tmp_path / "epoch=0.ckpt"
    ckpt.write_bytes(b"w")
    with TrackScope(manager, Level.EXPERIMENT, name="pickled"), TrackScope(manager, Level.TRIAL_RUN):
        manager.track("x", 1.0, level=Level.TRIAL_RUN)
        manager.on_checkpoint(None, ckpt, epoch=0)
        manager.on_checkpoint(None, ckpt, epoch=0, best=True)  # reported again as the best: no re-upload
    (run,) = runs_of(store, "pickled")
    assert run.data.metrics == {"x": 1.0} and "mlflow.parentRunId" not in run.data.tags
    assert run.data.tags["expman.best_checkpoint"] == str(ckpt)
    files = client(store).list_artifacts(run.info.run_id, "checkpoints")
    assert [(f.path, f.file_size) for f in files] == [("checkpoints/epoch=0.ckpt", 1)]
    assert [mlflow_status(s) for s in ("completed", "stopped", "failed", "aborted")] == [
        "FINISHED",
        "FINISHED",
        "FAILED",
        "KILLED",
    ]


@pytest.mark.parametrize(
    ("mode", "uploaded"),
    [(True, ["checkpoints/epoch=1.ckpt"]), ("all", ["checkpoints/epoch=0.ckpt", "checkpoints/epoch=1.ckpt"])],
    ids=["at-run-end", "all"],
)
def test_checkpoint_upload_modes(store, tmp_path, mode, uploaded):
    # Top-1 rotation: epoch 0's file is saved, then deleted when epoch 1's replaces it.
    tracker = MLflowTracker(store, synchronous=True, log_checkpoints=mode)
    manager = TrackerManager([tracker])
    name = f"ckpt-{mode}"
    with TrackScope(manager, Level.EXPERIMENT, name=name), TrackScope(manager, Level.TRIAL_RUN):
        for epoch in (0, 1):
            ckpt = tmp_path / f"epoch={epoch}.ckpt"
            ckpt.write_bytes(b"w")
            manager.on_checkpoint(None, ckpt, epoch=epoch)
            if epoch == 1:
                (tmp_path / "epoch=0.ckpt").unlink()
                manager.on_remove_artifact(Level.TRIAL_RUN, str(tmp_path / "epoch=0.ckpt"), "checkpoint")
    (run,) = runs_of(store, name)
    assert sorted(f.path for f in client(store).list_artifacts(run.info.run_id, "checkpoints")) == uploaded


def test_bad_log_checkpoints_value_is_one_line_config_error():
    from lightning_expman import ConfigError

    with pytest.raises(ConfigError, match="log_checkpoints must be true, false or 'all', got 'best'"):
        MLflowTracker(log_checkpoints="best")
