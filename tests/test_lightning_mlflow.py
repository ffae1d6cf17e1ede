"""ExpmanLogger with an extra MLflow tracker: nesting, metrics and statuses read back with MlflowClient."""

from __future__ import annotations

import pytest

from lightning_expman import RunStatus
from lightning_expman.db import models as m
from tests.test_lightning_logger import fit, make_logger, query
from tests.tiny import ScriptedModel, TinyClassifier, TinyDataModule

mlflow = pytest.importorskip("mlflow")


@pytest.mark.slow
def test_mlflow_tracker_nests_runs_and_maps_statuses(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    trackers = [{"type": "mlflow", "tracking_uri": uri}]

    ok = make_logger(tmp_path, trackers=trackers)
    trainer = fit(ok, ScriptedModel(val_losses=(0.9, 0.8)), max_epochs=2)
    trainer.test(ScriptedModel(), datamodule=TinyDataModule())
    ok.close()

    failing = make_logger(tmp_path, trackers=trackers)
    with pytest.raises(RuntimeError, match="planted"):
        fit(failing, TinyClassifier(fail_at_step=2))
    failing.close()
    assert (ok.status, failing.status) == (RunStatus.COMPLETED, RunStatus.FAILED)

    client = mlflow.MlflowClient(uri)
    experiment = client.get_experiment_by_name("digits")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and parents[0].data.tags["expman.trial"] == "mlp"
    assert len(children) == 2
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parents[0].info.run_id}
    by_status = {c.info.status: c for c in children}
    assert set(by_status) == {"FINISHED", "FAILED"}
    assert by_status["FAILED"].data.tags["expman.error"] == "RuntimeError: planted failure at step 2"

    done = by_status["FINISHED"]
    history = client.get_metric_history(done.info.run_id, "val_loss")
    assert [(h.step, round(h.value, 3)) for h in history] == [(0, 0.9), (1, 0.8)]
    assert len(client.get_metric_history(done.info.run_id, "train_loss_step")) == 6
    assert "test_loss" in done.data.metrics
    assert done.data.params["val_losses"] == "[0.9, 0.8]"
    # The same run in the database.
    with query(ok._db_url):
        assert m.TrialRun.get_by_id(ok.run_id).status == "COMPLETED"
