"""Pipelines: the seed-style custom loop (run_wrapper / epoch_wrapper) and the Lightning pipeline."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from lightning_expman import ConfigError, Level, Metric, RunStatus
from lightning_expman.experiment import Experiment
from lightning_expman.pipeline import (
    LightningPipeline,
    Pipeline,
    PipelineCallback,
    PipelineFactory,
    instantiate,
    register_pipeline,
    registered_pipelines,
)
from tests.experiment_support import runs_of, write_config


class StopAfter(PipelineCallback):
    """Stops the run (returns False) once ``epochs`` epochs are done."""

    def __init__(self, epochs: int | None) -> None:
        self.epochs = epochs
        self.seen: list[int] = []
        self.ended = False

    def on_epoch_end(self, epoch_idx, metrics):
        self.seen.append(epoch_idx)
        assert Metric.TRAIN_LOSS in metrics  # callbacks see the epoch's metrics before they are cleared
        return self.epochs is None or epoch_idx + 1 < self.epochs

    def on_end(self, metrics):
        self.ended = True


@register_pipeline("toy_loop")
class ToyLoop(Pipeline):
    """A hand-written loop in the seed's style: settings ``epochs``, ``stop_after``, ``fail_at``."""

    def __init__(self, env, config):
        super().__init__(env, config)
        self.stopper = self.register_callback(StopAfter(config.get("stop_after")))

    @Pipeline.run_wrapper
    def run(self, config):
        for epoch in range(config.epochs):
            self.run_epoch(epoch)
        self.run_metrics[Metric.TEST_ACC] = 0.9
        self.run_metrics["draw"] = random.random()  # seeded by the runner: reproducible per seed
        return RunStatus.COMPLETED

    @Pipeline.epoch_wrapper
    def run_epoch(self, epoch_idx):
        if self.config.get("fail_at") is not None and epoch_idx == self.config.fail_at:
            raise ValueError(f"planted failure in epoch {epoch_idx}")
        self.epoch_metrics[Metric.TRAIN_LOSS] = 1.0 / (epoch_idx + 1)
        self.epoch_metrics[Metric.NETWORK] = object()  # untracked: never stored


def _metrics(root: Path, run_id: int) -> tuple[dict[int, dict[str, float]], dict[str, float]]:
    """(epoch idx -> {name: value}, results {name: value}) of one run."""
    from lightning_expman.db import DatabaseManager
    from lightning_expman.db import models as m

    manager = DatabaseManager(f"sqlite:///{root / 'expman.db'}")
    try:
        with manager.database.bind_ctx(m.ALL_MODELS):
            epochs: dict[int, dict[str, float]] = {}
            for link in (
                m.EpochMetric.select(m.EpochMetric, m.MetricRecord)
                .join(m.MetricRecord)
                .where(m.EpochMetric.trial_run == run_id)
            ):
                epochs.setdefault(link.epoch_idx, {})[link.metric.type] = link.metric.total_val
            results = {
                link.metric.type: link.metric.total_val
                for link in m.ResultsMetric.select(m.ResultsMetric, m.MetricRecord)
                .join(m.MetricRecord)
                .where(m.ResultsMetric.results == run_id)
            }
            return epochs, results
    finally:
        manager.close()


@pytest.fixture(scope="module")
def toy_experiment(tmp_path_factory):
    root = tmp_path_factory.mktemp("toy")
    cfg = write_config(
        root,
        [
            {"name": "ok", "id": 1, "repeat": 2},
            {"name": "stopped", "id": 2, "repeat": 1, "settings": {"stop_after": 2}},
            {"name": "failing", "id": 3, "repeat": 1, "settings": {"fail_at": 1}},
        ],
        settings={"seed": 7, "epochs": 3, "stop_after": None, "fail_at": None},
        experiment={"pipeline": "toy_loop"},
    )
    summary = Experiment.create(cfg).run()
    return root, summary


def test_custom_pipeline_statuses(toy_experiment):
    root, summary = toy_experiment
    rows = runs_of(root)
    assert [(r["trial"], r["repeat_idx"], r["seed"], r["status"]) for r in rows] == [
        ("ok", 1, 7, "COMPLETED"),
        ("ok", 2, 8, "COMPLETED"),
        ("stopped", 1, 7, "STOPPED"),
        ("failing", 1, 7, "FAILED"),
    ]
    assert "planted failure in epoch 1" in rows[3]["error"]
    assert rows[2]["error"] is None
    assert all(r["end_time"] is not None for r in rows)
    assert [r.status for r in summary.results] == [
        RunStatus.COMPLETED,
        RunStatus.COMPLETED,
        RunStatus.STOPPED,
        RunStatus.FAILED,
    ]
    assert summary.exit_code == 1
    assert [r.run_id for r in summary.results] == [r["id"] for r in rows]


def test_custom_pipeline_metrics_tracked(toy_experiment):
    root, _ = toy_experiment
    rows = runs_of(root)
    epochs, results = _metrics(root, rows[0]["id"])
    assert epochs == {0: {"train_loss": 1.0}, 1: {"train_loss": 0.5}, 2: {"train_loss": pytest.approx(1 / 3)}}
    assert results["test_acc"] == pytest.approx(0.9)
    assert "network" not in {name for values in epochs.values() for name in values}
    # Stopped by the callback after 2 epochs: both epochs are recorded.
    stopped_epochs, _ = _metrics(root, rows[2]["id"])
    assert sorted(stopped_epochs) == [0, 1]
    # The failed run keeps what it recorded before failing (epoch 0).
    failed_epochs, _ = _metrics(root, rows[3]["id"])
    assert sorted(failed_epochs) == [0]


def test_custom_pipeline_seeded_by_runner(toy_experiment):
    root, _ = toy_experiment
    rows = runs_of(root)
    draws = [_metrics(root, r["id"])[1]["draw"] for r in rows[:2]]
    random.seed(7)
    expected_7 = random.random()
    random.seed(8)
    expected_8 = random.random()
    assert draws == [pytest.approx(expected_7), pytest.approx(expected_8)]


def test_run_wrapper_without_runner(tmp_path):
    """A pipeline used on its own, with an environment without trackers, still reports statuses."""
    from lightning_expman.workspace import Environment

    env = Environment.from_config({"workspace": str(tmp_path / "ws")}).create_child("solo")
    config = OmegaConf.create({"epochs": 3, "stop_after": None, "fail_at": None})
    assert ToyLoop(env, config).run(config) is RunStatus.COMPLETED
    stopped = ToyLoop(env, OmegaConf.merge(config, {"stop_after": 1}))
    assert stopped.run(stopped.config) is RunStatus.STOPPED
    assert stopped.stopper.seen == [0] and stopped.stopper.ended
    failing = ToyLoop(env, OmegaConf.merge(config, {"fail_at": 0}))
    assert failing.run(failing.config) is RunStatus.FAILED
    assert failing.error == "ValueError: planted failure in epoch 0"
    env.close()


def test_run_wrapper_ctrl_c_aborts_and_propagates(tmp_path):
    from lightning_expman.workspace import Environment

    class Interrupted(Pipeline):
        @Pipeline.run_wrapper
        def run(self, config=None):
            raise KeyboardInterrupt

    env = Environment.from_config({"workspace": str(tmp_path / "ws")}).create_child("solo")
    pipe = Interrupted(env)
    with pytest.raises(KeyboardInterrupt):
        pipe.run()
    assert pipe.status is RunStatus.ABORTED
    env.close()


def test_factory_registry_and_class_paths(tmp_path):
    from lightning_expman.workspace import Environment

    env = Environment.from_config({"workspace": str(tmp_path / "ws")}).create_child("solo")
    config = OmegaConf.create({"epochs": 1})
    assert {"lightning", "toy_loop"} <= set(registered_pipelines())
    assert isinstance(PipelineFactory.create("toy_loop", config, env), ToyLoop)
    assert isinstance(PipelineFactory.create("tests.test_pipeline.ToyLoop", config, env, id=3), ToyLoop)
    with pytest.raises(ConfigError, match=r"unknown pipeline 'toy_lop'; did you mean 'toy_loop'\?"):
        PipelineFactory.create("toy_lop", config, env)
    with pytest.raises(ConfigError, match="has no 'ToyLop'"):
        PipelineFactory.create("tests.test_pipeline.ToyLop", config, env)

    @PipelineFactory.register("toy_alias")
    def make(env, config):
        return ToyLoop(env, config)

    assert isinstance(PipelineFactory.create("toy_alias", config, env), ToyLoop)
    env.close()


def test_custom_factory_subclass_falls_back(tmp_path):
    from lightning_expman.workspace import Environment

    made = []

    class MyFactory(PipelineFactory):
        @staticmethod
        def create(name, config, env, id=None):
            made.append((name, id))
            if name == "mine":
                return ToyLoop(env, config)
            return PipelineFactory.create(name, config, env, id)

    env = Environment.from_config({"workspace": str(tmp_path / "ws")}).create_child("solo")
    assert isinstance(MyFactory.create("mine", OmegaConf.create({"epochs": 1}), env, 1), ToyLoop)
    assert made == [("mine", 1)]
    env.close()


def test_instantiate_errors():
    assert instantiate({"class_path": "collections.Counter", "init_args": {"a": 1}}, key="model") == {"a": 1}
    with pytest.raises(ConfigError, match=r"model.class_path: 'collections.Countr'.*did you mean 'Counter'"):
        instantiate({"class_path": "collections.Countr"}, key="model")
    with pytest.raises(ConfigError, match="cannot import module 'no_such_pkg'"):
        instantiate({"class_path": "no_such_pkg.Model"}, key="model")
    with pytest.raises(ConfigError, match=r"data\.init_args: must be a mapping"):
        instantiate({"class_path": "collections.Counter", "init_args": [1]}, key="data")
    with pytest.raises(TypeError):  # bad argument values surface as the constructor's own error
        instantiate(
            {"class_path": "datetime.date", "init_args": {"year": "x", "month": 1, "day": 1}}, key="model"
        )


@pytest.mark.slow
def test_lightning_pipeline_fits_and_tests(tmp_path):
    """The standard pipeline on its own: model + datamodule + trainer from settings, fit then test."""
    from lightning_expman.tracking import TrackerManager, TrackScope
    from lightning_expman.tracking.db import DBTracker
    from lightning_expman.workspace import Environment

    db = DBTracker(f"sqlite:///{tmp_path / 'expman.db'}")
    env = Environment.from_config({"workspace": str(tmp_path / "ws")})
    env.tracker_manager = TrackerManager([db])
    exp_env = env.create_child("solo")
    run_env = exp_env.create_child("t").create_child("run_1")
    config = OmegaConf.create(
        {
            "seed": 3,
            "model": {"class_path": "tests.tiny.TinyClassifier", "init_args": {"hidden": 4}},
            "data": {"class_path": "tests.tiny.TinyDataModule", "init_args": {"n": 32}},
            "trainer": {"max_epochs": 2},
            "callbacks": [{"type": "metrics_tracker"}],
        }
    )
    manager = env.tracker_manager
    with TrackScope(manager, Level.EXPERIMENT, name="solo"), TrackScope(manager, Level.TRIAL, name="t"):
        pipe = PipelineFactory.create(None, config, run_env)
        assert isinstance(pipe, LightningPipeline)
        assert pipe.has_test_loop()
        pipe.run_info = {"repeat_idx": 1, "seed": 3, "workdir": str(run_env.workdir)}
        assert pipe.run(config) is RunStatus.COMPLETED
    env.tracker_manager.close()
    rows = runs_of(tmp_path, "solo")
    assert [(r["status"], r["seed"], r["repeat_idx"], r["epochs"]) for r in rows] == [("COMPLETED", 3, 1, 2)]
    _, results = _metrics(tmp_path, rows[0]["id"])
    assert {"test_loss", "test_acc"} <= set(results)
    assert pipe.trainer.default_root_dir == str(run_env.workdir)
    for e in (run_env, exp_env, env):
        e.close()


@register_pipeline("one_epoch_lightning")
class OneEpochLightning(LightningPipeline):
    """A Lightning pipeline of a user: changes a setting through ``self.config`` and overrides run()."""

    seen: list[tuple[str, object]] = []

    def __init__(self, env, config):
        super().__init__(env, config)
        self.config.trainer.max_epochs = 1  # attribute access: a DictConfig

    def run(self, config=None):
        OneEpochLightning.seen.append((type(config).__name__, config.trainer.max_epochs))
        return super().run(config)


def test_a_lightning_pipelines_config_is_a_dictconfig_and_what_is_changed_there_is_used(tmp_path):
    """The runner hands Lightning pipelines plain settings (the DictConfig is built on first use of
    ``pipeline.config``); a subclass still gets a DictConfig from ``self.config`` and in an
    overridden ``run(config)``, and a setting changed there is what the Trainer is built from."""
    cfg = write_config(tmp_path, [{"name": "t"}], experiment={"pipeline": "one_epoch_lightning"})
    OneEpochLightning.seen.clear()
    assert Experiment.create(cfg).run().exit_code == 0
    assert OneEpochLightning.seen == [("DictConfig", 1)]
    assert [(r["status"], r["epochs"]) for r in runs_of(tmp_path)] == [("COMPLETED", 1)]  # not 2


def test_the_standard_pipeline_reads_plain_settings_without_building_a_dictconfig(tmp_path):
    from lightning_expman.workspace import Environment

    env = Environment.from_config({"workspace": str(tmp_path / "ws")})
    run_env = env.create_child("solo").create_child("t").create_child("run_1")
    settings = {"seed": 3, "model": {"class_path": "tests.tiny.TinyClassifier"}, "test": False}
    settings["trainer"] = {"max_epochs": 1, "enable_checkpointing": False}
    pipe = PipelineFactory.create(None, settings, run_env)
    pipe.run_info = {"repeat_idx": 1, "seed": 3}
    trainer = pipe.build_trainer()
    assert trainer.max_epochs == 1 and not pipe._test_mode()
    assert pipe._config is None  # nothing above needed the DictConfig
    assert OmegaConf.to_container(pipe.config) == settings
    run_env.close()
    env.close()


def test_a_trainer_on_several_devices_is_refused_before_fitting(tmp_path):
    """The load-time check reads the settings; a Trainer that still ends up on several devices
    (``devices: auto`` on a machine with several GPUs, here asked for directly) is refused when
    built, before any process is started."""
    from lightning_expman.workspace import Environment

    env = Environment.from_config({"workspace": str(tmp_path / "ws")})
    run_env = env.create_child("solo").create_child("t").create_child("run_1")
    config = OmegaConf.create(
        {
            "seed": 3,
            "model": {"class_path": "tests.tiny.TinyClassifier"},
            "trainer": {"accelerator": "cpu", "devices": 2, "strategy": "ddp_spawn"},
        }
    )
    pipe = PipelineFactory.create(None, config, run_env)
    pipe.run_info = {"repeat_idx": 1, "seed": 3}
    with pytest.raises(ConfigError, match=r"2 devices x 1 node.*cannot follow a fit across several"):
        pipe.build_trainer()
    assert pipe.trainer is None
    run_env.close()
    env.close()


def test_callback_failing_in_on_start_fails_the_run_and_hooks_are_optional(tmp_path):
    """A callback raising in ``on_start`` ends the run FAILED (returned, not raised); a callback
    without some of the seed's hooks (a plain Lightning callback) is skipped for those."""
    from lightning.pytorch.callbacks import LearningRateMonitor

    from lightning_expman.workspace import Environment

    class Broken(PipelineCallback):
        def on_start(self):
            raise RuntimeError("cannot start")

    env = Environment.from_config({"workspace": str(tmp_path / "ws")}).create_child("solo")
    config = OmegaConf.create({"epochs": 2, "stop_after": None, "fail_at": None})
    pipe = ToyLoop(env, config)
    pipe.register_callback(LearningRateMonitor())
    assert pipe.run(config) is RunStatus.COMPLETED
    broken = ToyLoop(env, config)
    broken.register_callback(Broken())
    assert broken.run(config) is RunStatus.FAILED
    assert broken.error == "RuntimeError: cannot start"
    env.close()


def test_builtin_callbacks_without_env_get_the_pipelines(tmp_path):
    import torch

    from lightning_expman.callbacks import CheckpointCallback, MetricsTracker
    from lightning_expman.workspace import Environment

    class WithModel(Pipeline):
        @Pipeline.run_wrapper
        def run(self, config=None):
            for epoch in range(2):
                self.run_epoch(epoch)

        @Pipeline.epoch_wrapper
        def run_epoch(self, epoch_idx):
            self.epoch_metrics[Metric.TRAIN_LOSS] = 1.0
            self.epoch_metrics[Metric.NETWORK] = torch.nn.Linear(2, 1)

    env = Environment.from_config({"workspace": str(tmp_path / "ws")}).create_child("solo")
    pipe = WithModel(env)
    checkpoint = pipe.register_callback(CheckpointCallback(interval=2))
    tracker = pipe.register_callback(MetricsTracker())
    assert checkpoint.env is env and tracker.env is env
    assert pipe.run() is RunStatus.COMPLETED
    assert sorted(p.name for p in env.artifact_dir.iterdir()) == ["checkpoint-epoch=1.pt", "metrics.log"]
    env.close()
