"""Every pipeline, callback and experiment example of seeds 000, 001 and 002, with only imports changed.

The examples are copied as written (``experiment_manager.X`` imports replaced per
docs/migrating-from-experiment-manager.md) and run through the real runner; each test reads the
database back. What the seeds leave to the reader (``your_module``, ``model``, ``train_step``, the
MLP/CNN pipelines of "Model Comparison") is supplied beside the example, never by editing it.
Importing this module imports Lightning (the built-in callbacks are Lightning callbacks).
"""

# The seeds' code as written: implicit Optional (``id: int = None``), ``if ...: return False``.
# ruff: noqa: RUF013, SIM103

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Any, Dict  # noqa: UP035 - the seed's examples use typing.Dict

import pytest
import torch
import yaml
from omegaconf import DictConfig

from lightning_expman import Metric, RunStatus
from lightning_expman.callbacks import CheckpointCallback, EarlyStopping, MetricsTracker
from lightning_expman.experiment import Experiment
from lightning_expman.pipeline import Pipeline, PipelineFactory
from lightning_expman.pipeline import PipelineCallback as Callback
from lightning_expman.workspace import Environment
from tests.seed_support import epoch_values, read_db, runs, snapshot_registries, write_seed_configs


@pytest.fixture(autouse=True)
def _restore_registries():
    """The examples register types; other tests must not see them."""
    restore = snapshot_registries()
    yield
    restore()


# --------------------------------------------------------------------------- 001 "Quick Start", steps 2-3


class YourPipeline(Pipeline):
    def __init__(self, env, config: DictConfig):
        super().__init__(env)
        self.config = config
        # Initialize your model, data loaders, optimizers, etc.

    @Pipeline.run_wrapper
    def run(self, config):
        """Main training loop with automatic lifecycle management"""
        # Your training logic here
        for epoch in range(config.epochs):
            status = self.run_epoch(epoch)
            if status == RunStatus.FAILED:
                return RunStatus.FAILED

        # Store final results in run_metrics for automatic tracking
        final_test_loss, final_test_acc = self.final_test()
        self.run_metrics[Metric.TEST_LOSS] = final_test_loss
        self.run_metrics[Metric.TEST_ACC] = final_test_acc

        return RunStatus.COMPLETED

    @Pipeline.epoch_wrapper
    def run_epoch(self, epoch_idx):
        """Single epoch with automatic metric tracking"""
        # Your epoch training logic
        train_loss = self.train_step()  # Your training code
        val_loss, val_acc = self.validate()  # Your validation code

        # Store in epoch_metrics - automatically tracked by @epoch_wrapper
        self.epoch_metrics[Metric.TRAIN_LOSS] = train_loss
        self.epoch_metrics[Metric.VAL_LOSS] = val_loss
        self.epoch_metrics[Metric.VAL_ACC] = val_acc

        return RunStatus.COMPLETED

    def train_step(self):
        # Your actual training implementation
        return 0.5  # Example loss value

    def validate(self):
        # Your actual validation implementation
        return 0.3, 0.85  # Example val_loss, val_acc

    def final_test(self):
        # Your actual final test implementation
        return 0.25, 0.90  # Example final_test_loss, final_test_acc


class YourPipelineFactory(PipelineFactory):
    @staticmethod
    def create(name: str, config: DictConfig, env: Environment, id: int = None) -> Pipeline:
        # Create and return your pipeline instance based on configuration
        if name == "your_pipeline_name":
            return YourPipeline(env, config)
        # Fall back to default factory for other pipelines
        return PipelineFactory.create(name, config, env, id)


def _db(workspace: Path) -> Any:
    return read_db(workspace / "expman.db")


@pytest.fixture
def cwd(tmp_path, monkeypatch) -> Path:
    """The seeds use relative paths (``outputs``, ``path/to/configs``, ``sqlite:///mlruns.db``)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_001_quick_start(cwd):
    write_seed_configs("path/to/configs", pipeline="your_pipeline_name")

    # --- step 4, as written
    # Configuration directory containing your YAML files
    config_dir = "path/to/configs"

    # Create experiment from configs
    experiment = Experiment.create(config_dir, YourPipelineFactory)

    # Run the entire experiment (all trials)
    experiment.run()

    db = _db(cwd / "outputs" / "my_experiment")
    rows = runs(db, "my_experiment")
    assert [(r["trial"], r["repeat_idx"], r["status"]) for r in rows] == [
        (trial, k, "COMPLETED") for trial in ("small_network", "large_network") for k in (1, 2, 3)
    ]
    assert all(r["results"] == {"test_loss": 0.25, "test_acc": 0.9} for r in rows)
    assert epoch_values(db, rows[0]["id"]) == {
        e: {"train_loss": 0.5, "val_loss": 0.3, "val_acc": 0.85} for e in range(10)
    }
    db.close()


def test_000_quick_start_with_the_pipeline_and_callbacks_section(cwd):
    """000: the config files, "Create a Pipeline Factory", "Run Your Experiment", with the pipeline
    of "Pipeline & Callbacks" (its ``self.model`` is the Pipeline attribute, None until set)."""

    class YourPipeline(Pipeline):
        def __init__(self, env, config):
            super().__init__(env)
            self.config = config

            # Register callbacks
            self.register_callback(
                EarlyStopping(env=env, metric=Metric.VAL_LOSS, patience=5, min_delta_percent=1.0)
            )

        @Pipeline.run_wrapper
        def run(self, config):
            # Your pipeline implementation
            for epoch in range(config.epochs):
                self.run_epoch(epoch, self.model)
            return RunStatus.COMPLETED

        @Pipeline.epoch_wrapper
        def run_epoch(self, epoch_idx, model):
            # Run a single epoch
            # Track metrics
            self.epoch_metrics[Metric.TRAIN_LOSS] = 0.345
            self.epoch_metrics[Metric.VAL_ACCURACY] = 0.912
            return RunStatus.COMPLETED

    class YourPipelineFactory(PipelineFactory):
        @staticmethod
        def create(name: str, config: DictConfig, env: Environment, id: int = None) -> Pipeline:
            # Create and return your pipeline instance based on configuration
            if name == "your_pipeline_name":
                return YourPipeline(env, config)
            # Fall back to default factory for other pipelines
            return PipelineFactory.create(name, config, env, id)

    write_seed_configs("path/to/configs", pipeline="your_pipeline_name")

    # Configuration directory containing your YAML files
    config_dir = "path/to/configs"

    # Create experiment from configs
    experiment = Experiment.create(config_dir, YourPipelineFactory)

    # Run the entire experiment (all trials)
    experiment.run()

    db = _db(cwd / "outputs" / "my_experiment")
    rows = runs(db, "my_experiment")
    assert [r["status"] for r in rows] == ["COMPLETED"] * 6 and all(r["epochs"] == 10 for r in rows)
    # The monitored val_loss is never logged by this pipeline: EarlyStopping warns and never stops.
    assert epoch_values(db, rows[-1]["id"])[9] == {"train_loss": 0.345, "val_acc": 0.912}
    db.close()
    log = (cwd / "outputs/my_experiment/my_experiment/trials/small_network/run_1/logs/run.log").read_text()
    assert "EarlyStopping: metric 'val_loss' not in the epoch's metrics" in log


def test_002_quick_start(cwd):
    """002's quick start names no model and connects its Pipeline to nothing (as in the seed): the
    experiment, its trials and a FAILED run per repeat are recorded, each saying what is missing."""
    write_seed_configs("path/to/configs", env=False, seed="002")
    from omegaconf import OmegaConf

    # Create environment
    env_config = OmegaConf.create({"workspace": "outputs", "settings": {"debug": True}})
    env = Environment(workspace="outputs", config=env_config)
    env.setup_environment()

    # Create experiment
    experiment = Experiment(
        name="my_experiment",
        id=1,
        desc="Training with different hyperparameters",
        env=env,
        config_dir_path="path/to/configs",
    )

    # Set up pipeline with callbacks
    pipeline = Pipeline(env)
    pipeline.register_callback(EarlyStopping(env, patience=5, min_delta_percent=0.1))
    pipeline.register_callback(CheckpointCallback(interval=10, env=env))
    pipeline.register_callback(MetricsTracker(env))

    # Run experiment
    experiment.run()

    assert [type(cb) for cb in pipeline.callbacks] == [EarlyStopping, CheckpointCallback, MetricsTracker]
    assert pipeline.callbacks[0].monitor == "val_loss" and pipeline.callbacks[0].env is env
    for folder in ("configs", "logs", "artifacts"):
        assert (cwd / "outputs" / folder).is_dir()
    exp_dir = cwd / "outputs" / "my_experiment"
    assert (exp_dir / "configs" / "experiment.yaml").is_file()
    assert (exp_dir / "trials" / "large_network" / "run_3" / "logs" / "run.log").is_file()
    db = _db(cwd / "outputs")
    rows = runs(db, "my_experiment")
    assert [(r["trial"], r["status"]) for r in rows] == [
        (t, "FAILED") for t in ("small_network", "large_network") for _ in range(3)
    ]
    assert all("model" in r["error"] and "class_path" in r["error"] for r in rows)
    from lightning_expman.db import models as m

    with db.database.bind_ctx(m.ALL_MODELS):
        exp = m.Experiment.get(m.Experiment.title == "my_experiment")
        assert exp.desc == "Training with different hyperparameters"
    db.close()


# --------------------------------------------------------------------------- 001 pipeline sections


def _one_trial_configs(folder: Path, epochs: int, pipeline: str = "seed_test") -> Path:
    """A minimal config folder (the reader's) for the section examples that have none."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "env.yaml").write_text(f"workspace: {folder.parent / 'ws'}\n")
    (folder / "experiment.yaml").write_text(
        f"name: sections\nid: 1\npipeline: {pipeline}\nsettings: {{epochs: {epochs}}}\n"
    )
    (folder / "trials.yaml").write_text("- {name: only, id: 1, repeat: 1}\n")
    return folder


def _factory(build: Any) -> type:
    class _Factory(PipelineFactory):
        @staticmethod
        def create(name: str, config: DictConfig, env: Environment, id: int = None) -> Pipeline:
            return build(env, config)

    return _Factory


def _run_sections(tmp_path: Path, build: Any, epochs: int) -> tuple[Any, dict[str, Any], Path]:
    Experiment.create(_one_trial_configs(tmp_path / "cfg", epochs), _factory(build)).run()
    db = _db(tmp_path / "ws")
    [row] = runs(db, "sections")
    return db, row, tmp_path / "ws" / "sections" / "trials" / "only" / "run_1"


def test_001_pipeline_decorators_and_early_stopping(tmp_path):
    """001 "Pipeline Decorators": its EarlyStopping (mode="min") stops the run STOPPED once
    val_loss stops improving; ``train_step``/``validate`` are the reader's."""

    class YourPipeline(Pipeline):
        def __init__(self, env, config):
            super().__init__(env)
            self.config = config

            # Pipeline automatically creates PIPELINE level tracking context
            # Register callbacks for enhanced functionality
            self.register_callback(
                EarlyStopping(env=env, metric=Metric.VAL_LOSS, patience=5, min_delta_percent=1.0, mode="min")
            )

        @Pipeline.run_wrapper
        def run(self, config):
            # Your main training loop
            for epoch in range(config.epochs):
                status = self.run_epoch(epoch, self.model)
                if status == RunStatus.FAILED:
                    return RunStatus.FAILED
            return RunStatus.COMPLETED

        @Pipeline.epoch_wrapper
        def run_epoch(self, epoch_idx, model):
            # Your epoch implementation
            train_loss = self.train_step(model)
            val_loss, val_acc = self.validate(model)

            # Add metrics to be automatically tracked
            self.epoch_metrics[Metric.TRAIN_LOSS] = train_loss
            self.epoch_metrics[Metric.VAL_LOSS] = val_loss
            self.epoch_metrics[Metric.VAL_ACC] = val_acc

            return RunStatus.COMPLETED

    YourPipeline.train_step = lambda self, model: 0.5  # the reader's training code
    YourPipeline.validate = lambda self, model: (0.3, 0.85)  # a flat val_loss: no improvement after epoch 0

    db, row, _ = _run_sections(tmp_path, YourPipeline, epochs=20)
    # epoch 0 sets the best; epochs 1-5 do not improve by 1 %: patience 5 stops after epoch 5.
    assert (row["status"], row["epochs"], row["error"]) == ("STOPPED", 6, None)
    assert epoch_values(db, row["id"])[5] == {"train_loss": 0.5, "val_loss": 0.3, "val_acc": 0.85}
    db.close()


def test_001_built_in_callbacks(tmp_path):
    """001 "Built-in Callbacks": the four callbacks as written, registered on the reader's pipeline
    which puts its model in ``epoch_metrics[Metric.NETWORK]``."""

    class CallbackDemo(Pipeline):  # the reader's pipeline
        def __init__(self, env, config):
            super().__init__(env, config)
            # Monitor validation loss with early stopping
            early_stop = EarlyStopping(
                env=env,
                metric=Metric.VAL_LOSS,  # Metric to monitor
                patience=5,  # Epochs to wait without improvement
                min_delta_percent=1.0,  # Minimum % improvement required
                mode="min",  # "min" for loss, "max" for accuracy
            )

            # Alternative: Monitor validation accuracy
            early_stop_acc = EarlyStopping(
                env=env,
                metric=Metric.VAL_ACC,
                patience=10,
                min_delta_percent=0.5,
                mode="max",  # Higher accuracy is better
            )

            # Automatically save metrics to CSV file
            metrics_tracker = MetricsTracker(env=env)

            # Save model checkpoints at regular intervals
            checkpoint = CheckpointCallback(
                interval=5,  # Save every 5 epochs
                env=env,
            )
            for cb in (early_stop, early_stop_acc, metrics_tracker, checkpoint):
                self.register_callback(cb)
            self.model = torch.nn.Linear(4, 2)

        @Pipeline.run_wrapper
        def run(self, config):
            for epoch in range(config.epochs):
                self.run_epoch(epoch, self.model)
            self.run_metrics[Metric.TEST_ACC] = 0.9

        @Pipeline.epoch_wrapper
        def run_epoch(self, epoch_idx, model):
            self.epoch_metrics[Metric.VAL_LOSS] = 1.0 / (epoch_idx + 1)
            self.epoch_metrics[Metric.VAL_ACC] = 0.5 + 0.04 * epoch_idx
            # In your epoch_wrapper, include the model:
            self.epoch_metrics[Metric.NETWORK] = model  # Model will be saved automatically

    db, row, run_dir = _run_sections(tmp_path, CallbackDemo, epochs=10)
    assert (row["status"], row["epochs"], row["results"]) == ("COMPLETED", 10, {"test_acc": 0.9})
    artifacts = run_dir / "artifacts"
    saved = sorted(p.name for p in artifacts.glob("checkpoint-*"))
    assert saved == ["checkpoint-epoch=4.pt", "checkpoint-epoch=9.pt"]
    state = torch.load(artifacts / "checkpoint-epoch=9.pt")
    assert set(state) == {"weight", "bias"}
    for epoch in (4, 9):
        [ckpt] = db.get_epoch_artifacts(epoch, row["id"])
        assert (ckpt.type, Path(ckpt.location).name) == ("checkpoint", f"checkpoint-epoch={epoch}.pt")
        saved_with = {x.type: x.total_val for x in db.get_artifact_metrics(ckpt.id)}
        assert saved_with == {
            "val_loss": pytest.approx(1.0 / (epoch + 1)),
            "val_acc": pytest.approx(0.5 + 0.04 * epoch),
        }
    with open(artifacts / "metrics.log", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == [*map(str, range(10)), "final"]
    assert float(rows[-1]["test_acc"]) == 0.9 and float(rows[-1]["val_loss"]) == pytest.approx(0.1)
    assert [(a.type, Path(a.location).name) for a in db.get_trial_run_artifacts(row["id"])] == [
        ("checkpoint", "checkpoint-epoch=4.pt"),
        ("checkpoint", "checkpoint-epoch=9.pt"),
        ("metrics_log", "metrics.log"),
    ]
    db.close()


def test_001_custom_callbacks(tmp_path):
    class CustomCallback(Callback):
        def __init__(self, env):
            self.env = env

        def on_start(self) -> None:
            """Called when training starts."""
            self.env.logger.info("Training started!")

        def on_epoch_end(self, epoch_idx: int, metrics: Dict[str, Any]) -> bool:  # noqa: UP006
            """Called after each epoch. Return False to stop training."""
            if epoch_idx > 0 and epoch_idx % 10 == 0:
                self.env.logger.info(f"Milestone: Completed {epoch_idx} epochs")
            return True  # Continue training

        def on_end(self, metrics: Dict[str, Any]) -> None:  # noqa: UP006
            """Called when training ends."""
            self.env.logger.info("Training completed!")

    def build(env, config):
        pipeline = YourPipeline(env, config)
        pipeline.register_callback(CustomCallback(env))
        return pipeline

    db, row, run_dir = _run_sections(tmp_path, build, epochs=12)
    assert (row["status"], row["epochs"]) == ("COMPLETED", 12)
    db.close()
    log = (run_dir / "logs" / "run.log").read_text()
    assert (
        "Training started!" in log
        and "Milestone: Completed 10 epochs" in log
        and "Training completed!" in log
    )


# "In your callback:" (001 "Error Handling and Early Stopping"); should_stop_early is the reader's.
_stop_after = {"epoch": 2}


def should_stop_early() -> bool:
    _stop_after["epoch"] -= 1
    return _stop_after["epoch"] < 0


def on_epoch_end(self, epoch_idx: int, metrics: Dict[str, Any]) -> bool:  # noqa: UP006
    if should_stop_early():
        return False  # This triggers StopIteration in the pipeline
    return True


def test_001_error_handling_and_early_stopping(tmp_path):
    ended: list[Any] = []
    StopCallback = type(
        "StopCallback", (Callback,), {"on_epoch_end": on_epoch_end, "on_end": lambda self, m: ended.append(m)}
    )

    def build(env, config):
        pipeline = YourPipeline(env, config)
        pipeline.register_callback(StopCallback())
        return pipeline

    db, row, _ = _run_sections(tmp_path, build, epochs=10)
    # Pipeline automatically: catches StopIteration, sets STOPPED, ends the run, calls on_end.
    assert (row["status"], row["epochs"], row["error"]) == ("STOPPED", 3, None)
    assert len(ended) == 1
    db.close()


# 001 "Automatic Context Management": the example's free names ``model`` and ``train_loss``.
model = None
train_loss = 0.42


def test_001_automatic_context_management_and_metric_tracking_integration(tmp_path):
    class YourPipeline(Pipeline):
        def __init__(self, env):
            super().__init__(env)
            # Automatically creates Level.PIPELINE context

        @Pipeline.run_wrapper
        def run(self, config):
            # @run_wrapper manages Level.PIPELINE start/end
            for epoch in range(config.epochs):
                self.run_epoch(epoch, model)

        @Pipeline.epoch_wrapper
        def run_epoch(self, epoch_idx, model):
            # @epoch_wrapper manages Level.EPOCH create/start/end
            # Automatically tracks self.epoch_metrics at EPOCH level
            self.epoch_metrics[Metric.TRAIN_LOSS] = train_loss

    db, row, _ = _run_sections(tmp_path, lambda env, config: YourPipeline(env), epochs=3)
    assert row["status"] == "COMPLETED"
    assert epoch_values(db, row["id"]) == {e: {"train_loss": 0.42} for e in range(3)}
    db.close()


# --------------------------------------------------------------------------- Common Workflows (000, 001)


def test_000_001_hyperparameter_tuning(cwd):
    write_seed_configs("configs", pipeline="your_pipeline_name")  # the quick-start folder

    # Generate trial configurations with different hyperparameters
    from lightning_expman.config.grid import multiply

    # Define base configuration
    base_config = {  # noqa: F841 - defined and not used, as in the seed
        "name": "tuning_trial",
        "repeat": 3,  # Run each setting 3 times with different seeds
        "settings": {"model_type": "mlp", "batch_size": 32},
    }

    # Define hyperparameter options
    learning_rates = [{"settings": {"learning_rate": lr}} for lr in [0.1, 0.01, 0.001]]
    hidden_layers = [{"settings": {"hidden_layers": layers}} for layers in [[64], [128, 64], [256, 128, 64]]]

    # Generate all combinations
    trial_configs = multiply(learning_rates, hidden_layers)

    # Add trial IDs and names
    for i, conf in enumerate(trial_configs):
        conf["id"] = i + 1
        conf["name"] = f"trial_{i + 1}"

    # Save to trials.yaml
    with open("configs/trials.yaml", "w") as f:
        yaml.dump(trial_configs, f)

    # Run the experiment as normal
    experiment = Experiment.create("configs", YourPipelineFactory)
    experiment.run()

    db = _db(cwd / "outputs" / "my_experiment")
    rows = runs(db, "my_experiment")
    assert [r["trial"] for r in rows] == [f"trial_{i}" for i in range(1, 10)]  # repeat defaults to 1
    assert all(r["status"] == "COMPLETED" and r["results"]["test_acc"] == 0.9 for r in rows)
    from lightning_expman.db import models as m

    with db.database.bind_ctx(m.ALL_MODELS):
        settings = {t.name: t.config for t in m.Trial.select()}
    assert (settings["trial_1"]["learning_rate"], settings["trial_1"]["hidden_layers"]) == (0.1, [64])
    assert (settings["trial_9"]["learning_rate"], settings["trial_9"]["hidden_layers"]) == (
        0.001,
        [256, 128, 64],
    )
    assert settings["trial_5"]["optimizer"] == "adam"  # base.yaml's settings merged in
    db.close()


class _Architecture(YourPipeline):
    """The reader's MLP/CNN/Transformer pipelines of "Model Comparison": each records which ran."""

    code = 0.0

    def final_test(self):
        self.run_metrics["architecture"] = self.code
        return super().final_test()


class MLPPipeline(_Architecture):
    code = 1.0


class CNNPipeline(_Architecture):
    code = 2.0


class TransformerPipeline(_Architecture):
    code = 3.0


def test_000_001_model_comparison(cwd):
    """The seed's factory reads ``config.get("settings", {}).get("model_type")``: each trial's runs
    must be built by the pipeline its model_type names (not MLP for all 15)."""
    write_seed_configs("configs")  # the quick-start folder, as written
    # Compare different model architectures
    model_types = ["mlp", "cnn", "transformer"]

    # Create a pipeline factory that handles different model types
    class ModelComparisonFactory(PipelineFactory):
        @staticmethod
        def create(name, config, env, id=None):
            model_type = config.get("settings", {}).get("model_type", "mlp")

            if model_type == "mlp":
                return MLPPipeline(env, config)
            elif model_type == "cnn":
                return CNNPipeline(env, config)
            elif model_type == "transformer":
                return TransformerPipeline(env, config)
            else:
                raise ValueError(f"Unknown model type: {model_type}")

    # Create trials for each model type
    trial_configs = []
    for i, model_type in enumerate(model_types):
        trial_configs.append(
            {
                "id": i + 1,
                "name": f"{model_type}_model",
                "repeat": 5,  # Run 5 times for statistical significance
                "settings": {
                    "model_type": model_type,
                    "learning_rate": 0.001,
                    "batch_size": 32,
                    # Other shared settings
                },
            }
        )

    # Save and run as above
    with open("configs/trials.yaml", "w") as f:
        yaml.dump(trial_configs, f)
    Experiment.create("configs", ModelComparisonFactory).run()

    db = _db(cwd / "outputs" / "my_experiment")
    rows = runs(db, "my_experiment")
    assert len(rows) == 15 and all(r["status"] == "COMPLETED" for r in rows)
    ran = {(r["trial"], r["results"]["architecture"]) for r in rows}
    assert ran == {("mlp_model", 1.0), ("cnn_model", 2.0), ("transformer_model", 3.0)}
    db.close()


def test_factory_config_keeps_flat_access_and_gets_the_trial(tmp_path):
    """The seed-shaped config: settings flat and under ``settings``, plus the trial's name/id/repeat."""
    seen: list[Any] = []

    def build(env, config):
        seen.append(
            (config.epochs, config.settings.epochs, config.get("settings", {}).get("epochs"), config.name)
        )
        return YourPipeline(env, config)

    db, row, _ = _run_sections(tmp_path, build, epochs=2)
    assert seen == [(2, 2, 2, "only")] and row["status"] == "COMPLETED"
    db.close()


# --------------------------------------------------------------------------- the same objects in Lightning


def test_seed_signatures_work_as_lightning_callbacks(tmp_path, caplog):
    """002's ``EarlyStopping(env, patience=5, min_delta_percent=0.1)``, ``CheckpointCallback(interval=...,
    env=env)`` and ``MetricsTracker(env)`` in a real Trainer fit."""
    from tests.test_lightning_logger import fit, make_logger
    from tests.tiny import TinyClassifier

    env = Environment(workspace=tmp_path / "outputs", config={})
    stopper = EarlyStopping(env, patience=5, min_delta_percent=0.1)
    checkpoint = CheckpointCallback(interval=1, env=env)
    tracker = MetricsTracker(env)
    assert (stopper.monitor, stopper.env, tracker.env, checkpoint.env) == ("val_loss", env, env, env)
    logger = make_logger(tmp_path)
    caplog.set_level(logging.WARNING)
    fit(logger, TinyClassifier(), callbacks=[stopper, checkpoint, tracker], max_epochs=2)
    assert logger.status is RunStatus.COMPLETED
    db = read_db(tmp_path / "expman.db")
    names = {Path(a.location).name for a in db.get_trial_run_artifacts(logger.run_id)}
    assert "metrics.log" in names
    assert sorted(n.split("-")[0] for n in names if n.endswith(".ckpt")) == [
        "epoch=0",
        "epoch=1",
    ]  # interval=1
    db.close()


def test_seed_callback_arguments_are_checked():
    from lightning_expman import ConfigError

    env = object()
    with pytest.raises(TypeError, match="environment was given twice"):
        EarlyStopping(env, env=env)
    with pytest.raises(ConfigError, match="name different metrics"):
        EarlyStopping(monitor="val_acc", metric=Metric.VAL_LOSS)
    assert EarlyStopping(metric="val_acc", mode="max").monitor == "val_acc"
    assert CheckpointCallback(5, env).env is env and CheckpointCallback(5, env).interval == 5


def test_yaml_serializable_files_a_lightning_callback_in_the_callback_registry():
    from lightning.pytorch.callbacks import Callback as LightningCallback

    from lightning_expman.callbacks import build_callback
    from lightning_expman.serializable import Factory, YAMLSerializable

    @YAMLSerializable.register("SeedCountEpochs")
    class CountEpochs(LightningCallback):
        def __init__(self, every: int = 1) -> None:
            self.every = every

    built = build_callback({"type": "SeedCountEpochs", "every": 3})  # settings.callbacks: [{type: ...}]
    assert isinstance(built, CountEpochs) and built.every == 3
    assert YAMLSerializable.get_class("SeedCountEpochs") is CountEpochs
    assert Factory.create("SeedCountEpochs", {"type": "SeedCountEpochs", "every": 2}).every == 2


def test_seed_experiment_constructor_arguments(cwd):
    from lightning_expman import ConfigError

    with pytest.raises(TypeError, match="config_dir_path="):
        Experiment(name="my_experiment")
    write_seed_configs("configs", pipeline="your_pipeline_name")
    experiment = Experiment(
        name="renamed", id=7, desc="d", config_dir_path="configs", factory=YourPipelineFactory
    )
    assert (experiment.spec.name, experiment.spec.id, experiment.spec.desc) == ("renamed", 7, "d")
    assert experiment.factory.factory is YourPipelineFactory  # wrapped: called with the seed-shaped config
    with pytest.raises(TypeError, match="not both"):
        Experiment(experiment.spec, name="x")
    with pytest.raises(ConfigError, match="config folder not found"):
        Experiment(name="x", config_dir_path="missing")
