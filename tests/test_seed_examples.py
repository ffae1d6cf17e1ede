"""Every code example of seeds 000, 001 and 002 outside pipelines, run with only its imports changed.

Each test names its seed section; the example's lines are copied as written, with
``experiment_manager.X`` imports replaced per docs/migrating-from-experiment-manager.md. Behaviour
is asserted by reading the database back (or, for pure API examples, the objects). Pipelines,
callbacks and experiments: ``test_seed_pipelines.py``.
"""

from __future__ import annotations

import logging
from abc import ABC
from pathlib import Path
from typing import Any

import pytest

from tests.seed_support import read_db, snapshot_registries


@pytest.fixture(autouse=True)
def _restore_registries():
    """The examples register types; other tests must not see them."""
    restore = snapshot_registries()
    yield
    restore()


# --------------------------------------------------------------------------- DatabaseManager (000, 001)


def _seed_database_manager_example(db_url: str | None = None) -> dict[str, Any]:
    """000/001 "Database Manager API", as written (the SQLite form; see the MySQL test below)."""
    from lightning_expman.db.manager import DatabaseManager

    if db_url is None:
        # Initialize with SQLite for development
        db = DatabaseManager(database_path="experiments.db", use_sqlite=True)
    else:  # MariaDB / PostgreSQL by URL (the seed's MySQL keyword form: its own test below)
        db = DatabaseManager(db_url)

    # Create experiment hierarchy
    experiment = db.create_experiment(
        "CIFAR-10 Classification", "Comparing different architectures on CIFAR-10"
    )
    trial = db.create_trial(experiment.id, "ResNet-18")
    trial_run = db.create_trial_run(trial.id, status="running")

    # Record metrics at different levels
    metric = db.record_metric(
        total_val=0.87, metric_type="accuracy", per_label_val={"airplane": 0.85, "car": 0.89, "bird": 0.82}
    )

    # Create epoch and link metric
    db.create_epoch(epoch_idx=1, trial_run_id=trial_run.id)
    db.add_epoch_metric(epoch_idx=1, trial_run_id=trial_run.id, metric_id=metric.id)

    # Record and link artifacts
    model_artifact = db.record_artifact("model", "/path/to/model.pth")
    plot_artifact = db.record_artifact("plot", "/path/to/loss_curve.png")

    db.link_experiment_artifact(experiment.id, model_artifact.id)
    db.link_epoch_artifact(1, trial_run.id, plot_artifact.id)

    # Query data at different levels
    experiment_metrics = db.get_experiment_metrics(experiment.id)
    trial_artifacts = db.get_trial_artifacts(trial.id)
    epoch_artifacts = db.get_epoch_artifacts(1, trial_run.id)

    # Update trial status
    db.update_trial_run_status(trial_run.id, "completed")
    return locals()


def test_000_001_database_manager_api(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ns = _seed_database_manager_example()
    assert (tmp_path / "experiments.db").is_file()
    [metric] = ns["experiment_metrics"]
    assert (metric.type, metric.total_val) == ("accuracy", 0.87)
    assert metric.per_label_val == {"airplane": 0.85, "car": 0.89, "bird": 0.82}
    assert ns["trial_artifacts"] == []
    assert [(a.type, a.location) for a in ns["epoch_artifacts"]] == [("plot", "/path/to/loss_curve.png")]
    ns["db"].close()
    reader = read_db(tmp_path / "experiments.db")
    run = reader.get_trial_run_metrics(ns["trial_run"].id)
    assert [x.type for x in run] == ["accuracy"]
    assert [a.location for a in reader.get_experiment_artifacts(ns["experiment"].id)] == [
        "/path/to/model.pth"
    ]
    from lightning_expman.db import models as m

    status = (
        m.TrialRun.select(m.TrialRun.status)
        .where(m.TrialRun.id == ns["trial_run"].id)
        .scalar(reader.database)
    )
    assert status == "COMPLETED"
    reader.close()


def test_000_001_database_manager_mysql_form_names_its_server(tmp_path):
    """The seed's MySQL form, as written: without that server account it fails with ConnectionError."""
    from lightning_expman.db import ConnectionError
    from lightning_expman.db.manager import DatabaseManager

    with pytest.raises(ConnectionError) as info:
        DatabaseManager(
            database_path="experiment_db", host="localhost", user="ml_user", password="secure_password"
        )
    assert "localhost" in str(info.value) and "secure_password" not in str(info.value)


def test_000_001_database_manager_on_the_servers(db_url):
    """The same example against MariaDB and PostgreSQL (the database URL instead of the file name)."""
    ns = _seed_database_manager_example(db_url)
    assert [x.type for x in ns["experiment_metrics"]] == ["accuracy"]
    assert [a.type for a in ns["epoch_artifacts"]] == ["plot"]
    ns["db"].close()


def test_000_001_advanced_querying_flexible_metrics_multi_level_artifacts(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ns = _seed_database_manager_example()
    db, experiment, trial, trial_run = ns["db"], ns["experiment"], ns["trial"], ns["trial_run"]
    experiment_id, trial_run_id = experiment.id, trial_run.id

    # --- Advanced Querying
    # Get all metrics for experiments with specific criteria
    experiment_metrics = db.get_experiment_metrics(experiment_id)

    # Retrieve artifacts at any level of the hierarchy
    experiment_artifacts = db.get_experiment_artifacts(experiment_id)
    trial_run_artifacts = db.get_trial_run_artifacts(trial_run_id)

    # Track experiment progress through trial run status
    db.update_trial_run_status(trial_run_id, "completed")

    # --- Flexible Metric Storage
    # Simple metric
    accuracy_metric = db.record_metric(0.95, "accuracy")

    # Complex per-label metric for multi-class classification
    detailed_metric = db.record_metric(
        total_val=0.87,
        metric_type="f1_score",
        per_label_val={"class_0": 0.89, "class_1": 0.85, "class_2": 0.87},
    )

    # --- Multi-Level Artifact Management
    # Experiment-level artifacts (configs, final models)
    config_artifact = db.record_artifact("config", "/exp/config.yaml")
    db.link_experiment_artifact(experiment.id, config_artifact.id)

    # Trial-level artifacts (trial-specific outputs)
    trial_log = db.record_artifact("log", "/trial/output.log")
    db.link_trial_artifact(trial.id, trial_log.id)

    # Epoch-level artifacts (checkpoints, plots)
    checkpoint = db.record_artifact("checkpoint", "/epoch/model_epoch_5.pth")
    db.link_epoch_artifact(5, trial_run.id, checkpoint.id)

    assert [x.type for x in experiment_metrics] == ["accuracy"]
    assert [a.type for a in experiment_artifacts] == ["model"] and trial_run_artifacts == []
    db.close()
    reader = read_db(tmp_path / "experiments.db")
    from lightning_expman.db import models as m

    with reader.database.bind_ctx(m.ALL_MODELS):
        assert m.MetricRecord.get_by_id(accuracy_metric.id).total_val == 0.95
        stored = m.MetricRecord.get_by_id(detailed_metric.id)
        assert (stored.type, stored.per_label_val) == (
            "f1_score",
            {"class_0": 0.89, "class_1": 0.85, "class_2": 0.87},
        )
    assert [a.location for a in reader.get_experiment_artifacts(experiment.id)] == [
        "/path/to/model.pth",
        "/exp/config.yaml",
    ]
    assert [a.location for a in reader.get_trial_artifacts(trial.id)] == ["/trial/output.log"]
    # Epoch 5 was never created: linking created it, as the seed's example expects.
    assert [a.location for a in reader.get_epoch_artifacts(5, trial_run.id)] == ["/epoch/model_epoch_5.pth"]
    assert reader.get_epoch_artifacts(6, trial_run.id) == []
    reader.close()


# --------------------------------------------------------------------------- Environment and trackers


@pytest.fixture
def seed_env(tmp_path, monkeypatch):
    """000/001 "Environment", as written (run in a temporary working directory)."""
    monkeypatch.chdir(tmp_path)
    from omegaconf import OmegaConf

    from lightning_expman.workspace import Environment

    # Create environment config
    env_config = OmegaConf.create(
        {
            "workspace": "outputs/my_experiment",
            "verbose": True,
            "debug": False,
            "trackers": [
                {"type": "mlflow", "tracking_uri": "sqlite:///mlruns.db", "experiment_name": "my_experiment"}
            ],
        }
    )

    # Create environment
    env = Environment.from_config(env_config)

    # Create child environments for trials
    trial_env = env.create_child("trial_1")
    yield env, trial_env
    if env._tracker_manager is not None:
        env._tracker_manager.close()
    trial_env.close()
    env.close()


def test_000_001_environment(seed_env, tmp_path):
    from lightning_expman.tracking.db import DBTracker
    from lightning_expman.tracking.mlflow import MLflowTracker

    env, trial_env = seed_env
    assert env.workdir == tmp_path / "outputs" / "my_experiment" and env.verbose and not env.debug
    assert trial_env.workdir == env.workdir / "trial_1" and (trial_env.workdir / "logs").is_dir()
    manager = env.tracker_manager
    assert trial_env.tracker_manager is manager
    assert isinstance(manager.get(MLflowTracker), MLflowTracker)
    # As for env.yaml, a database tracker is added: everything tracked is queryable.
    assert manager.get(DBTracker).url == f"sqlite:///{env.workdir / 'expman.db'}"


def test_000_tracker_system(seed_env, caplog):
    from lightning_expman import Level, Metric
    from lightning_expman.tracking.db import DBTracker

    env, _ = seed_env
    caplog.set_level(logging.WARNING, "lightning_expman")

    # Access tracker from environment
    tracker = env.tracker_manager

    # Track metrics
    tracker.track(Metric.TRAIN_LOSS, 0.456, step=1)
    tracker.track(Metric.VAL_ACCURACY, 0.921, step=1)

    # Track lifecycle events
    with tracker.track_scope(Level.TRIAL, trial_id=1):
        # Do trial work here - tracking context managed automatically
        tracker.track(Metric.TRAIN_LOSS, 0.345, step=2)

    # Before any scope the values had nowhere to go: a WARNING each, nothing stored.
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("train_loss" in w and "not stored" in w for w in warned)
    assert any("val_acc" in w and "not stored" in w for w in warned)
    tracker.get(DBTracker).flush()
    reader = read_db(tracker.get(DBTracker).url)
    from lightning_expman.db import models as m

    with reader.database.bind_ctx(m.ALL_MODELS):
        (trial,) = m.Trial.select()
        assert trial.name == "trial_1"  # trial_id=1
    [(metric, step)] = reader.get_level_metrics(trial_id=trial.id)
    assert (metric.type, metric.total_val, step) == ("train_loss", 0.345, 2)
    reader.close()


def test_001_tracker_system(seed_env, caplog, tmp_path):
    from lightning_expman import Level, Metric
    from lightning_expman.tracking import TrackScope
    from lightning_expman.tracking.db import DBTracker

    env, _ = seed_env
    caplog.set_level(logging.WARNING, "lightning_expman")

    # Access tracker from environment
    tracker = env.tracker_manager

    # Track individual metrics
    tracker.track(Metric.TRAIN_LOSS, 0.456, step=1)
    tracker.track(Metric.VAL_ACC, 0.921, step=1)

    # Track multiple metrics at once (used by pipelines)
    metrics_dict = {Metric.TRAIN_LOSS: 0.345, Metric.VAL_LOSS: 0.234, Metric.VAL_ACC: 0.892}
    tracker.track_dict(metrics_dict, step=2)

    # Manual lifecycle management (usually handled by Pipeline decorators)
    tracker.on_create(Level.TRIAL_RUN)  # Create tracking context
    tracker.on_start(Level.TRIAL_RUN)  # Start tracking
    # ... do work ...
    tracker.on_end(Level.TRIAL_RUN)  # End tracking

    # Context manager for scoped tracking
    with TrackScope(tracker, Level.TRIAL_RUN):
        # Tracking context managed automatically
        tracker.track(Metric.TRAIN_LOSS, 0.345, step=2)
        # on_start called on enter, on_end called on exit

    # Artifact tracking
    tracker.on_add_artifact(Level.TRIAL_RUN, artifact_path="/path/to/model.pth", artifact_type="checkpoint")

    # Parameter logging (useful for hyperparameters)
    tracker.log_params({"learning_rate": 0.001, "batch_size": 32, "optimizer": "adam"})

    # Checkpoint tracking with model
    import torch

    model = torch.nn.Linear(10, 1)
    tracker.on_checkpoint(
        network=model, checkpoint_path="/path/to/checkpoint.pth", metrics={Metric.VAL_ACC: 0.95}
    )

    db = tracker.get(DBTracker)
    db.flush()
    reader = read_db(db.url)
    from lightning_expman.db import models as m

    with reader.database.bind_ctx(m.ALL_MODELS):
        runs = list(m.TrialRun.select().order_by(m.TrialRun.id))
        assert [r.status for r in runs] == ["COMPLETED", "COMPLETED"]
        assert {r.trial.name for r in runs} == {"default"}  # no TRIAL was opened: recorded under 'default'
        # step=2 inside the run: a point of the run's train_loss series, not a second final result.
        steps = [(s.trial_run_id, s.name, s.step, s.value) for s in m.StepMetric.select()]
        assert steps == [(runs[1].id, "train_loss", 2, 0.345)]
        assert m.ResultsMetric.select().count() == 0
    # The artifact, the params and the checkpoint came after both runs ended: nowhere to go, warned.
    warned = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    for what in (
        "train_loss",
        "val_acc",
        "val_loss",
        "params",
        "/path/to/model.pth",
        "/path/to/checkpoint.pth",
    ):
        assert what in warned, what
    reader.close()


def test_001_on_checkpoint_metrics_are_stored_with_the_checkpoint(seed_env):
    """The seed's ``on_checkpoint(network=..., checkpoint_path=..., metrics=...)`` inside a run."""
    import torch

    from lightning_expman import Level, Metric
    from lightning_expman.tracking import TrackScope
    from lightning_expman.tracking.db import DBTracker

    env, _ = seed_env
    tracker = env.tracker_manager
    with (
        TrackScope(tracker, Level.EXPERIMENT, name="ckpt"),
        TrackScope(tracker, Level.TRIAL, trial_name="t"),
        TrackScope(tracker, Level.TRIAL_RUN),
    ):
        model = torch.nn.Linear(10, 1)
        tracker.on_checkpoint(
            network=model, checkpoint_path="/path/to/checkpoint.pth", metrics={Metric.VAL_ACC: 0.95}
        )
    reader = read_db(tracker.get(DBTracker).url)
    from lightning_expman.db import models as m

    with reader.database.bind_ctx(m.ALL_MODELS):
        (run,) = m.TrialRun.select()
        assert run.trial.name == "t"
    [ckpt] = reader.get_trial_run_artifacts(run.id)
    assert (ckpt.type, ckpt.location) == ("checkpoint", "/path/to/checkpoint.pth")
    assert [(x.type, x.total_val) for x in reader.get_artifact_metrics(ckpt.id)] == [("val_acc", 0.95)]
    reader.close()


def test_000_001_trackscope_context_managers(tmp_path):
    """000/001 "Context Managers and Automatic Tracking"; ``trial_configs`` and ``trial`` are the
    reader's (the seed leaves them undefined)."""
    from lightning_expman import Level
    from lightning_expman.tracking import TrackerManager, TrackScope
    from lightning_expman.tracking.db import DBTracker

    url = f"sqlite:///{tmp_path / 'expman.db'}"
    tracker_manager = TrackerManager([DBTracker(url)])
    ran: list[str] = []

    class _Trial:
        name = "small_network"

        def run(self) -> None:
            ran.append(self.name)

    trial_configs, trial = [{"name": "small_network"}], _Trial()

    # Experiment level tracking
    with TrackScope(tracker_manager, level=Level.EXPERIMENT):
        # Automatically calls tracker.on_start(Level.EXPERIMENT)
        for trial_config in trial_configs:  # noqa: B007 - the seed's loop, as written
            # Trial level tracking
            with TrackScope(tracker_manager, level=Level.TRIAL, trial_name=trial.name):
                # Automatically calls tracker.on_start(Level.TRIAL)
                trial.run()
                # Automatically calls tracker.on_end(Level.TRIAL)
        # Automatically calls tracker.on_end(Level.EXPERIMENT)

    tracker_manager.close()
    assert ran == ["small_network"]
    reader = read_db(url)
    from lightning_expman.db import models as m

    with reader.database.bind_ctx(m.ALL_MODELS):
        assert [(t.experiment.title, t.name) for t in m.Trial.select()] == [("default", "small_network")]
    reader.close()


def test_000_001_level_aware_artifacts_and_metrics(tmp_path):
    """000/001 "Level-Aware Artifact and Metric Association", inside open levels (as the section says)."""
    from lightning_expman import Level, Metric
    from lightning_expman.tracking import TrackerManager, TrackScope
    from lightning_expman.tracking.db import DBTracker

    url = f"sqlite:///{tmp_path / 'expman.db'}"
    tracker = TrackerManager([DBTracker(url)])
    epoch_idx = 5
    with (
        TrackScope(tracker, Level.EXPERIMENT, name="levels"),
        TrackScope(tracker, Level.TRIAL, name="t"),
        TrackScope(tracker, Level.TRIAL_RUN),
        TrackScope(tracker, Level.EPOCH, epoch_idx=epoch_idx),
    ):
        # Experiment-level artifacts (configs, final models)
        tracker.on_add_artifact(Level.EXPERIMENT, "final_model.pth", artifact_type="model")

        # Trial-level artifacts (trial-specific outputs)
        tracker.on_add_artifact(Level.TRIAL, "trial_config.yaml", artifact_type="config")

        # Epoch-level artifacts (checkpoints, training plots)
        tracker.on_add_artifact(Level.EPOCH, "checkpoint_epoch_5.pth", artifact_type="checkpoint")

        # Epoch-level metrics (training progress)
        tracker.track(Metric.TRAIN_LOSS, 0.345, step=epoch_idx)  # Links to current epoch
    tracker.close()
    reader = read_db(url)
    from lightning_expman.db import models as m

    with reader.database.bind_ctx(m.ALL_MODELS):
        exp, trial, run = m.Experiment.get(), m.Trial.get(), m.TrialRun.get()
    assert [(a.type, a.location) for a in reader.get_experiment_artifacts(exp.id)] == [
        ("model", "final_model.pth")
    ]
    assert [(a.type, a.location) for a in reader.get_trial_artifacts(trial.id)] == [
        ("config", "trial_config.yaml")
    ]
    assert [a.location for a in reader.get_epoch_artifacts(5, run.id)] == ["checkpoint_epoch_5.pth"]
    assert [(x.type, x.total_val) for x in reader.get_epoch_metrics(5, run.id)] == [("train_loss", 0.345)]
    reader.close()


def test_001_manual_context_management(tmp_path):
    """001 "Manual Context Management": the value tracked at TRIAL level is stored with the trial."""
    from lightning_expman import Level, Metric
    from lightning_expman.tracking import TrackerManager
    from lightning_expman.tracking.db import DBTracker

    url = f"sqlite:///{tmp_path / 'expman.db'}"
    tracker = TrackerManager([DBTracker(url)])
    epoch = 3

    # Create and start experiment-level tracking
    tracker.on_create(Level.EXPERIMENT)
    tracker.on_start(Level.EXPERIMENT)

    # Trial-level tracking
    tracker.on_create(Level.TRIAL)
    tracker.on_start(Level.TRIAL)

    # Track metrics at appropriate levels
    tracker.track(Metric.TRAIN_LOSS, 0.345, step=epoch)

    # End contexts (automatic cleanup)
    tracker.on_end(Level.TRIAL)
    tracker.on_end(Level.EXPERIMENT)

    tracker.close()
    reader = read_db(url)
    from lightning_expman.db import models as m

    with reader.database.bind_ctx(m.ALL_MODELS):
        trial = m.Trial.get()
    [(metric, step)] = reader.get_level_metrics(trial_id=trial.id)
    assert (metric.type, metric.total_val, step) == ("train_loss", 0.345, 3)
    assert [x.type for x in reader.get_experiment_metrics(trial.experiment_id)] == ["train_loss"]
    reader.close()


# --------------------------------------------------------------------------- enums and interfaces


def test_001_available_metrics_statuses_and_levels():
    from lightning_expman import Level, Metric, RunStatus

    tracked = [
        Metric.TRAIN_LOSS, Metric.TRAIN_ACC, Metric.VAL_LOSS, Metric.VAL_ACC, Metric.TEST_LOSS,
        Metric.TEST_ACC, Metric.LEARNING_RATE, Metric.CONFUSION, Metric.CUSTOM,
    ]  # fmt: skip
    untracked = [Metric.NETWORK, Metric.DATA, Metric.LABELS, Metric.STATUS]
    assert all(m.tracked for m in tracked) and not any(m.tracked for m in untracked)
    assert Metric.VAL_ACCURACY is Metric.VAL_ACC  # 000 spells it VAL_ACCURACY
    statuses = [
        RunStatus.RUNNING, RunStatus.COMPLETED, RunStatus.STOPPED, RunStatus.FAILED, RunStatus.ABORTED,
        RunStatus.SKIPPED,
    ]  # fmt: skip
    assert len(set(statuses)) == 6
    levels = (Level.EXPERIMENT, Level.TRIAL, Level.TRIAL_RUN, Level.PIPELINE, Level.EPOCH, Level.BATCH)
    assert [int(level) for level in levels] == [0, 1, 2, 3, 4, 5]


def test_000_001_callbacks_and_trackers_interfaces():
    """The seed's interface sketches (``class Callback(ABC)``, ``class Tracker(ABC)``) name the hooks
    our PipelineCallback and Tracker have."""
    from typing import Dict  # noqa: UP035 - the seed's sketch uses typing.Dict

    from lightning_expman import Level
    from lightning_expman.pipeline import PipelineCallback
    from lightning_expman.tracking import Tracker as OurTracker

    class Callback(ABC):  # noqa: B024 - the seed's sketch, as written
        def on_start(self) -> None:  # noqa: B027
            """Called when training starts."""

        def on_epoch_end(self, epoch_idx: int, metrics: Dict[str, Any]) -> bool:  # noqa: B027, UP006
            """Called at the end of each epoch."""

        def on_end(self, metrics: Dict[str, Any]) -> None:  # noqa: B027, UP006
            """Called when training ends."""

    class Tracker(ABC):  # noqa: B024
        def on_create(self, level: Level, *args, **kwargs):  # noqa: B027
            """Called when an entity at the specified level is created."""

        def on_start(self, level: Level, *args, **kwargs):  # noqa: B027
            """Called when an entity at the specified level starts."""

        def on_end(self, level: Level, *args, **kwargs):  # noqa: B027
            """Called when an entity at the specified level ends."""

    for sketch, ours in ((Callback, PipelineCallback), (Tracker, OurTracker)):
        hooks = {n for n in vars(sketch) if n.startswith("on_")}
        assert hooks <= set(dir(ours)), hooks - set(dir(ours))
    assert PipelineCallback().on_epoch_end(0, {}) is True  # default: keep training


# --------------------------------------------------------------------------- YAMLSerializable and Factory


def test_002_000_001_yaml_serialization():
    """002/000/001 "YAML Serialization" (MyCallback), built through the seed's Factory."""
    from omegaconf import DictConfig, OmegaConf

    from lightning_expman.serializable import Factory, YAMLSerializable

    @YAMLSerializable.register("MyCallback")
    class MyCallback(YAMLSerializable):
        def __init__(self, config: DictConfig = None):
            super().__init__(config)
            self.some_param = config.get("some_param", "default_value")

        @classmethod
        def from_config(cls, config: DictConfig):
            return cls(config)

    assert YAMLSerializable.get_class("MyCallback") is MyCallback
    built = Factory.create("MyCallback", OmegaConf.create({"some_param": 7}))
    assert isinstance(built, MyCallback) and built.some_param == 7 and built.config.some_param == 7
    with pytest.raises(ValueError, match=r"Unknown type: 'MyCallbak'.*did you mean 'MyCallback'"):
        YAMLSerializable.get_class("MyCallbak")


def test_000_001_factory_serializable_pattern(capsys):
    """000/001 "Component Implementation", "Factory Implementation" and "Usage Example"; the
    component and factory modules are the reader's, so their classes are defined here."""
    from omegaconf import DictConfig

    from lightning_expman.serializable import Factory, YAMLSerializable

    # Register the component with a type name
    @YAMLSerializable.register("MyComponent")
    class MyComponent(YAMLSerializable):
        def __init__(self, config: DictConfig = None):
            super().__init__(config)
            self.param1 = config.get("param1", "default")
            self.param2 = config.get("param2", 0)

        @classmethod
        def from_config(cls, config: DictConfig):
            return cls(config)

        def do_something(self):
            print(f"Doing something with {self.param1} and {self.param2}")

    class ComponentFactory(Factory):
        """Factory for creating components."""

        @staticmethod
        def create(type_name: str, config: DictConfig, *args, **kwargs):
            try:
                return Factory.create(type_name, config, *args, **kwargs)
            except ValueError as e:
                # Handle unknown types or provide custom error messages
                raise ValueError(f"Failed to create component of type {type_name}: {e}") from e

    # Configuration (YAML or Dict)
    component_config = {
        "type": "MyComponent",  # Type identifier
        "param1": "value1",  # Component-specific parameters
        "param2": 42,
    }

    # Create component from config
    component = ComponentFactory.create(component_config["type"], component_config)

    # Use the component
    component.do_something()  # Outputs: Doing something with value1 and 42
    assert capsys.readouterr().out == "Doing something with value1 and 42\n"
    with pytest.raises(ValueError, match="Failed to create component of type Nope: Unknown type"):
        ComponentFactory.create("Nope", {})


def test_yaml_serializable_registers_into_the_existing_registries(tmp_path):
    """One registry per kind: a registered Tracker is an env.yaml tracker type, a Pipeline a
    ``pipeline:`` name; Factory builds the library's own classes from config keywords."""
    from lightning_expman.pipeline import Pipeline, PipelineFactory, registered_pipelines
    from lightning_expman.serializable import Factory, YAMLSerializable
    from lightning_expman.tracking import Tracker, TrackerManager
    from lightning_expman.tracking.db import DBTracker
    from lightning_expman.tracking.registry import registered_trackers

    @YAMLSerializable.register("SeedCountingTracker")
    class Counting(Tracker):
        def __init__(self, prefix: str = "") -> None:
            self.prefix = prefix

    @YAMLSerializable.register("seed_noop_pipeline")
    class Noop(Pipeline):
        pass

    assert "seedcountingtracker" in registered_trackers() and "seed_noop_pipeline" in registered_pipelines()
    manager = TrackerManager.from_config([{"type": "SeedCountingTracker", "prefix": ">"}])
    assert isinstance(manager.trackers[0], Counting) and manager.trackers[0].prefix == ">"
    assert isinstance(PipelineFactory.create("seed_noop_pipeline", {}, env=None), Noop)
    db = Factory.create("db", {"type": "db", "url": f"sqlite:///{tmp_path / 'x.db'}"})
    assert isinstance(db, DBTracker)


# --------------------------------------------------------------------------- insert_value / multiply


def test_002_000_001_configuration_generation():
    from omegaconf import OmegaConf

    from lightning_expman.config.grid import insert_value, multiply

    # Replace placeholders
    base_config = OmegaConf.create({"learning_rate": "?", "batch_size": 32})
    config = insert_value(base_config, 0.001)  # learning_rate becomes 0.001

    # Create cartesian product
    model_configs = [{"model": "mlp", "layers": [64, 32]}, {"model": "cnn", "filters": [32, 64]}]
    lr_configs = [{"learning_rate": 0.1}, {"learning_rate": 0.01}]
    # Creates 4 configurations combining each model with each learning rate
    configs = multiply(model_configs, lr_configs)

    assert config.learning_rate == 0.001 and config.batch_size == 32 and base_config.learning_rate == "?"
    assert [(c["model"], c["learning_rate"]) for c in configs] == [
        ("mlp", 0.1),
        ("mlp", 0.01),
        ("cnn", 0.1),
        ("cnn", 0.01),
    ]


def test_seed_import_paths_of_the_migration_guide():
    """Every target of the import table in docs/migrating-from-experiment-manager.md exists."""
    import importlib

    guide = Path(__file__).resolve().parents[1] / "docs" / "migrating-from-experiment-manager.md"
    text = guide.read_text(encoding="utf-8")
    rows = [line for line in text.splitlines() if line.startswith("| `from experiment_manager")]
    assert len(rows) >= 15
    for row in rows:
        target = row.split("|")[2].strip().strip("`")
        module, _, names = target.removeprefix("from ").partition(" import ")
        imported = importlib.import_module(module)
        for name in names.split(","):
            name = name.strip().split(" as ")[0]
            assert hasattr(imported, name), f"{module}.{name} ({row})"
