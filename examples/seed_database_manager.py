"""The seed's "Database Manager API" example, as written, on lightning_expman.db.

CIFAR-10 / ResNet-18: an experiment, a trial and a trial run; a per-label accuracy metric on
epoch 1; model and plot artifacts; the seed's queries; the status update. Then it prints what
the database holds.

Usage::

    python examples/seed_database_manager.py                       # SQLite file under ./outputs/
    python examples/seed_database_manager.py sqlite:///my.db
    python examples/seed_database_manager.py mysql://root@127.0.0.1:3306/experiment_db
    python examples/seed_database_manager.py postgresql://postgres@127.0.0.1/experiment_db
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from lightning_expman.db import DatabaseManager

DEFAULT_SQLITE = Path("outputs") / "seed_database_manager" / "experiments.db"


def main(url: str | None = None) -> dict[str, Any]:
    """Run the seed's example against ``url`` (default: a SQLite file) and return what it read back."""
    if url is None:
        # Initialize with SQLite for development (the seed's form)
        DEFAULT_SQLITE.parent.mkdir(parents=True, exist_ok=True)
        db = DatabaseManager(database_path=str(DEFAULT_SQLITE), use_sqlite=True)
    else:
        # Or MySQL/PostgreSQL for production, by URL. The seed's keyword form works too:
        # DatabaseManager(database_path="experiment_db", host="localhost", user="ml_user", password="...")
        db = DatabaseManager(url)

    # Create experiment hierarchy
    experiment = db.create_experiment(
        "CIFAR-10 Classification", "Comparing different architectures on CIFAR-10"
    )
    trial = db.create_trial(experiment.id, "ResNet-18")
    trial_run = db.create_trial_run(trial.id, status="running")

    # Record metrics at different levels
    metric = db.record_metric(
        total_val=0.87, metric_type="accuracy", per_label_val={"airplane": 0.85, "car": 0.89, "bird": 0.82}
    )

    # Create epoch and link metric
    db.create_epoch(epoch_idx=1, trial_run_id=trial_run.id)
    db.add_epoch_metric(epoch_idx=1, trial_run_id=trial_run.id, metric_id=metric.id)

    # Record and link artifacts
    model_artifact = db.record_artifact("model", "/path/to/model.pth")
    plot_artifact = db.record_artifact("plot", "/path/to/loss_curve.png")

    db.link_experiment_artifact(experiment.id, model_artifact.id)
    db.link_epoch_artifact(1, trial_run.id, plot_artifact.id)

    # Query data at different levels
    experiment_metrics = db.get_experiment_metrics(experiment.id)
    trial_artifacts = db.get_trial_artifacts(trial.id)
    epoch_artifacts = db.get_epoch_artifacts(1, trial_run.id)

    # Update trial status
    trial_run = db.update_trial_run_status(trial_run.id, "completed")

    # What was stored
    run = db.get_trial_run_metrics(trial_run.id)
    summary = {
        "database": db.url,
        "experiment": (experiment.id, experiment.title),
        "trial": (trial.id, trial.name),
        "trial_run": (trial_run.id, trial_run.status),
        "experiment_metrics": [(m.type, m.total_val, m.per_label_val) for m in experiment_metrics],
        "trial_run_metrics": [m.type for m in run],
        "experiment_artifacts": [(a.type, a.location) for a in db.get_experiment_artifacts(experiment.id)],
        "trial_artifacts": [(a.type, a.location) for a in trial_artifacts],
        "epoch_artifacts": [(a.type, a.location) for a in epoch_artifacts],
    }
    for key, value in summary.items():
        print(f"{key:>21}: {value}")
    db.close()
    return summary


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
