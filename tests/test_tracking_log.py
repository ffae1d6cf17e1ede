"""LogTracker: files per level under each level's workdir, console mirroring, closed handles,
one handler and one format shared with the workspace's loggers."""

from __future__ import annotations

import logging
import re

import pytest

from lightning_expman import Level
from lightning_expman.masking import remember_secrets
from lightning_expman.tracking import TrackerManager, TrackScope
from lightning_expman.tracking.log import LogTracker
from lightning_expman.workspace import Environment

LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (INFO|ERROR) \[(?P<name>[^]]+)\] (?P<text>.*)$")


def test_workdirs_decide_where_files_go_and_verbose_mirrors_to_the_console(tmp_path, capsys):
    tracker = LogTracker(workspace=tmp_path / "ws", verbose=True)
    manager = TrackerManager([tracker])
    exp_dir, trial_dir, run_dir = (
        tmp_path / "exp",
        tmp_path / "exp/trials/small",
        tmp_path / "exp/trials/small/run_1",
    )
    with TrackScope(manager, Level.EXPERIMENT, name="digits", workdir=exp_dir):  # noqa: SIM117
        with TrackScope(manager, Level.TRIAL, name="small", workdir=trial_dir):
            with (
                pytest.raises(RuntimeError),
                TrackScope(manager, Level.TRIAL_RUN, repeat_idx=1, seed=42, workdir=run_dir),
            ):
                with TrackScope(manager, Level.PIPELINE, stage="fit"):  # noqa: SIM117
                    with TrackScope(manager, Level.EPOCH, epoch_idx=3):
                        manager.track_dict({"loss": 0.5}, step=30, level=Level.BATCH)
                        manager.track_dict({"val_loss": 0.23449, "val_acc": 0.91}, level=Level.EPOCH)
                        assert tracker.path(Level.EPOCH) == run_dir / "logs" / "run.log"
                raise RuntimeError("out of memory\nsecond line")
    run_log = [LINE.match(line) for line in (run_dir / "logs" / "run.log").read_text().splitlines()]
    assert all(m and m["name"] == "small/run_1" for m in run_log)
    body = [m["text"] for m in run_log]
    assert body == [
        "TRIAL_RUN start repeat=1 seed=42",
        "PIPELINE start stage=fit",
        "step 30 (epoch 3): loss=0.5",
        "epoch 3: val_loss=0.2345 val_acc=0.91",
        "PIPELINE end status=COMPLETED",
        "TRIAL_RUN end status=FAILED error=RuntimeError: out of memory second line",
    ]
    assert "TRIAL start name=small" in (trial_dir / "logs" / "trial.log").read_text()
    assert "EXPERIMENT end status=COMPLETED" in (exp_dir / "logs" / "experiment.log").read_text()
    assert not (tmp_path / "ws").exists()  # every level had a workdir
    assert tracker._loggers == {}  # every file closed with its level
    err = capsys.readouterr().err
    assert "epoch 3: val_loss=0.2345" in err and "step 30" not in err  # step lines stay in the file


def test_without_workdir_files_go_to_the_workspace_and_append(tmp_path):
    for seed in (1, 2):
        tracker = LogTracker(workspace=tmp_path)
        manager = TrackerManager([tracker])
        with TrackScope(manager, Level.TRIAL_RUN, seed=seed):
            manager.track("test_acc", 0.5, level=Level.TRIAL_RUN)
        manager.close()
    text = (tmp_path / "logs" / "run.log").read_text()
    assert text.count("TRIAL_RUN start seed=") == 2 and "results: test_acc=0.5" in text


def test_a_file_written_by_the_workspace_tracker_and_lightning_is_in_order_one_format_masked(tmp_path):
    """The runner's case: the run's Environment logger, the log tracker (given the run's workdir)
    and Lightning's lines (copied through the run's handlers) all write ``run.log``."""
    secret = "Sekret-4711-canary"
    remember_secrets({"password": secret})
    exp = Environment.from_config({"workspace": str(tmp_path)}).create_child("digits")
    trial = exp.create_child("small")
    run = trial.create_child("run_1")
    tracker = LogTracker(workspace=tmp_path / "unused")
    manager = TrackerManager([tracker])
    lightning = logging.getLogger("lightning.pytorch.test_tracking_log")
    lightning.setLevel(logging.INFO)
    for handler in run.logger.handlers:
        lightning.addHandler(handler)
    try:
        with (
            TrackScope(manager, Level.EXPERIMENT, name="digits", workdir=exp.workdir),
            TrackScope(manager, Level.TRIAL, name="small", workdir=trial.workdir),
            TrackScope(manager, Level.TRIAL_RUN, repeat_idx=1, seed=7, workdir=run.workdir),
        ):
            run.logger.info("settings saved")
            tracker.log_params({"innocent": secret, "lr": 0.1})
            lightning.info("GPU available: False, db mysql://me:%s@host/db", secret)
            with TrackScope(manager, Level.EPOCH, epoch_idx=0):
                manager.track_dict({"loss": 0.5}, step=3, level=Level.BATCH)
                run.logger.error("a warning quoting %s", secret)
    finally:
        for handler in run.logger.handlers:
            lightning.removeHandler(handler)
        for env in (run, trial, exp):
            env.close()
    lines = (run.log_dir / "run.log").read_text().splitlines()
    matches = [LINE.match(line) for line in lines]
    assert all(matches), lines  # one format
    assert [(m["name"], m["text"]) for m in matches] == [  # in the order written
        ("small/run_1", f"TRIAL_RUN 'run_1' in {run.workdir}"),
        ("small/run_1", "TRIAL_RUN start repeat=1 seed=7"),
        ("small/run_1", "settings saved"),
        ("small/run_1", "params: innocent=*** lr=0.1"),
        ("lightning.pytorch.test_tracking_log", "GPU available: False, db mysql://me:***@host/db"),
        ("small/run_1", "step 3 (epoch 0): loss=0.5"),
        ("small/run_1", "a warning quoting ***"),
        ("small/run_1", "epoch 0"),
        ("small/run_1", "TRIAL_RUN end status=COMPLETED"),
    ]
    trial_log = [LINE.match(line)["text"] for line in (trial.log_dir / "trial.log").read_text().splitlines()]
    assert trial_log == [
        f"TRIAL 'small' in {trial.workdir}",
        "TRIAL start name=small",
        "TRIAL end status=COMPLETED",
    ]
    assert secret not in "".join(p.read_text() for p in tmp_path.rglob("*.log"))
