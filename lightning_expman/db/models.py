"""Peewee schema: the seed's 7 core and 7 junction tables, plus what real use needs.

One schema on SQLite, MySQL/MariaDB and PostgreSQL; how values are stored on all three (indexed
strings ``VARCHAR(255)``, JSON as text, naive UTC times, non-finite floats as NULL) is
:mod:`lightning_expman.db.columns`, whose names are importable from here too.

Models are bound to :data:`database_proxy`; :func:`lightning_expman.db.connect.open_database`
initialises it. Table names follow the seed (``experiment``, ``trial_run``, ``epoch_metric``...).
"""

from __future__ import annotations

import peewee as pw

from .columns import BaseModel, JSONText, database_proxy, finite_or_none, utcnow

__all__ = [
    "ALL_MODELS",
    "SCHEMA_VERSION",
    "Artifact",
    "ArtifactMetric",
    "BaseModel",
    "Claim",
    "Epoch",
    "EpochArtifact",
    "EpochMetric",
    "Experiment",
    "ExperimentArtifact",
    "ExperimentMetric",
    "JSONText",
    "MetricRecord",
    "Results",
    "ResultsArtifact",
    "ResultsMetric",
    "RunParam",
    "SchemaVersion",
    "StepMetric",
    "Trial",
    "TrialArtifact",
    "TrialMetric",
    "TrialRun",
    "TrialRunArtifact",
    "WriteMark",
    "database_proxy",
    "finite_or_none",
    "utcnow",
]

SCHEMA_VERSION = 3
"""Version of the schema this code writes; bumped with every migration in ``migrations.py``."""


# --------------------------------------------------------------------------- core tables


class Experiment(BaseModel):
    """EXPERIMENT: one named study (a config folder, or a drop-in logger's ``experiment=``)."""

    id = pw.AutoField()
    title = pw.CharField(max_length=255, index=True)
    desc = pw.TextField(default="")
    start_time = pw.DateTimeField(default=utcnow)
    update_time = pw.DateTimeField(default=utcnow)
    config = JSONText(null=True)  # resolved experiment-level config (passwords masked)
    config_hash = pw.CharField(max_length=64, null=True)  # resume refuses a changed config
    tags = JSONText(null=True)

    class Meta:
        table_name = "experiment"


class Trial(BaseModel):
    """TRIAL: one configuration of the grid."""

    id = pw.AutoField()
    experiment = pw.ForeignKeyField(Experiment, backref="trials", on_delete="CASCADE")
    name = pw.CharField(max_length=255)
    start_time = pw.DateTimeField(default=utcnow)
    update_time = pw.DateTimeField(default=utcnow)
    config = JSONText(null=True)  # the trial's merged settings
    tags = JSONText(null=True)

    class Meta:
        table_name = "trial"
        indexes = ((("experiment", "name"), False),)


class TrialRun(BaseModel):
    """TRIAL_RUN: one repeat of a trial, i.e. one ``Trainer.fit`` (plus its test)."""

    id = pw.AutoField()
    trial = pw.ForeignKeyField(Trial, backref="runs", on_delete="CASCADE")
    status = pw.CharField(max_length=16, index=True)
    start_time = pw.DateTimeField(default=utcnow)
    update_time = pw.DateTimeField(default=utcnow)
    end_time = pw.DateTimeField(null=True)
    heartbeat = pw.DateTimeField(null=True)  # the lease: refreshed on the database's clock while running
    repeat_idx = pw.IntegerField(null=True)  # 1..repeat
    seed = pw.BigIntegerField(null=True)
    host = pw.CharField(max_length=255, null=True)
    git_commit = pw.CharField(max_length=64, null=True)
    error = pw.TextField(null=True)  # exception text of a FAILED / ABORTED run
    stop_epoch = pw.IntegerField(null=True)  # epoch at which early stopping ended the run
    config = JSONText(null=True)  # resolved run config (passwords masked)
    context = JSONText(null=True)  # python / torch / lightning versions, platform...
    tags = JSONText(null=True)
    # The lease (see lightning_expman.coordination): who holds the run and for how long a silence
    # is tolerated before another process declares it LOST.
    owner = pw.CharField(max_length=32, null=True, index=True)  # random token of the lease holder
    lease_s = pw.FloatField(null=True)  # NULL: no lease holder (manual DatabaseManager use)
    pid = pw.IntegerField(null=True)
    proc_key = pw.CharField(max_length=128, null=True)  # boot id, pid namespace, pid, start time
    attempts = pw.IntegerField(null=True, default=1)  # fits that wrote into this row (continued: > 1)

    class Meta:
        table_name = "trial_run"
        indexes = ((("trial", "repeat_idx"), False),)


class Results(BaseModel):
    """RESULTS: the final outcome of a trial run (test metrics, best checkpoint)."""

    trial_run = pw.ForeignKeyField(TrialRun, primary_key=True, backref="results", on_delete="CASCADE")
    time = pw.DateTimeField(default=utcnow)

    class Meta:
        table_name = "results"


class Epoch(BaseModel):
    """EPOCH: one training epoch of a run, keyed by (idx, trial_run)."""

    idx = pw.IntegerField()
    trial_run = pw.ForeignKeyField(TrialRun, backref="epochs", on_delete="CASCADE")
    time = pw.DateTimeField(default=utcnow)

    class Meta:
        table_name = "epoch"
        primary_key = pw.CompositeKey("trial_run", "idx")


class MetricRecord(BaseModel):
    """METRIC: one value of a named metric, with optional per-label values (JSON object)."""

    id = pw.AutoField()
    type = pw.CharField(max_length=255, index=True)
    total_val = pw.DoubleField(null=True)
    per_label_val = JSONText(null=True)

    class Meta:
        table_name = "metric"


class Artifact(BaseModel):
    """ARTIFACT: a file or object produced by the experiment (checkpoint, plot, log, config)."""

    id = pw.AutoField()
    type = pw.CharField(max_length=64, index=True)
    location = pw.TextField()
    time = pw.DateTimeField(default=utcnow)

    class Meta:
        table_name = "artifact"


# --------------------------------------------------------------------------- junction tables


class ExperimentArtifact(BaseModel):
    experiment = pw.ForeignKeyField(Experiment, on_delete="CASCADE")
    artifact = pw.ForeignKeyField(Artifact, on_delete="CASCADE")

    class Meta:
        table_name = "experiment_artifact"
        primary_key = pw.CompositeKey("experiment", "artifact")


class TrialArtifact(BaseModel):
    trial = pw.ForeignKeyField(Trial, on_delete="CASCADE")
    artifact = pw.ForeignKeyField(Artifact, on_delete="CASCADE")

    class Meta:
        table_name = "trial_artifact"
        primary_key = pw.CompositeKey("trial", "artifact")


class TrialRunArtifact(BaseModel):
    trial_run = pw.ForeignKeyField(TrialRun, on_delete="CASCADE")
    artifact = pw.ForeignKeyField(Artifact, on_delete="CASCADE")

    class Meta:
        table_name = "trial_run_artifact"
        primary_key = pw.CompositeKey("trial_run", "artifact")


class ResultsMetric(BaseModel):
    results = pw.ForeignKeyField(Results, column_name="results_id", on_delete="CASCADE")
    metric = pw.ForeignKeyField(MetricRecord, column_name="metric_id", on_delete="CASCADE")

    class Meta:
        table_name = "results_metric"
        primary_key = pw.CompositeKey("results", "metric")


class ResultsArtifact(BaseModel):
    results = pw.ForeignKeyField(Results, column_name="results_id", on_delete="CASCADE")
    artifact = pw.ForeignKeyField(Artifact, on_delete="CASCADE")

    class Meta:
        table_name = "results_artifact"
        primary_key = pw.CompositeKey("results", "artifact")


class EpochMetric(BaseModel):
    """Links a metric to epoch (epoch_idx, trial_run); the epoch row must exist."""

    epoch_idx = pw.IntegerField()
    trial_run = pw.ForeignKeyField(TrialRun, on_delete="CASCADE")
    metric = pw.ForeignKeyField(MetricRecord, column_name="metric_id", on_delete="CASCADE")

    class Meta:
        table_name = "epoch_metric"
        primary_key = pw.CompositeKey("trial_run", "epoch_idx", "metric")


class EpochArtifact(BaseModel):
    epoch_idx = pw.IntegerField()
    trial_run = pw.ForeignKeyField(TrialRun, on_delete="CASCADE")
    artifact = pw.ForeignKeyField(Artifact, on_delete="CASCADE")

    class Meta:
        table_name = "epoch_artifact"
        primary_key = pw.CompositeKey("trial_run", "epoch_idx", "artifact")


# --------------------------------------------------------------------------- beyond the seed


class StepMetric(BaseModel):
    """Step-level (BATCH) series: one row per (run, step, name). Lean on purpose: no FK to METRIC.

    ``step`` is Lightning's ``global_step``; ``epoch`` the epoch it belongs to.
    """

    id = pw.BigAutoField()
    trial_run = pw.ForeignKeyField(TrialRun, on_delete="CASCADE", index=False)
    step = pw.IntegerField()
    epoch = pw.IntegerField(null=True)
    name = pw.CharField(max_length=255)
    value = pw.DoubleField(null=True)

    class Meta:
        table_name = "step_metric"
        indexes = ((("trial_run", "name", "step"), False),)


class RunParam(BaseModel):
    """Flattened hyperparameters of a run (``model.init_args.lr`` -> JSON value), for SQL filtering."""

    trial_run = pw.ForeignKeyField(TrialRun, backref="params", on_delete="CASCADE")
    key = pw.CharField(max_length=255)
    value = JSONText(null=True)

    class Meta:
        table_name = "run_param"
        primary_key = pw.CompositeKey("trial_run", "key")


class Claim(BaseModel):
    """One row per claimable unit, a (trial, repeat): who may run it is decided on this row.

    ``trial_run`` is the unit's current attempt; its status and lease say whether the unit is
    done, taken, or free to claim (see :mod:`lightning_expman.coordination`).
    """

    id = pw.AutoField()
    trial = pw.ForeignKeyField(Trial, backref="claims", on_delete="CASCADE")
    repeat_idx = pw.IntegerField()
    trial_run = pw.ForeignKeyField(TrialRun, null=True, on_delete="SET NULL")
    claimed_at = pw.DateTimeField(null=True)  # the database's clock

    class Meta:
        table_name = "claim"
        indexes = ((("trial", "repeat_idx"), True),)


class WriteMark(BaseModel):
    """The last batch a background writer committed: lets it tell, after a connection lost during
    COMMIT, whether that batch is stored (so it is written exactly once)."""

    writer = pw.CharField(max_length=32, primary_key=True)
    seq = pw.BigIntegerField()

    class Meta:
        table_name = "write_mark"


class SchemaVersion(BaseModel):
    """A single row (id=1) holding the schema version of this database."""

    id = pw.IntegerField(primary_key=True)
    version = pw.IntegerField()
    applied_at = pw.DateTimeField(default=utcnow)

    class Meta:
        table_name = "schema_version"


# --------------------------------------------------------------------------- schema v3: level metrics


class ExperimentMetric(BaseModel):
    """A metric tracked at EXPERIMENT level (the seed: "metric tracking at experiment, trial and run
    levels"); ``step`` is the caller's ``step=`` (NULL when none was given)."""

    experiment = pw.ForeignKeyField(Experiment, on_delete="CASCADE")
    metric = pw.ForeignKeyField(MetricRecord, column_name="metric_id", on_delete="CASCADE")
    step = pw.IntegerField(null=True)

    class Meta:
        table_name = "experiment_metric"
        primary_key = pw.CompositeKey("experiment", "metric")


class TrialMetric(BaseModel):
    """A metric tracked at TRIAL level; ``step`` as in :class:`ExperimentMetric`."""

    trial = pw.ForeignKeyField(Trial, on_delete="CASCADE")
    metric = pw.ForeignKeyField(MetricRecord, column_name="metric_id", on_delete="CASCADE")
    step = pw.IntegerField(null=True)

    class Meta:
        table_name = "trial_metric"
        primary_key = pw.CompositeKey("trial", "metric")


class ArtifactMetric(BaseModel):
    """The metrics a checkpoint was saved with (``on_checkpoint(..., metrics={...})``)."""

    artifact = pw.ForeignKeyField(Artifact, on_delete="CASCADE")
    metric = pw.ForeignKeyField(MetricRecord, column_name="metric_id", on_delete="CASCADE")

    class Meta:
        table_name = "artifact_metric"
        primary_key = pw.CompositeKey("artifact", "metric")


ALL_MODELS: list[type[BaseModel]] = [
    Experiment,
    Trial,
    TrialRun,
    Results,
    Epoch,
    MetricRecord,
    Artifact,
    ExperimentArtifact,
    TrialArtifact,
    TrialRunArtifact,
    ResultsMetric,
    ResultsArtifact,
    EpochMetric,
    EpochArtifact,
    StepMetric,
    RunParam,
    Claim,
    WriteMark,
    SchemaVersion,
    ExperimentMetric,
    TrialMetric,
    ArtifactMetric,
]
"""Every table, in creation order (parents before children)."""
