"""ExpmanLogger against the behaviours Lightning's own logger suite checks of every logger
(``tests_pytorch/loggers/test_all.py``: fit then test, pickling, no thread left behind, atexit use)
and the edge cases of issue 13: paths that must stay in ``save_dir``, ``version`` an int,
``experiment=None``, OmegaConf lists, two fits with one logger, fsspec checkpoints, and the
MLflow child run ended when ``fit()`` returns."""

from __future__ import annotations

import atexit
import pickle
import threading
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import OmegaConf

from lightning_expman import RunStatus
from lightning_expman.db import models as m
from lightning_expman.lightning import ExpmanLogger
from tests.test_lightning_logger import fit, make_logger, query, results_metrics
from tests.tiny import TinyClassifier, TinyDataModule


@pytest.fixture
def writer_threads():
    """A function listing the live ``expman-db-*`` threads started since the test began."""
    before = set(threading.enumerate())

    def alive() -> list[threading.Thread]:
        return [
            t
            for t in threading.enumerate()
            if t.name.startswith("expman-db") and t.is_alive() and t not in before
        ]

    return alive


def tree(path: Path) -> set[str]:
    return {p.relative_to(path).as_posix() for p in path.rglob("*")}


# --------------------------------------------------------------------------- Lightning's test_all


class CustomModel(TinyClassifier):
    """test_all's ``CustomModel``: a step value, epoch-end values logged with log_dict, a test value."""

    def training_step(self, batch, batch_idx):
        loss, _ = self._step(batch)
        self.log("train_some_val", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        pass

    def on_validation_epoch_end(self):
        self.log_dict({"early_stop_on": torch.tensor(1.0), "val_loss": torch.tensor(0.5)})

    def test_step(self, batch, batch_idx):
        pass

    def on_test_epoch_end(self):
        self.log("test_loss", torch.tensor(2.0))


class StoreHistoryLogger(ExpmanLogger):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.history: list[tuple[int | None, dict]] = []

    def log_metrics(self, metrics, step=None):
        super().log_metrics(metrics, step)
        self.history.append((step, dict(metrics)))


def test_fit_then_test_as_lightnings_suite_checks_every_logger(tmp_path, writer_threads):
    logger = StoreHistoryLogger(
        "digits", "mlp", db=f"sqlite:///{tmp_path / 'e.db'}", save_dir=tmp_path / "runs"
    )
    trainer = L.Trainer(
        max_epochs=1,
        logger=logger,
        limit_train_batches=1,
        limit_val_batches=1,
        log_every_n_steps=1,
        default_root_dir=tmp_path,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(CustomModel(), datamodule=TinyDataModule())
    # Nothing of ours runs between fit() and test(): the writer thread was joined at finalize.
    assert writer_threads() == []
    trainer.test(CustomModel(), datamodule=TinyDataModule())
    assert [(s, sorted(v)) for s, v in logger.history] == [
        (0, ["epoch", "train_some_val"]),
        (0, ["early_stop_on", "epoch", "val_loss"]),
        (1, ["epoch", "test_loss"]),
    ]
    assert writer_threads() == []  # ... nor after the last stage
    assert logger.status is RunStatus.COMPLETED
    with query(logger._db_url):
        assert m.TrialRun.select().count() == 1  # test() after fit: the same run
    assert results_metrics(logger.run_id) == {"test_loss": 2.0}
    logger.close()
    assert writer_threads() == []


def test_logger_and_trainer_pickle_after_use_and_log_again(tmp_path, writer_threads):
    logger = make_logger(tmp_path)
    _ = logger.experiment
    logger.log_metrics({"a": 1.0})
    logger.save()
    pickle.dumps(logger)
    trainer = L.Trainer(max_epochs=1, logger=logger, enable_progress_bar=False)
    trainer2 = pickle.loads(pickle.dumps(trainer))
    trainer2.logger.log_metrics({"acc": 1.0})
    assert trainer2.logger.name == logger.name and trainer2.logger.save_dir == logger.save_dir
    trainer2.logger.close()
    logger.close()
    assert writer_threads() == []


def test_atexit_register_is_called_with_the_callable_only(tmp_path, writer_threads, monkeypatch):
    # Test suites (Lightning's among them) replace atexit.register by a one-argument function.
    registered = []

    def register(func):
        registered.append(func)
        return func

    monkeypatch.setattr(atexit, "register", register)
    logger = make_logger(tmp_path)
    logger.log_metrics({"loss": 1.0}, step=0)  # a run left open, as if the process were leaving
    assert len(registered) == 1
    monkeypatch.undo()
    registered[0]()  # what the interpreter does at exit
    assert logger.status is RunStatus.ABORTED  # it never finished
    assert writer_threads() == []


def test_close_without_a_trainer_completes_the_run(tmp_path):
    logger = make_logger(tmp_path)
    logger.log_metrics({"loss": 1.0}, step=0)
    logger.close()
    assert logger.status is RunStatus.COMPLETED
    with query(logger._db_url):
        assert m.TrialRun.get_by_id(logger.run_id).status == "COMPLETED"


# --------------------------------------------------------------------------- names, versions, paths


def test_version_is_an_int_like_csvlogger_and_the_next_logger_gets_the_next(tmp_path):
    first = make_logger(tmp_path)
    trainer = fit(first, max_epochs=1)
    assert first.version == 0 and Path(first.log_dir).name == "version_0"
    from lightning.pytorch.callbacks.progress.progress_bar import get_standard_metrics

    assert get_standard_metrics(trainer)["v_num"] == 0  # not "on_0"
    second = make_logger(tmp_path)
    assert second.version == 1 and Path(second.log_dir).name == "version_1"
    first.close()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"experiment": "../escaped"},
        {"experiment": "/tmp/expman-absolute-escape"},
        {"experiment": "ok", "version": "../../escaped"},
        {"experiment": "ok", "version": "/tmp/expman-absolute-escape"},
    ],
    ids=["experiment-dotdot", "experiment-absolute", "version-dotdot", "version-absolute"],
)
def test_names_never_lead_outside_save_dir(tmp_path, kwargs):
    save_dir = tmp_path / "inside" / "runs"
    logger = ExpmanLogger(**kwargs, db=f"sqlite:///{tmp_path / 'inside' / 'e.db'}", save_dir=save_dir)
    trainer = fit(logger, max_epochs=1, callbacks=[ModelCheckpoint()])
    logger.close()
    assert tree(tmp_path) - {"inside"} == {p for p in tree(tmp_path) if p.startswith("inside/")}
    assert not Path("/tmp/expman-absolute-escape").exists()
    root = save_dir.resolve()
    for path in (logger.log_dir, logger.root_dir, trainer.checkpoint_callback.dirpath):
        assert Path(path).resolve().is_relative_to(root), path
    with query(logger._db_url):  # the EXPERIMENT keeps the name the user gave
        assert [e.title for e in m.Experiment.select()] == [kwargs["experiment"]]


def test_experiment_none_makes_no_folder_named_none(tmp_path):
    logger = ExpmanLogger(None, db=f"sqlite:///{tmp_path / 'e.db'}", save_dir=tmp_path / "runs")
    fit(logger, max_epochs=1)
    logger.close()
    assert "None" not in {p.name for p in tmp_path.rglob("*")}
    assert Path(logger.log_dir) == tmp_path / "runs" / "version_0"  # like CSVLogger(name=None)
    with query(logger._db_url):
        assert [e.title for e in m.Experiment.select()] == ["default"]


# --------------------------------------------------------------------------- what a fit records


class ListHparamsModel(TinyClassifier):
    def __init__(self, cfg=None) -> None:
        super().__init__()
        self.save_hyperparameters()


def test_omegaconf_list_hparams_are_stored_as_lists(tmp_path):
    logger = make_logger(tmp_path)
    cfg = OmegaConf.create({"layers": [1, 2], "opt": {"betas": [0.9, 0.99]}})
    fit(logger, ListHparamsModel(cfg), max_epochs=1)
    logger.close()
    with query(logger._db_url):
        params = {p.key: p.value for p in m.RunParam.select().where(m.RunParam.trial_run == logger.run_id)}
    assert params["cfg.layers"] == [1, 2] and params["cfg.opt.betas"] == [0.9, 0.99]


def test_two_fits_with_one_logger_keep_each_runs_model_summary(tmp_path):
    logger = make_logger(tmp_path)
    fit(logger, TinyClassifier(hidden=3), max_epochs=1)
    first = logger.run_id
    fit(logger, TinyClassifier(hidden=5), max_epochs=1)
    second = logger.run_id
    logger.close()
    with query(logger._db_url) as db:
        summaries = {
            run: [a.location for a in db.get_trial_run_artifacts(run) if a.type == "model_summary"]
            for run in (first, second)
        }
    assert len(summaries[first]) == 1 and len(summaries[second]) == 1
    assert summaries[first] != summaries[second]
    # 8*3+3 + 3*2+2 = 35 parameters, 8*5+5 + 5*2+2 = 57: each file still describes its own run.
    assert "35 " in Path(summaries[first][0]).read_text()
    assert "57 " in Path(summaries[second][0]).read_text()


def test_checkpoints_on_fsspec_paths_are_recorded(tmp_path):
    import fsspec

    logger = make_logger(tmp_path)
    ckpt = ModelCheckpoint(dirpath="memory://expman-test-ckpts", save_top_k=-1, every_n_epochs=1)
    fit(logger, max_epochs=2, callbacks=[ckpt])
    logger.close()
    with query(logger._db_url) as db:
        locations = {a.location for a in db.get_trial_run_artifacts(logger.run_id) if a.type == "checkpoint"}
    memory = fsspec.filesystem("memory")
    assert len(locations) == 2 and all(loc.startswith("memory://") for loc in locations)
    assert all(memory.isfile(loc) for loc in locations)
    assert len(locations) == 2


def test_mlflow_child_run_is_finished_when_fit_returns(tmp_path):
    mlflow_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    logger = make_logger(tmp_path, trackers=[{"type": "mlflow", "tracking_uri": mlflow_uri}])
    trainer = fit(logger, max_epochs=1)
    tracker = next(t for t in logger.manager.trackers if type(t).__name__ == "MLflowTracker")
    child = tracker.run_id
    assert tracker.client.get_run(child).info.status == "FINISHED"  # before close / exit
    trainer.test(TinyClassifier(), datamodule=TinyDataModule())
    logger.close()
    run = tracker.client.get_run(child)
    assert run.info.status == "FINISHED" and "test_loss" in run.data.metrics
