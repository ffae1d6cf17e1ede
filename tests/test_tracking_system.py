"""The ``system`` tracker: CPU and memory samples land in the run's step series through the db tracker."""

from __future__ import annotations

import threading
import time

import pytest

from lightning_expman import Level
from lightning_expman.db import DatabaseManager
from lightning_expman.db import models as m
from lightning_expman.errors import ConfigError
from lightning_expman.tracking import TrackerManager, TrackScope, build_tracker


def test_samples_become_step_series_of_the_open_run(sqlite_url):
    manager = TrackerManager(
        [
            build_tracker({"type": "db", "url": sqlite_url}),
            build_tracker({"type": "system", "interval": 0.05}),
        ]
    )
    with TrackScope(manager, Level.EXPERIMENT, name="sys"), TrackScope(manager, Level.TRIAL, name="t"):  # noqa: SIM117
        with TrackScope(manager, Level.TRIAL_RUN, repeat_idx=1, seed=1):
            sum(i * i for i in range(3_000_000))  # some CPU work to measure
            time.sleep(0.5)
    manager.close()
    assert not [t for t in threading.enumerate() if t.name == "expman-system"]  # ended with the run
    db = DatabaseManager(sqlite_url)
    try:
        S = m.StepMetric
        rows = list(S.select(S.name, S.step, S.value).order_by(S.name, S.step).tuples().execute(db.database))
    finally:
        db.close()
    names = {n for n, _, _ in rows}
    assert {"system/cpu_percent", "system/rss_mb"} <= names
    rss = [v for n, _, v in rows if n == "system/rss_mb"]
    steps = [s for n, s, _ in rows if n == "system/rss_mb"]
    assert steps == list(range(len(steps))) and len(steps) >= 3
    assert all(v > 10 for v in rss)  # MB: a Python process holds more than that


@pytest.mark.parametrize("bad", [0, -1, "often", True])
def test_a_bad_interval_is_refused(bad):
    with pytest.raises(ConfigError, match="interval must be a number of seconds > 0"):
        build_tracker({"type": "system", "interval": bad})


def test_the_run_context_names_gpus_only_where_there_are_some():
    import torch

    from lightning_expman.lightning.context import accelerators, collect_context

    context = collect_context(seed=1)
    if torch.cuda.is_available():  # a GPU machine: CUDA, cuDNN and one name per visible device
        assert context["gpus"] == [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        assert context["cuda"] == torch.version.cuda
    else:
        assert accelerators() == {} and not {"gpus", "cuda", "cudnn"} & set(context)
