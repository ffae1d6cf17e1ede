"""TensorBoardTracker: one version folder per run, read back with EventAccumulator; missing extra."""

from __future__ import annotations

import sys

import pytest

from lightning_expman import Level
from lightning_expman.tracking import TrackerManager, TrackScope
from lightning_expman.tracking.tensorboard import TensorBoardTracker

pytest.importorskip("tensorboard")


def test_each_run_gets_its_own_version_folder(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tracker = TensorBoardTracker(tmp_path / "tb")
    manager = TrackerManager([tracker])
    dirs = []
    with TrackScope(manager, Level.EXPERIMENT, name="my exp"), TrackScope(manager, Level.TRIAL, name="a/b"):
        for repeat in (1, 2):
            with TrackScope(manager, Level.TRIAL_RUN, repeat_idx=repeat):
                manager.track_dict({"loss": float(repeat), "nan": float("nan")}, step=5, level=Level.BATCH)
                dirs.append(tracker.run_dir)
    assert dirs == [tmp_path / "tb/my_exp/a_b/version_0", tmp_path / "tb/my_exp/a_b/version_1"]
    acc = EventAccumulator(str(dirs[1]))
    acc.Reload()
    assert [(e.step, e.value) for e in acc.Scalars("loss")] == [(5, 2.0)]
    assert "nan" not in acc.Tags()["scalars"]  # NaN (None after normalisation) is skipped


def test_missing_tensorboard_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # as if not installed
    tracker = TensorBoardTracker(workspace=tmp_path)
    assert tracker.log_dir == tmp_path / "tensorboard"
    with pytest.raises(ImportError, match=r"pip install lightning-expman\[tensorboard\]"):
        tracker.on_create(Level.TRIAL_RUN)
