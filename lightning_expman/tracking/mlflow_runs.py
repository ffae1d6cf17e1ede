"""How the experiment hierarchy maps onto MLflow: experiments, runs, tags, statuses and limits.

Used by :class:`~lightning_expman.tracking.mlflow.MLflowTracker` (which buffers and sends the values):

* our experiment -> an MLflow experiment, got or created by name (restored if deleted);
* a TRIAL -> a parent run tagged ``expman.level=trial`` and ``expman.trial=<name>``, found again by
  a later process recording the same trial;
* a TRIAL_RUN -> a child run (``mlflow.parentRunId``) tagged with repeat index, seed, host, git
  commit and the run's context;
* statuses: COMPLETED / STOPPED -> FINISHED, FAILED -> FAILED, ABORTED -> KILLED; ours is kept in
  ``expman.status`` (the error text in ``expman.error``).

Every tag and param value goes through :func:`clip` (masked, cut to MLflow's limits).

Example:
    >>> experiment_id = open_experiment(client, "digits", artifact_location=None)
    >>> parent = find_parent(client, experiment_id, "mlp") or create_parent(client, experiment_id, "mlp")
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from typing import Any

from ..enums import RunStatus
from ..masking import mask_text

__all__ = [
    "TAG_ERROR",
    "TAG_LEVEL",
    "TAG_STATUS",
    "TAG_TRIAL",
    "clip",
    "create_child",
    "create_parent",
    "find_parent",
    "import_mlflow",
    "mlflow_status",
    "open_experiment",
    "terminate",
]

MAX_KEY = 250
MAX_PARAM_VALUE = 6000
MAX_TAG_VALUE = 8000

TAG_LEVEL = "expman.level"
TAG_TRIAL = "expman.trial"
TAG_STATUS = "expman.status"
TAG_ERROR = "expman.error"

_STATUS = {
    RunStatus.RUNNING: "RUNNING",
    RunStatus.COMPLETED: "FINISHED",
    RunStatus.STOPPED: "FINISHED",
    RunStatus.PRUNED: "FINISHED",
    RunStatus.SKIPPED: "FINISHED",
    RunStatus.FAILED: "FAILED",
    RunStatus.ABORTED: "KILLED",
}


def mlflow_status(status: RunStatus | str) -> str:
    """Our :class:`RunStatus` -> MLflow's run status name.

    Example:
        >>> mlflow_status("aborted")
        'KILLED'
    """
    return _STATUS[RunStatus.parse(status)]


def import_mlflow() -> Any:
    """``mlflow``, or an ImportError naming the extra to install."""
    try:
        import mlflow
    except ImportError as e:
        raise ImportError("the 'mlflow' tracker needs MLflow: pip install lightning-expman[mlflow]") from e
    return mlflow


def clip(text: Any, limit: int) -> str:
    """``text`` masked and cut to ``limit`` characters (MLflow refuses longer values)."""
    text = mask_text(str(text))  # every tag and param value MLflow stores goes through here
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _user_tags(tags: Mapping[Any, Any] | None) -> dict[str, str]:
    return {str(k): clip(v, MAX_TAG_VALUE) for k, v in (tags or {}).items()}


def open_experiment(
    client: Any,
    name: str,
    *,
    artifact_location: str | None,
    tags: Mapping[str, Any] | None = None,
    desc: str | None = None,
) -> str:
    """The id of the MLflow experiment ``name``, created (with ``tags`` and ``desc``) if missing."""
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        if experiment.lifecycle_stage == "deleted":
            client.restore_experiment(experiment.experiment_id)
        return experiment.experiment_id
    shown = _user_tags(tags)
    if desc:
        shown["mlflow.note.content"] = clip(desc, MAX_TAG_VALUE)
    try:
        return client.create_experiment(name, artifact_location=artifact_location, tags=shown or None)
    except Exception:  # created concurrently by another process
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise
        return experiment.experiment_id


def find_parent(client: Any, experiment_id: str, trial: str) -> str | None:
    """The latest parent run of ``trial`` (set RUNNING again), or None."""
    escaped = trial.replace("'", "\\'")
    found = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`{TAG_TRIAL}` = '{escaped}' and tags.`{TAG_LEVEL}` = 'trial'",
        max_results=1,
        order_by=["attributes.start_time DESC"],
    )
    if not found:
        return None
    run_id = found[0].info.run_id
    if found[0].info.status != "RUNNING":
        client.update_run(run_id, status="RUNNING")
    return run_id


def create_parent(client: Any, experiment_id: str, trial: str, tags: Mapping[str, Any] | None = None) -> str:
    """A new parent run for ``trial``; returns its id."""
    run = client.create_run(
        experiment_id, tags={TAG_LEVEL: "trial", TAG_TRIAL: trial, **_user_tags(tags)}, run_name=trial
    )
    return run.info.run_id


def create_child(
    client: Any,
    experiment_id: str,
    kwargs: Mapping[str, Any],
    *,
    parent_run_id: str | None,
    trial_name: str | None,
) -> str:
    """A new child run for a TRIAL_RUN created with ``kwargs`` (the ``on_create`` arguments)."""
    context = dict(kwargs.get("context") or {})
    tags: dict[str, str] = {TAG_LEVEL: "trial_run", TAG_STATUS: RunStatus.RUNNING.value}
    if parent_run_id is not None:
        tags["mlflow.parentRunId"] = parent_run_id
    if trial_name is not None:
        tags[TAG_TRIAL] = trial_name
    for key in ("repeat_idx", "seed"):
        if kwargs.get(key) is not None:
            tags[f"expman.{key}"] = str(kwargs[key])
    tags["expman.host"] = str(kwargs.get("host") or context.get("host") or socket.gethostname())
    git_commit = kwargs.get("git_commit") or context.get("git_commit")
    if git_commit:
        tags["mlflow.source.git.commit"] = str(git_commit)
        tags["expman.git_commit"] = str(git_commit)
    for key, value in context.items():
        if key not in ("host", "git_commit") and isinstance(value, (str, int, float, bool)):
            tags[f"expman.context.{clip(key, 200)}"] = clip(value, MAX_TAG_VALUE)
    tags.update(_user_tags(kwargs.get("tags")))
    name = trial_name or "run"
    if kwargs.get("repeat_idx") is not None:
        name = f"{name}-r{kwargs['repeat_idx']}"
    return client.create_run(experiment_id, tags=tags, run_name=name).info.run_id


def terminate(
    client: Any, run_id: str, status: RunStatus, error: str | None = None, stop_epoch: int | None = None
) -> None:
    """End ``run_id`` with ``status`` (ours in a tag, MLflow's as the run status)."""
    client.set_tag(run_id, TAG_STATUS, status.value)
    if error:
        client.set_tag(run_id, TAG_ERROR, clip(error, MAX_TAG_VALUE))
    if stop_epoch is not None:
        client.set_tag(run_id, "expman.stop_epoch", str(stop_epoch))
    client.set_terminated(run_id, mlflow_status(status))
