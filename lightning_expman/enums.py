"""The vocabulary shared by every layer: hierarchy levels, standard metrics and run statuses.

Example:
    >>> from lightning_expman import Level, Metric, RunStatus
    >>> Metric.VAL_LOSS == "val_loss"
    True
    >>> RunStatus.parse("completed")
    <RunStatus.COMPLETED: 'COMPLETED'>
    >>> Level.EPOCH > Level.TRIAL_RUN
    True
"""

from __future__ import annotations

from enum import Enum, IntEnum

__all__ = ["Level", "Metric", "MetricKey", "RunStatus", "metric_name"]


class Level(IntEnum):
    """The six levels of the experiment hierarchy, outermost first."""

    EXPERIMENT = 0
    TRIAL = 1
    TRIAL_RUN = 2
    PIPELINE = 3
    EPOCH = 4
    BATCH = 5


class Metric(str, Enum):
    """The seed's standard metrics.

    Values are the names Lightning users log (``self.log("val_loss", ...)``), so
    ``Metric.VAL_LOSS == "val_loss"`` and either spelling can be passed anywhere a metric
    is expected. Any other string is a first-class metric name too.
    """

    TRAIN_LOSS = "train_loss"
    TRAIN_ACC = "train_acc"
    VAL_LOSS = "val_loss"
    VAL_ACC = "val_acc"
    TEST_LOSS = "test_loss"
    TEST_ACC = "test_acc"
    LEARNING_RATE = "lr"
    CONFUSION = "confusion"
    CUSTOM = "custom"
    # The seed's longer spellings (seed 000 writes Metric.VAL_ACCURACY): aliases, the same members.
    TRAIN_ACCURACY = "train_acc"
    VAL_ACCURACY = "val_acc"
    TEST_ACCURACY = "test_acc"
    # Untracked: carried between pipeline parts, never persisted as metric values.
    NETWORK = "network"
    DATA = "data"
    LABELS = "labels"
    STATUS = "status"

    @property
    def tracked(self) -> bool:
        """Whether values of this metric are persisted by trackers."""
        return self not in _UNTRACKED

    def __str__(self) -> str:
        return self.value


_UNTRACKED = frozenset({Metric.NETWORK, Metric.DATA, Metric.LABELS, Metric.STATUS})

MetricKey = Metric | str
"""A metric is named by a :class:`Metric` member or any string."""


def metric_name(metric: MetricKey) -> str:
    """Return the stored name of ``metric`` (``Metric.VAL_LOSS`` -> ``"val_loss"``)."""
    return metric.value if isinstance(metric, Metric) else str(metric)


class RunStatus(str, Enum):
    """Lifecycle status of a trial run (stored by name in the database)."""

    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    STOPPED = "STOPPED"
    FAILED = "FAILED"
    ABORTED = "ABORTED"
    SKIPPED = "SKIPPED"
    LOST = "LOST"  # no heartbeat within its lease, or its process is gone (see coordination)
    PRUNED = "PRUNED"  # stopped by a search's pruner (lightning_expman.search); its epochs are kept

    @classmethod
    def parse(cls, value: RunStatus | str) -> RunStatus:
        """Accept a member or its name in any case (``"completed"`` as in the seed's examples).

        Raises:
            ValueError: naming the bad value and the valid ones.
        """
        if isinstance(value, cls):
            return value
        try:
            return cls[str(value).strip().upper()]
        except KeyError:
            valid = ", ".join(m.name.lower() for m in cls)
            raise ValueError(f"unknown run status {value!r}; valid: {valid}") from None

    @property
    def finished(self) -> bool:
        """True for statuses that resume never re-runs (COMPLETED, STOPPED, PRUNED)."""
        return self in (RunStatus.COMPLETED, RunStatus.STOPPED, RunStatus.PRUNED)

    def __str__(self) -> str:
        return self.value
