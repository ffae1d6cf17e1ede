"""DDP with 2 CPU processes (gloo): one trial run, no duplicated rows, only rank zero writes."""

from __future__ import annotations

from pathlib import Path

import pytest

from lightning_expman.db import models as m
from tests.ddp_support import run_ddp_script
from tests.test_lightning_logger import query

SCRIPT = Path(__file__).parent / "scripts" / "ddp_fit.py"


@pytest.mark.slow
def test_ddp_two_cpu_processes_record_one_run_without_duplicates(tmp_path):
    url = f"sqlite:///{tmp_path / 'expman.db'}"
    proc = run_ddp_script(SCRIPT, url, tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "rank=0 run_id=1 status=COMPLETED" in proc.stdout
    with query(url) as db:
        assert m.Experiment.select().count() == 1
        assert m.Trial.select().count() == 1
        runs = list(m.TrialRun.select())
        assert [(r.id, r.status) for r in runs] == [(1, "COMPLETED")]
        assert [e.idx for e in m.Epoch.select().order_by(m.Epoch.idx)] == [0, 1]
        steps = list(m.StepMetric.select(m.StepMetric.name, m.StepMetric.step).tuples())
        assert steps and len(steps) == len(set(steps)), "duplicated step rows"
        # 64 samples / 16 per batch / 2 ranks = 2 batches per epoch on each rank, 2 epochs.
        assert sorted(s for n, s in steps if n == "train_loss_step") == [0, 1, 2, 3]
        for epoch in (0, 1):
            names = [x.type for x in db.get_epoch_metrics(epoch, 1)]
            assert sorted(names) == ["train_loss_epoch", "val_acc", "val_loss"]
        results = [x.type for x in db.get_trial_run_metrics(1) if x.type.startswith("test_")]
        assert sorted(results) == ["test_acc", "test_loss"]
        params = list(m.RunParam.select(m.RunParam.key).tuples())
        assert len(params) == len(set(params))
        ckpts = [a.location for a in m.Artifact.select().where(m.Artifact.type == "checkpoint")]
        assert len(set(ckpts)) == 2  # one per epoch, saved once (by rank zero)
