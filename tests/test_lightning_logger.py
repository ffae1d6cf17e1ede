"""ExpmanLogger and LevelHooks: real Lightning fits of tiny models, asserted with database queries."""

from __future__ import annotations

import os
import pickle
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import lightning as L
import pytest
from lightning.pytorch.callbacks import EarlyStopping as LightningEarlyStopping
from lightning.pytorch.callbacks import ModelCheckpoint

from lightning_expman import RunStatus
from lightning_expman.db import models as m
from lightning_expman.db.manager import DatabaseManager
from lightning_expman.lightning import ExpmanLogger, ExpmanTrainer, LevelHooks
from tests.tiny import ScriptedModel, TinyClassifier, TinyDataModule, fast_trainer_kwargs


@contextmanager
def query(url: str) -> Iterator[DatabaseManager]:
    """A second connection to the logger's database, models bound to it."""
    db = DatabaseManager(url)
    try:
        with db.database.bind_ctx(m.ALL_MODELS):
            yield db
    finally:
        db.close()


def make_logger(tmp_path: Path, **kwargs) -> ExpmanLogger:
    kwargs.setdefault("save_dir", tmp_path / "runs")
    kwargs.setdefault("db", f"sqlite:///{tmp_path / 'expman.db'}")
    return ExpmanLogger(kwargs.pop("experiment", "digits"), kwargs.pop("trial", "mlp"), **kwargs)


def fit(logger: ExpmanLogger, model=None, dm=None, callbacks=None, ckpt_path=None, **overrides) -> L.Trainer:
    trainer = L.Trainer(logger=logger, callbacks=callbacks or [], **fast_trainer_kwargs(**overrides))
    trainer.fit(model or TinyClassifier(), datamodule=dm or TinyDataModule(), ckpt_path=ckpt_path)
    return trainer


def epoch_metrics(db: DatabaseManager, run_id: int) -> dict[int, dict[str, float]]:
    rows = (
        m.EpochMetric.select(m.EpochMetric.epoch_idx, m.MetricRecord.type, m.MetricRecord.total_val)
        .join(m.MetricRecord, on=(m.EpochMetric.metric == m.MetricRecord.id))
        .where(m.EpochMetric.trial_run == run_id)
        .tuples()
    )
    out: dict[int, dict[str, float]] = {}
    for idx, name, value in rows:
        assert name not in out.setdefault(idx, {}), f"duplicate {name} at epoch {idx}"
        out[idx][name] = value
    return out


def results_metrics(run_id: int) -> dict[str, float]:
    rows = (
        m.MetricRecord.select(m.MetricRecord.type, m.MetricRecord.total_val)
        .join(m.ResultsMetric, on=(m.ResultsMetric.metric == m.MetricRecord.id))
        .where(m.ResultsMetric.results == run_id)
        .tuples()
    )
    return dict(rows)


def step_rows(run_id: int) -> list[tuple[int, int, str]]:
    q = m.StepMetric.select(m.StepMetric.step, m.StepMetric.epoch, m.StepMetric.name)
    return list(q.where(m.StepMetric.trial_run == run_id).order_by(m.StepMetric.step).tuples())


# ---------------------------------------------------------------------- drop-in fit


def test_drop_in_fit_records_levels_epochs_steps_params_and_test_results(tmp_path):
    logger = make_logger(tmp_path)
    trainer = fit(logger, ScriptedModel(val_losses=(0.9, 0.8, 0.7)))
    assert logger.status is RunStatus.COMPLETED
    # The status is in the database right after fit, although the run stays open for test().
    with query(logger._db_url) as db:
        assert m.TrialRun.get_by_id(logger.run_id).status == "COMPLETED"
    trainer.test(ScriptedModel(), datamodule=TinyDataModule())
    logger.close()

    with query(logger._db_url) as db:
        assert [e.title for e in m.Experiment.select()] == ["digits"]
        assert [t.name for t in m.Trial.select()] == ["mlp"]
        runs = list(m.TrialRun.select())
        assert len(runs) == 1 and runs[0].id == logger.run_id
        run = runs[0]
        assert run.status == "COMPLETED" and run.end_time is not None and run.error is None
        assert run.context["lightning"] == L.__version__ and run.context["hparams"]["val_losses"] == [
            0.9,
            0.8,
            0.7,
        ]
        assert run.host

        # One EPOCH row per training epoch -- no sanity-check epoch -- with train and val values.
        assert [e.idx for e in m.Epoch.select().where(m.Epoch.trial_run == run.id).order_by(m.Epoch.idx)] == [
            0,
            1,
            2,
        ]
        per_epoch = epoch_metrics(db, run.id)
        assert sorted(per_epoch) == [0, 1, 2]
        for idx, expected in enumerate((0.9, 0.8, 0.7)):
            assert set(per_epoch[idx]) == {"val_loss", "val_acc", "train_loss_epoch"}
            assert per_epoch[idx]["val_loss"] == pytest.approx(expected)

        # Step series: train_loss_step at every step (log_every_n_steps=1), 3 batches x 3 epochs.
        steps = step_rows(run.id)
        assert [(s, e) for s, e, n in steps if n == "train_loss_step"] == [(i, i // 3) for i in range(9)]
        assert {n for _, _, n in steps} == {"train_loss_step"}

        # Hyperparameters from save_hyperparameters (model + datamodule).
        params = {p.key: p.value for p in m.RunParam.select().where(m.RunParam.trial_run == run.id)}
        assert params["val_losses"] == [0.9, 0.8, 0.7] and params["batch_size"] == 16 and params["n"] == 64

        # trainer.test() -> RESULTS of the same run.
        results = results_metrics(run.id)
        assert set(results) == {"test_loss", "test_acc"}
        assert 0.0 <= results["test_acc"] <= 1.0

        # The model summary is a text artifact of the run.
        summary = [a for a in db.get_trial_run_artifacts(run.id) if a.type == "model_summary"]
        assert len(summary) == 1 and "Params" in Path(summary[0].location).read_text()
    assert Path(logger.log_dir) == tmp_path / "runs" / "digits" / "version_0"
    assert logger.name == "digits" and logger.version == 0  # an int, like CSVLogger


def test_checkpoints_become_epoch_artifacts_and_best_goes_to_results(tmp_path):
    logger = make_logger(tmp_path)
    ckpt = ModelCheckpoint(monitor="val_loss", save_top_k=1, mode="min", filename="{epoch}")
    # val_loss is best at epoch 1: the epoch-2 checkpoint is not kept by top-1.
    fit(logger, ScriptedModel(val_losses=(0.9, 0.5, 0.7)), callbacks=[ckpt])
    with query(logger._db_url) as db:
        run = logger.run_id
        per_epoch = {e: {a.location for a in db.get_epoch_artifacts(e, run)} for e in (0, 1, 2)}
        assert per_epoch[0] == set()  # saved, then deleted by top-1 when epoch 1 was better
        assert per_epoch[1] == {ckpt.best_model_path}
        assert per_epoch[2] == set()  # not saved: not in the top 1
        best = (
            m.Artifact.select()
            .join(m.ResultsArtifact, on=(m.ResultsArtifact.artifact == m.Artifact.id))
            .where(m.ResultsArtifact.results == run)
        )
        assert [(a.type, a.location) for a in best] == [("checkpoint", ckpt.best_model_path)]
        assert ckpt.best_model_path.endswith("epoch=1.ckpt")
        # Run artifacts including children: summary + checkpoints, all under the run.
        locations = {a.location for a in db.get_trial_run_artifacts(run, include_children=True)}
        assert ckpt.best_model_path in locations


@pytest.mark.parametrize("attach_hooks", [True, False], ids=["hooks", "no-hooks"])
def test_lightning_model_checkpoint_top_k_records_exactly_the_files_on_disk(tmp_path, attach_hooks):
    # Lightning's own ModelCheckpoint (no delete hook): the logger reconciles with the disk.
    logger = make_logger(tmp_path, attach_hooks=attach_hooks)
    ckpt = ModelCheckpoint(monitor="val_loss", save_top_k=1, mode="min", filename="{epoch}", save_last=True)
    fit(logger, ScriptedModel(val_losses=(0.9, 0.8, 0.7, 0.6)), callbacks=[ckpt], max_epochs=4)
    logger.close()
    on_disk = sorted(p.name for p in Path(ckpt.dirpath).iterdir())
    assert on_disk == ["epoch=3.ckpt", "last.ckpt"]
    with query(logger._db_url) as db:
        recorded = sorted(
            Path(a.location).name
            for a in db.get_trial_run_artifacts(logger.run_id, include_children=True)
            if a.type == "checkpoint"
        )
        assert recorded == on_disk
        assert m.Artifact.select().where(m.Artifact.type == "checkpoint").count() == 2  # no orphan rows


def test_finalize_called_by_user_closes_the_run_and_lr_monitor_values_land_on_steps(tmp_path):
    from lightning.pytorch.callbacks import LearningRateMonitor

    logger = make_logger(tmp_path)
    trainer = fit(logger, callbacks=[LearningRateMonitor(logging_interval="step")], max_epochs=2)
    assert logger._run_open  # kept open for a following test()
    logger.finalize("success")  # outside a running Trainer: closes it
    assert not logger._run_open
    with query(logger._db_url):
        run = m.TrialRun.get_by_id(logger.run_id)
        assert run.status == "COMPLETED" and run.end_time is not None
        assert [s for s, _, n in step_rows(run.id) if n == "lr-SGD"] == list(range(6))
    trainer.test(TinyClassifier(), datamodule=TinyDataModule())  # gets a run of its own
    logger.close()
    with query(logger._db_url):
        assert m.TrialRun.select().count() == 2
        assert set(results_metrics(logger.run_id)) == {"test_loss", "test_acc"}


def test_validate_after_fit_gives_results_not_an_epoch(tmp_path):
    logger = make_logger(tmp_path)
    trainer = fit(logger, ScriptedModel(val_losses=(0.4,)), max_epochs=1)
    trainer.validate(ScriptedModel(val_losses=(0.3,)), datamodule=TinyDataModule())
    logger.close()
    with query(logger._db_url) as db:
        assert m.TrialRun.select().count() == 1
        assert [e.idx for e in m.Epoch.select()] == [0]
        assert epoch_metrics(db, logger.run_id)[0]["val_loss"] == pytest.approx(0.4)
        assert results_metrics(logger.run_id) == {
            "val_loss": pytest.approx(0.3),
            "val_acc": pytest.approx(0.5, abs=0.5),
        }


def test_two_fits_with_one_logger_are_two_runs_and_the_first_is_closed(tmp_path):
    logger = make_logger(tmp_path)
    fit(logger, max_epochs=1)
    first = logger.run_id
    fit(logger, max_epochs=2)
    second = logger.run_id
    logger.close()
    assert first != second
    with query(logger._db_url):
        runs = {r.id: r for r in m.TrialRun.select()}
        assert set(runs) == {first, second}
        assert all(r.status == "COMPLETED" and r.end_time is not None for r in runs.values())
        assert m.Epoch.select().where(m.Epoch.trial_run == first).count() == 1
        assert m.Epoch.select().where(m.Epoch.trial_run == second).count() == 2
        assert m.Trial.select().count() == 1  # the same trial holds both repeats


def test_exception_in_training_step_fails_the_run_and_keeps_earlier_data(tmp_path):
    logger = make_logger(tmp_path)
    with pytest.raises(RuntimeError, match="planted failure at step 4"):
        fit(logger, TinyClassifier(fail_at_step=4))
    assert logger.status is RunStatus.FAILED
    with query(logger._db_url) as db:
        run = m.TrialRun.get_by_id(logger.run_id)
        assert run.status == "FAILED" and run.end_time is not None
        assert run.error == "RuntimeError: planted failure at step 4"
        # Everything logged before the failure was flushed: 4 steps and the complete epoch 0.
        assert [s for s, _, n in step_rows(run.id) if n == "train_loss"] == [0, 1, 2, 3]
        assert set(epoch_metrics(db, run.id)[0]) == {"val_loss", "val_acc"}


def test_keyboard_interrupt_aborts_the_run(tmp_path):
    logger = make_logger(tmp_path)
    handler = signal.getsignal(signal.SIGINT)
    try:
        # Lightning catches Ctrl-C, calls on_exception and finalize("failed"), then sys.exit(1).
        with pytest.raises(SystemExit):
            fit(logger, ScriptedModel(interrupt_at_step=2))
    finally:
        signal.signal(signal.SIGINT, handler)  # Lightning ignores SIGINT during its shutdown
    assert logger.status is RunStatus.ABORTED
    with query(logger._db_url):
        run = m.TrialRun.get_by_id(logger.run_id)
        assert run.status == "ABORTED" and run.error.startswith("KeyboardInterrupt")
        assert [s for s, _, n in step_rows(run.id) if n == "train_loss_step"] == [0, 1]


class SendSigterm(L.Callback):
    """Sends this process a real SIGTERM after the given global step."""

    def __init__(self, at_step: int) -> None:
        self.at_step = at_step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.at_step:
            os.kill(os.getpid(), signal.SIGTERM)


def test_sigterm_aborts_the_run(tmp_path):
    logger = make_logger(tmp_path)
    handler = signal.getsignal(signal.SIGTERM)
    try:
        # Lightning's handler flags the trainer; the loop raises SIGTERMException (a SystemExit).
        with pytest.raises(SystemExit):
            fit(logger, ScriptedModel(), callbacks=[SendSigterm(at_step=2)])
    finally:
        signal.signal(signal.SIGTERM, handler)
    assert logger.status is RunStatus.ABORTED
    with query(logger._db_url):
        run = m.TrialRun.get_by_id(logger.run_id)
        assert run.status == "ABORTED" and run.error.startswith("SIGTERMException")


def test_lightning_early_stopping_gives_stopped_with_stop_epoch(tmp_path):
    logger = make_logger(tmp_path)
    stopper = LightningEarlyStopping(monitor="val_loss", patience=1, mode="min")
    fit(logger, ScriptedModel(val_losses=(1.0, 0.5, 0.6, 0.7, 0.8)), callbacks=[stopper], max_epochs=5)
    assert stopper.stopped_epoch == 2
    assert logger.status is RunStatus.STOPPED
    with query(logger._db_url):
        run = m.TrialRun.get_by_id(logger.run_id)
        assert (run.status, run.stop_epoch) == ("STOPPED", 2)
        assert m.Epoch.select().where(m.Epoch.trial_run == run.id).count() == 3


def test_without_hooks_the_logger_still_gets_epochs_right(tmp_path):
    logger = make_logger(tmp_path, attach_hooks=False)
    trainer = fit(logger, ScriptedModel(val_losses=(0.9, 0.8)), max_epochs=2)
    # LevelHooks comes with every Trainer (the entry point) but leaves this logger alone.
    assert not logger._hooked
    trainer.test(ScriptedModel(), datamodule=TinyDataModule())
    logger.close()
    with query(logger._db_url) as db:
        run = logger.run_id
        assert m.TrialRun.get_by_id(run).status == "COMPLETED"
        per_epoch = epoch_metrics(db, run)
        assert sorted(per_epoch) == [0, 1]
        assert per_epoch[1]["val_loss"] == pytest.approx(0.8)
        assert set(per_epoch[0]) == {"val_loss", "val_acc", "train_loss_epoch"}
        assert [(s, e) for s, e, n in step_rows(run) if n == "train_loss_step"] == [
            (i, i // 3) for i in range(6)
        ]
        assert set(results_metrics(run)) == {"test_loss", "test_acc"}


def test_a_trainer_holding_the_logger_pickles(tmp_path):
    logger = make_logger(tmp_path)
    trainer = L.Trainer(logger=logger, **fast_trainer_kwargs(max_epochs=1))
    trainer.fit(TinyClassifier(), datamodule=TinyDataModule())
    clone = pickle.loads(pickle.dumps(trainer))
    assert isinstance(clone.logger, ExpmanLogger) and clone.logger.log_dir == logger.log_dir
    # The copy works on its own: it opens its own run lazily.
    clone.logger.log_metrics({"acc": 1.0}, step=0)
    clone.logger.close()
    logger.close()
    with query(logger._db_url):
        assert m.TrialRun.select().count() == 2
        assert m.StepMetric.select().where(m.StepMetric.name == "acc").count() == 1


def test_expman_trainer_exposes_run_id_and_status(tmp_path):
    hooks = LevelHooks()
    trainer = ExpmanTrainer(
        experiment="digits",
        trial="trainer",
        db=f"sqlite:///{tmp_path / 'expman.db'}",
        save_dir=tmp_path / "runs",
        callbacks=[hooks, {"type": "early_stopping", "monitor": "val_loss", "patience": 1}],
        **fast_trainer_kwargs(max_epochs=4),
    )
    assert trainer.run_id is None
    trainer.fit(ScriptedModel(val_losses=(1.0, 1.0, 1.0, 1.0)), datamodule=TinyDataModule())
    # The one given leads; the entry point's copy was dropped at setup.
    assert [cb for cb in trainer.callbacks if isinstance(cb, LevelHooks)] == [hooks]
    assert trainer.callbacks[0] is hooks
    assert trainer.status is RunStatus.STOPPED
    with query(trainer.expman_logger._db_url):
        run = m.TrialRun.get_by_id(trainer.run_id)
        assert (run.status, run.stop_epoch) == ("STOPPED", 1)
        assert m.Trial.get_by_id(run.trial).name == "trainer"
    trainer.expman_logger.close()


def test_runner_mode_uses_the_given_manager_and_run_info(tmp_path):
    from lightning_expman import Level
    from lightning_expman.tracking import TrackerManager
    from lightning_expman.tracking.db import DBTracker

    url = f"sqlite:///{tmp_path / 'expman.db'}"
    manager = TrackerManager([DBTracker(url)])
    manager.on_create(Level.EXPERIMENT, name="grid")
    manager.on_start(Level.EXPERIMENT)
    manager.on_create(Level.TRIAL, name="lr=0.1")
    manager.on_start(Level.TRIAL)
    workdir = tmp_path / "work" / "run-2"
    run_info = {
        "repeat_idx": 2,
        "seed": 43,
        "config": {"lr": 0.1},
        "tags": {"k": "v"},
        "workdir": str(workdir),
    }
    logger = ExpmanLogger.for_runner(manager, run_info)
    fit(logger, max_epochs=1)
    assert logger.artifact_dir == str(workdir / "artifacts")
    assert (workdir / "artifacts" / "model_summary.txt").is_file()
    logger.close()  # ends the run, leaves TRIAL/EXPERIMENT open for the runner
    assert manager.open_levels == [Level.EXPERIMENT, Level.TRIAL]
    manager.on_end(Level.TRIAL)
    manager.on_end(Level.EXPERIMENT)
    manager.close()
    with query(url):
        run = m.TrialRun.get_by_id(logger.run_id)
        assert (run.repeat_idx, run.seed, run.config, run.status) == (2, 43, {"lr": 0.1}, "COMPLETED")
        assert m.Experiment.get_by_id(m.Trial.get_by_id(run.trial).experiment).title == "grid"


# ---------------------------------------------------------------------- per-label values


class PerLabelModel(TinyClassifier):
    """Logs a per-class accuracy vector through ``ExpmanLogger.log_per_label`` at each eval epoch end."""

    def _per_class(self, stage: str) -> None:
        x, y = self.trainer.datamodule.x, self.trainer.datamodule.y
        hits = (self(x).argmax(-1) == y).float()
        per_class = [hits[y == c].mean() for c in (0, 1)]
        self.logger.log_per_label(f"{stage}_acc_per_class", per_class, labels=["neg", "pos"])

    def on_validation_epoch_end(self):
        self._per_class("val")

    def on_test_epoch_end(self):
        self._per_class("test")


@pytest.mark.parametrize("attach_hooks", [True, False], ids=["hooks", "no-hooks"])
def test_log_per_label_lands_on_epochs_and_results(tmp_path, attach_hooks):
    logger = make_logger(tmp_path, attach_hooks=attach_hooks)
    trainer = fit(logger, PerLabelModel(), max_epochs=2)
    trainer.test(trainer.lightning_module, datamodule=trainer.datamodule, verbose=False)
    logger.close()
    with query(f"sqlite:///{tmp_path / 'expman.db'}"):
        per_epoch = (
            m.EpochMetric.select(m.EpochMetric.epoch_idx, m.MetricRecord.per_label_val)
            .join(m.MetricRecord, on=(m.EpochMetric.metric == m.MetricRecord.id))
            .where((m.EpochMetric.trial_run == logger.run_id) & (m.MetricRecord.type == "val_acc_per_class"))
            .tuples()
        )
        results = dict(
            m.MetricRecord.select(m.MetricRecord.type, m.MetricRecord.per_label_val)
            .join(m.ResultsMetric, on=(m.ResultsMetric.metric == m.MetricRecord.id))
            .where((m.ResultsMetric.results == logger.run_id) & m.MetricRecord.type.endswith("_per_class"))
            .tuples()
        )
        epochs = sorted(idx for idx, _ in per_epoch)
        labels = {tuple(sorted(values)) for _, values in per_epoch}
    assert epochs == [0, 1]  # one value per epoch; the sanity check recorded nothing
    assert labels == {("neg", "pos")}
    assert list(results) == ["test_acc_per_class"] and sorted(results["test_acc_per_class"]) == ["neg", "pos"]
