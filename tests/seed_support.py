"""Helpers for the seed-example tests (no tests here): the seeds' YAML files, reading the database back.

The seed documents are ``../shared/seeds/000_*.txt`` (000), ``001_*.txt`` (001) and ``002_*.txt``
(002). Their YAML is copied here verbatim; the examples themselves are copied into the test
modules with only their ``experiment_manager`` imports changed (see
docs/migrating-from-experiment-manager.md). Names the seeds leave to the reader (``your_module``,
``model``, ``train_step``...) are supplied beside the examples, never by editing them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# 000 and 001 "Quick Start", step 1 (identical in both seeds).
SEED_ENV_YAML = """\
workspace: "outputs/my_experiment"
verbose: true
debug: false
trackers:
  - type: "mlflow"
    tracking_uri: "sqlite:///mlruns.db"
    experiment_name: "my_experiment"
"""

SEED_EXPERIMENT_YAML = """\
name: my_experiment
id: 1
desc: "Training a model with different hyperparameters"
settings:
  model_type: mlp
  batch_size: 32
  epochs: 10
"""

SEED_BASE_YAML = """\
settings:
  model_type: mlp
  batch_size: 32
  optimizer: adam
  log_level: INFO
"""

SEED_TRIALS_YAML = """\
- name: small_network
  id: 1
  repeat: 3
  settings:
    hidden_layers: [64, 32]
    learning_rate: 0.001

- name: large_network
  id: 2
  repeat: 3
  settings:
    hidden_layers: [256, 128, 64]
    learning_rate: 0.0001
"""

# 002 "Quick Start", step 1: no env.yaml, and experiment.yaml's desc unquoted.
SEED_002_EXPERIMENT_YAML = """\
name: my_experiment
id: 1
desc: Training a model with different hyperparameters
settings:
  model_type: mlp
  batch_size: 32
  epochs: 10
"""

SEED_002_BASE_YAML = """\
settings:
  model_type: mlp
  batch_size: 32
  log_level: INFO
"""


def write_seed_configs(
    folder: str | Path, *, env: bool = True, seed: str = "000", pipeline: str | None = None
) -> Path:
    """Write the seed's quick-start files into ``folder``.

    ``pipeline`` adds one line, ``pipeline: <name>``, to experiment.yaml: the seeds' factories test
    ``name == "your_pipeline_name"`` but their YAML never names a pipeline (the migration guide
    lists this).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    experiment = SEED_002_EXPERIMENT_YAML if seed == "002" else SEED_EXPERIMENT_YAML
    if pipeline is not None:
        experiment += f"pipeline: {pipeline}\n"
    files = {
        "experiment.yaml": experiment,
        "base.yaml": SEED_002_BASE_YAML if seed == "002" else SEED_BASE_YAML,
        "trials.yaml": SEED_TRIALS_YAML,
    }
    if env:
        files["env.yaml"] = SEED_ENV_YAML
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def read_db(url_or_path: str | Path) -> Any:
    """A DatabaseManager on a URL or a SQLite file path."""
    from lightning_expman.db import DatabaseManager

    text = str(url_or_path)
    return DatabaseManager(text if "://" in text else f"sqlite:///{text}")


def runs(db: Any, experiment: str) -> list[dict[str, Any]]:
    """Every run of ``experiment`` in ``db`` (a DatabaseManager on ``<folder>/expman.db``), as
    :func:`tests.experiment_support.runs_of` gives them, plus ``results`` ({name: value})."""
    from lightning_expman.db import models as m
    from tests.experiment_support import runs_of

    rows = runs_of(Path(db.database.database).parent, experiment)
    with db.database.bind_ctx(m.ALL_MODELS):
        for row in rows:
            row["results"] = {
                link.metric.type: link.metric.total_val
                for link in m.ResultsMetric.select(m.ResultsMetric, m.MetricRecord)
                .join(m.MetricRecord)
                .where(m.ResultsMetric.results == row["id"])
            }
    return rows


def epoch_values(db: Any, run_id: int) -> dict[int, dict[str, float]]:
    """epoch idx -> {metric name: value} of one run."""
    from lightning_expman.db import models as m

    epochs: dict[int, dict[str, float]] = {}
    with db.database.bind_ctx(m.ALL_MODELS):
        for link in (
            m.EpochMetric.select(m.EpochMetric, m.MetricRecord)
            .join(m.MetricRecord)
            .where(m.EpochMetric.trial_run == run_id)
        ):
            epochs.setdefault(link.epoch_idx, {})[link.metric.type] = link.metric.total_val
    return epochs


def snapshot_registries() -> Any:
    """Copies of every registry the seed examples register into, and a function restoring them
    (registrations must not leak into other tests' "valid types" messages)."""
    import sys

    from lightning_expman import pipeline, serializable
    from lightning_expman.tracking import registry

    registries = [registry._REGISTRY, pipeline._REGISTRY, serializable._COMPONENTS]
    callbacks = sys.modules.get("lightning_expman.lightning.callbacks")
    if callbacks is not None:
        registries.append(callbacks.CALLBACKS)
    saved = [dict(r) for r in registries]

    def restore() -> None:
        for reg, copy in zip(registries, saved):
            reg.clear()
            reg.update(copy)

    return restore
