"""The MLflow tracker: experiment -> MLflow experiment, trial -> parent run, trial run -> child run.

* The MLflow experiment is ours (got or created by name; ``experiment_name`` overrides).
* Each TRIAL is a parent run tagged ``expman.trial``; a later process recording the same
  trial reuses that parent, so repeats and resumed runs nest under one parent.
* Each TRIAL_RUN is a nested child run (tag ``mlflow.parentRunId``) carrying params (flattened,
  values truncated to MLflow's limits), tags for repeat index, seed, host and git commit,
  step metrics (BATCH, ``step`` = global step), epoch metrics (EPOCH, ``step`` = epoch index),
  final results (TRIAL_RUN level) and checkpoint files as artifacts under ``checkpoints/``.
* Metrics are buffered and sent with ``log_batch(synchronous=False)`` (MLflow's asynchronous
  logging) at epoch end or every 1000 values; :meth:`MLflowTracker.flush` waits for them.
* Statuses: COMPLETED / STOPPED -> FINISHED, FAILED -> FAILED, ABORTED -> KILLED; our own
  status is kept in the tag ``expman.status`` (and the error text in ``expman.error``).

MLflow is an optional dependency: ``pip install lightning-expman[mlflow]``. It is imported on
the first event, never at import time. How levels map onto MLflow experiments, runs, tags and
statuses is :mod:`lightning_expman.tracking.mlflow_runs`; this module buffers and sends values.

Example:
    >>> from lightning_expman.tracking import build_tracker
    >>> tracker = build_tracker({"type": "mlflow", "tracking_uri": "sqlite:///mlflow.db"})
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from ..db.values import flatten as flatten_params
from ..enums import Level, RunStatus
from ..errors import ConfigError
from ..masking import mask_secrets, mask_text
from .base import Tracker
from .mlflow_runs import (
    MAX_KEY,
    MAX_PARAM_VALUE,
    MAX_TAG_VALUE,
    TAG_STATUS,
    clip,
    create_child,
    create_parent,
    find_parent,
    import_mlflow,
    mlflow_status,
    open_experiment,
    terminate,
)

__all__ = ["MLflowTracker", "mlflow_status"]

log = logging.getLogger(__name__)

_BATCH = 1000  # MLflow's MAX_METRICS_PER_BATCH
_PARAMS_PER_BATCH = 100


class MLflowTracker(Tracker):
    """Mirror the experiment hierarchy into MLflow with nested runs.

    Args:
        tracking_uri: MLflow tracking URI (``sqlite:///mlflow.db``, ``http://host:5000``...).
            ``None``: ``sqlite:///<workspace>/mlflow.db`` when ``workspace`` is given, else
            MLflow's default (``MLFLOW_TRACKING_URI``).
        experiment_name: MLflow experiment name; default: our experiment's name.
        workspace: folder for the default store and artifacts.
        artifact_location: artifact root of a newly created experiment; default: the
            ``mlartifacts`` folder next to a SQLite store file.
        log_checkpoints: ``True`` (default): when the run ends, upload the checkpoint files still on
            disk (top-k rotation has removed the others), like Lightning's ``MLFlowLogger(log_model=
            True)``; ``"all"``: upload every checkpoint as soon as it is saved; ``False``: upload
            none (the best path is still recorded in a tag).
        synchronous: ``True`` disables MLflow's asynchronous metric logging.

    Example:
        >>> tracker = MLflowTracker("sqlite:///mlflow.db", experiment_name="digits")
        >>> tracker.client.search_runs([tracker.experiment_id])
    """

    def __init__(
        self,
        tracking_uri: str | None = None,
        experiment_name: str | None = None,
        *,
        workspace: str | Path | None = None,
        artifact_location: str | None = None,
        log_checkpoints: bool | Literal["all"] = True,
        synchronous: bool = False,
    ) -> None:
        if log_checkpoints not in (True, False, "all"):
            raise ConfigError(
                f"mlflow tracker: log_checkpoints must be true, false or 'all', got {log_checkpoints!r}"
            )
        if tracking_uri is None and workspace is not None:
            tracking_uri = f"sqlite:///{Path(workspace).resolve() / 'mlflow.db'}"
            Path(workspace).mkdir(parents=True, exist_ok=True)
        if artifact_location is None and tracking_uri and tracking_uri.startswith("sqlite:///"):
            db_file = Path(tracking_uri[len("sqlite:///") :])
            artifact_location = (db_file.resolve().parent / "mlartifacts").as_uri()
        self.tracking_uri = tracking_uri
        self.experiment_name = experiment_name
        self.artifact_location = artifact_location
        self.log_checkpoints = log_checkpoints
        self.synchronous = synchronous
        self.experiment_id: str | None = None
        self.parent_run_id: str | None = None
        self.run_id: str | None = None
        self.trial_name: str | None = None
        self.epoch_idx: int | None = None
        self._client: Any = None
        self._metrics: list[Any] = []  # mlflow Metric entities waiting for log_batch
        self._operations: list[Any] = []  # RunOperations of async log_batch calls
        self._uploaded: set[str] = set()  # checkpoint files uploaded to the open run
        self._pending: dict[str, None] = {}  # checkpoints to upload at run end (ordered set)
        self._params: dict[str, dict[str, str]] = {}  # run id -> params sent to it

    # ------------------------------------------------------------------ lazy client

    @property
    def client(self) -> Any:
        """The ``mlflow.MlflowClient`` (created on first use)."""
        if self._client is None:
            mlflow = import_mlflow()
            self._client = mlflow.MlflowClient(self.tracking_uri)
        return self._client

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_client"] = None
        state["_metrics"] = []
        state["_operations"] = []
        return state

    # ------------------------------------------------------------------ lifecycle

    def on_create(self, level: Level, **kwargs: Any) -> None:
        level = Level(level)
        if level is Level.EXPERIMENT:
            self._open_experiment(self.experiment_name or kwargs.get("name") or "default", kwargs)
        elif level is Level.TRIAL:
            self._ensure_experiment()
            self.trial_name = str(kwargs.get("name") or "default")
            self.parent_run_id = find_parent(self.client, self.experiment_id, self.trial_name)
            if self.parent_run_id is None:
                self.parent_run_id = create_parent(
                    self.client, self.experiment_id, self.trial_name, kwargs.get("tags")
                )
                if kwargs.get("config"):
                    self._log_params(self.parent_run_id, kwargs["config"])
        elif level is Level.TRIAL_RUN:
            self._ensure_experiment()
            self._create_child(kwargs)
        elif level is Level.EPOCH:
            epoch = kwargs.get("epoch_idx", kwargs.get("epoch"))
            if epoch is None:
                epoch = 0 if self.epoch_idx is None else self.epoch_idx + 1
            self.epoch_idx = int(epoch)

    def _open_experiment(self, name: str, kwargs: Mapping[str, Any]) -> None:
        self.experiment_id = open_experiment(
            self.client,
            name,
            artifact_location=self.artifact_location,
            tags=kwargs.get("tags"),
            desc=kwargs.get("desc"),
        )

    def _ensure_experiment(self) -> None:
        if self.experiment_id is None:
            self._open_experiment(self.experiment_name or "Default", {})

    def _create_child(self, kwargs: Mapping[str, Any]) -> None:
        self.run_id = create_child(
            self.client,
            self.experiment_id,
            kwargs,
            parent_run_id=self.parent_run_id,
            trial_name=self.trial_name,
        )
        self.epoch_idx = None
        self._uploaded = set()
        self._pending = {}
        if kwargs.get("config"):
            self._log_params(self.run_id, kwargs["config"])

    def on_end(self, level: Level, **kwargs: Any) -> None:
        level = Level(level)
        status = RunStatus.parse(kwargs.get("status") or RunStatus.COMPLETED)
        if level is Level.EPOCH:
            self._send()
        elif level is Level.TRIAL_RUN and self.run_id is not None:
            run_id = self.run_id
            try:
                self._upload_pending()
                self.flush()
            finally:
                self.run_id = None
                self._params.pop(run_id, None)
                terminate(self.client, run_id, status, kwargs.get("error"), kwargs.get("stop_epoch"))
        elif level is Level.TRIAL and self.parent_run_id is not None:
            run_id, self.parent_run_id = self.parent_run_id, None
            self.flush()
            self.client.set_tag(run_id, TAG_STATUS, status.value)
            self.client.set_terminated(run_id, mlflow_status(status))
        elif level is Level.EXPERIMENT:
            self.flush()

    def settle(
        self, status: RunStatus | str, error: str | None = None, stop_epoch: int | None = None
    ) -> None:
        """End the open child run in MLflow now, with its final status, while it stays open here.

        The drop-in logger calls this when ``fit`` returns: MLflow shows the run FINISHED at
        once, and a following ``trainer.test()`` still logs its results to the same run (MLflow
        accepts values on a terminated run; the run's end at close records the end time again).
        """
        if self.run_id is not None:
            self._upload_pending()
            self.flush()
            terminate(self.client, self.run_id, RunStatus.parse(status), error, stop_epoch)

    # ------------------------------------------------------------------ metrics / params

    def _target(self, level: Level | None) -> str | None:
        if level is Level.TRIAL and self.parent_run_id is not None:
            return self.parent_run_id
        return self.run_id

    def track(
        self,
        metric: str,
        value: float | None,
        step: int | None = None,
        *,
        level: Level | None = None,
        epoch: int | None = None,
        per_label: Mapping[str, float] | None = None,
    ) -> None:
        """Buffer one value (and ``name/label`` values for per-label metrics)."""
        self.track_dict({metric: value}, step, level=level, epoch=epoch)
        if per_label:
            self.track_dict(
                {f"{metric}/{k}": v for k, v in per_label.items()}, step, level=level, epoch=epoch
            )

    def track_dict(
        self,
        metrics: Mapping[str, float | None],
        step: int | None = None,
        *,
        level: Level | None = None,
        epoch: int | None = None,
    ) -> None:
        """Buffer values: BATCH at ``step``, EPOCH at the epoch index, results at step 0."""
        if self._target(level) is None:
            log.debug("MLflowTracker: metrics %s outside a run: not logged", sorted(metrics))
            return
        if level is Level.TRIAL and self.parent_run_id is not None:
            self._send()
            self._log_batch(self.parent_run_id, [self._entity(k, v, step or 0) for k, v in metrics.items()])
            return
        if level is Level.EPOCH or (level is None and step is None and self.epoch_idx is not None):
            x = epoch if epoch is not None else (self.epoch_idx or 0)
        else:  # BATCH: the global step; TRIAL_RUN / PIPELINE results: step 0 unless given
            x = step if step is not None else 0
        for name, value in metrics.items():
            self._metrics.append(self._entity(name, value, x))
        if len(self._metrics) >= _BATCH:
            self._send()

    def _entity(self, name: str, value: float | None, step: int) -> Any:
        from mlflow.entities import Metric

        value = float("nan") if value is None else float(value)
        # A metric name is not masked (hot path: every logged value); tags and params are.
        key = name if len(name) <= MAX_KEY else name[: MAX_KEY - 3] + "..."
        return Metric(key, value, int(time.time() * 1000), int(step))

    def _log_batch(self, run_id: str, metrics: list[Any]) -> None:
        for i in range(0, len(metrics), _BATCH):
            chunk = metrics[i : i + _BATCH]
            if self.synchronous:
                self.client.log_batch(run_id, metrics=chunk, synchronous=True)
            else:
                op = self.client.log_batch(run_id, metrics=chunk, synchronous=False)
                if op is not None:
                    self._operations.append(op)

    def _send(self) -> None:
        if self._metrics and self.run_id is not None:
            metrics, self._metrics = self._metrics, []
            self._log_batch(self.run_id, metrics)

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log flattened params on the open run (the parent run between runs)."""
        run_id = self.run_id or self.parent_run_id
        if run_id is None:
            log.debug("MLflowTracker: params outside a run: not logged")
            return
        self._log_params(run_id, params)

    def _log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param
        from mlflow.exceptions import MlflowException

        flat = flatten_params(mask_secrets(params))
        logged = self._params.setdefault(run_id, {})
        entities = []
        for key, value in flat.items():
            param = Param(clip(key, MAX_KEY), clip(value, MAX_PARAM_VALUE))
            if param.key in logged:
                # MLflow params are immutable: keep the first value (e.g. the run config's seed
                # when a datamodule's hparams also hold a "seed"); the database keeps the latest.
                if logged[param.key] != param.value:
                    log.debug("MLflowTracker: param %s already %r, not changed", param.key, logged[param.key])
                continue
            logged[param.key] = param.value
            entities.append(param)
        for i in range(0, len(entities), _PARAMS_PER_BATCH):
            try:
                self.client.log_batch(run_id, params=entities[i : i + _PARAMS_PER_BATCH], synchronous=True)
            except MlflowException as e:
                # MLflow params are immutable: a re-logged key with a new value is refused.
                log.warning("MLflowTracker: some params not logged: %s", mask_text(str(e).splitlines()[0]))

    # ------------------------------------------------------------------ artifacts

    def on_add_artifact(
        self, level: Level, artifact_path: str, artifact_type: str | None = None, **kwargs: Any
    ) -> None:
        """Upload a file to the run at ``level`` (TRIAL -> parent run, below -> child run)."""
        level = Level(level)
        run_id = self.parent_run_id if level is Level.TRIAL else self.run_id
        if level is Level.EXPERIMENT or run_id is None:
            log.debug("MLflowTracker: %s-level artifact %s not uploaded (no run)", level.name, artifact_path)
            return
        folder = artifact_type or "files"
        if level is Level.EPOCH:
            epoch = kwargs.get("epoch", self.epoch_idx)
            folder = f"{folder}/epoch_{epoch}" if epoch is not None else folder
        self.client.log_artifact(run_id, os.fspath(artifact_path), folder)

    def on_checkpoint(
        self, network: Any, checkpoint_path: str, metrics: Mapping[str, float] | None = None, **kwargs: Any
    ) -> None:
        """Upload the checkpoint under ``checkpoints/`` now or at run end (see ``log_checkpoints``).

        ``best=True`` also tags the run with the best checkpoint's path.
        """
        if self.run_id is None:
            return
        path = os.fspath(checkpoint_path)
        if self.log_checkpoints == "all":
            self._upload(path)
        elif self.log_checkpoints:
            self._pending[path] = None
        if kwargs.get("best"):
            self.client.set_tag(self.run_id, "expman.best_checkpoint", clip(checkpoint_path, MAX_TAG_VALUE))

    def on_remove_artifact(
        self, level: Level, artifact_path: str, artifact_type: str | None = None, **kwargs: Any
    ) -> None:
        """A checkpoint deleted locally (top-k rotation) is not uploaded at run end.

        With ``log_checkpoints="all"`` it was uploaded already, and MLflow's copy stays valid.
        """
        self._pending.pop(os.fspath(artifact_path), None)

    def _upload(self, path: str) -> None:
        # The best checkpoint is usually reported again at the end of a fit: upload it once.
        if path not in self._uploaded and Path(path).is_file():
            self.client.log_artifact(self.run_id, path, "checkpoints")
            self._uploaded.add(path)

    def _upload_pending(self) -> None:
        pending, self._pending = self._pending, {}
        for path in pending:
            self._upload(path)

    # ------------------------------------------------------------------ flush / close

    def flush(self) -> None:
        """Send buffered metrics and wait for MLflow's asynchronous logging to finish."""
        self._send()
        operations, self._operations = self._operations, []
        for op in operations:
            op.wait()

    def close(self) -> None:
        """Flush; the client is kept (it holds no open resources of ours)."""
        self.flush()
