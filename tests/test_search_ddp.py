"""Pruning under DDP (2 CPU processes, gloo): rank zero decides, every rank stops at the same
epoch, the run ends PRUNED with its epochs, Optuna holds one intermediate value per epoch."""

from __future__ import annotations

from pathlib import Path

import pytest

from lightning_expman.db import models as m
from tests.ddp_support import run_ddp_script
from tests.test_lightning_logger import query

optuna = pytest.importorskip("optuna")

SCRIPT = Path(__file__).parent / "scripts" / "ddp_prune_fit.py"


@pytest.mark.slow
def test_ddp_ranks_stop_together_and_the_run_ends_pruned(tmp_path: Path) -> None:
    from lightning_expman.search.planner import optuna_url

    url = f"sqlite:///{tmp_path / 'expman.db'}"
    proc = run_ddp_script(SCRIPT, url, tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "rank=0 epochs=2 pruned_epoch=1 status=PRUNED" in proc.stdout, proc.stdout
    assert "rank=1 epochs=2 pruned_epoch=1" in proc.stdout, proc.stdout
    with query(url):
        runs = list(m.TrialRun.select())
        assert [r.status for r in runs] == ["PRUNED"]
        assert [e.idx for e in m.Epoch.select().order_by(m.Epoch.idx)] == [0, 1]  # its epochs kept
    (trial,) = optuna.load_study(study_name="ddp/s", storage=optuna_url(url)).trials
    assert sorted(trial.intermediate_values) == [0, 1]  # reported by rank zero only, per epoch
