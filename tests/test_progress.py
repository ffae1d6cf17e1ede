"""Live progress of ``expman run``: the terminal display under a real pty, plain lines without a
TTY, ``--json`` and ``--quiet``, and the tracker that turns level events into epoch events."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lightning_expman import Level
from lightning_expman.progress import EpochProgress, ProgressTracker
from lightning_expman.tracking import TrackerManager, TrackScope
from tests.experiment_support import write_config

REPO = Path(__file__).resolve().parents[1]
EXPMAN = Path(sys.executable).with_name("expman")
ENV = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "150"}
TINY = {
    "seed": 42,
    "model": {"class_path": "tests.tiny.TinyClassifier", "init_args": {"hidden": 4}},
    "data": {"class_path": "tests.tiny.TinyDataModule", "init_args": {"n": 32, "batch_size": 16}},
    "trainer": {"max_epochs": 3, "log_every_n_steps": 1},
}
TRIALS = [{"name": "t", "id": 1, "repeat": 2}]


def test_the_tracker_reports_each_epoch_with_its_metrics_and_speed():
    events: list[EpochProgress] = []
    tracker = ProgressTracker(events.append)
    manager = TrackerManager([tracker])
    tracker.index = 7
    with TrackScope(manager, Level.EXPERIMENT, name="p"), TrackScope(manager, Level.TRIAL_RUN):
        for epoch in range(2):
            with TrackScope(manager, Level.EPOCH, epoch_idx=epoch):
                for step in range(4):
                    manager.track_dict({"train_loss": 1.0}, step=epoch * 4 + step, level=Level.BATCH)
                manager.track_dict({"val_loss": 0.5 - epoch / 10}, level=Level.EPOCH)
    assert [(e.index, e.epoch, e.metrics) for e in events] == [
        (7, 0, {"val_loss": 0.5}),
        (7, 1, {"val_loss": 0.4}),
    ]
    assert all(e.steps_per_s and e.steps_per_s > 0 for e in events)


def _pty_run(args: list[str], cwd: Path, timeout: float = 300) -> str:
    """Run ``expman`` with stdout/stderr on a pseudo-terminal; the bytes it drew, decoded."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen([str(EXPMAN), *args], cwd=cwd, env=ENV, stdout=follower, stderr=follower)
    os.close(follower)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.5)
        if ready:
            try:
                data = os.read(leader, 65536)
            except OSError:  # the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    proc.wait(timeout=30)
    os.close(leader)
    assert proc.returncode == 0, b"".join(chunks).decode(errors="replace")
    return b"".join(chunks).decode(errors="replace")


@pytest.mark.slow
def test_a_terminal_gets_the_grid_bar_and_per_run_epochs(tmp_path):
    cfg = write_config(tmp_path, TRIALS, settings=TINY)
    screen = _pty_run(["run", str(cfg)], tmp_path)
    assert ("exp:" in screen and "run/s" in screen) or "s/run" in screen  # tqdm's grid bar
    assert "running" in screen
    assert "t run 1/2: epoch 2 val_acc=" in screen and "steps/s" in screen, screen  # a run's live line
    assert "[1/2] t run 1/2 seed 42 COMPLETED" in screen and "exp: 2 runs: 2 completed" in screen


@pytest.mark.slow
def test_without_a_terminal_json_and_quiet(tmp_path):
    cfg = write_config(tmp_path, TRIALS, settings=TINY)
    proc = subprocess.run(
        [str(EXPMAN), "run", str(cfg), "--json"], cwd=tmp_path, env=ENV, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [(r["index"], r["trial"], r["status"]) for r in records] == [
        (1, "t", "COMPLETED"),
        (2, "t", "COMPLETED"),
    ]
    assert "exp: 2 runs: 2 completed" in proc.stderr
    proc = subprocess.run(
        [str(EXPMAN), "run", str(cfg), "--quiet"], cwd=tmp_path, env=ENV, capture_output=True, text=True
    )
    assert proc.returncode == 0 and not [ln for ln in proc.stdout.splitlines() if ln.startswith("[")]
    assert "exp: 2 runs: 2 skipped" in proc.stdout
    proc = subprocess.run(
        [str(EXPMAN), "run", str(cfg), "--quiet", "--json"],
        cwd=tmp_path,
        env=ENV,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and "not allowed with argument" in proc.stderr
