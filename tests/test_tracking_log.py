"""LogTracker: files per level under each level's workdir, console mirroring, closed handles."""

from __future__ import annotations

import re

import pytest

from lightning_expman import Level
from lightning_expman.tracking import TrackerManager, TrackScope
from lightning_expman.tracking.log import LogTracker

LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \| ")


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
    run_log = (run_dir / "logs" / "run.log").read_text().splitlines()
    assert all(LINE.match(line) for line in run_log)
    body = [line.split(" | ", 1)[1] for line in run_log]
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
    assert tracker._files == {}  # every file closed with its level
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
