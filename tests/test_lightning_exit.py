"""At process exit the logger ends a run still open and everything buffered reaches the database."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from lightning_expman.db import models as m
from tests.test_lightning_logger import query

SCRIPT = textwrap.dedent(
    """
    import sys
    from lightning_expman.lightning import ExpmanLogger

    logger = ExpmanLogger("exit", "t", db=sys.argv[1], save_dir=sys.argv[2], attach_hooks=False)
    for step in range(50):
        logger.log_metrics({"loss": 1.0 / (step + 1)}, step=step)   # buffered, never flushed here
    # no finalize, no close: the interpreter exits with the run still open
    """
)


@pytest.mark.slow
def test_exit_flushes_and_aborts_an_unfinished_run(tmp_path):
    url = f"sqlite:///{tmp_path / 'expman.db'}"
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, url, str(tmp_path / "runs")],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    with query(url):
        run = m.TrialRun.get()
        assert run.status == "ABORTED" and run.end_time is not None
        assert run.error == "the run ended before its fit finished"
        assert m.StepMetric.select().where(m.StepMetric.name == "loss").count() == 50
