"""Continuing a trial run from its last checkpoint: one lifecycle for ``expman run`` and the drop-in logger.

A long fit that dies keeps its row: the next attempt re-claims **the same trial run** (RUNNING
again, ``attempts`` + 1, a new lease; :meth:`~lightning_expman.coordination.Claimer.claim` with
``continue_run`` / :func:`~lightning_expman.coordination.reclaim`) and fits with
``ckpt_path=<last checkpoint>``. What the dead attempt recorded after the checkpoint is superseded
(:func:`supersede`), so the run's history has each epoch once.

Decisions:

* **Which runs continue.** A unit whose current run is ABORTED (Ctrl-C, SIGTERM: preemption, a
  time limit), LOST (its process died: SIGKILL, the OOM killer, a dead node) or FAILED *by a
  fault* — an exception that says the machine failed, not the code: out of memory, ``OSError``
  (disk full, NFS), connection and timeout errors, database errors (see :func:`fault_error`).
  A run FAILED by any other exception (a bug in user code) starts over as a new row: its
  checkpoint may hold the bug's effects, and the fix may change what should have been trained.
* **Which checkpoint.** The run's ``last.ckpt`` (Lightning's ``save_last``, which ``expman run``
  turns on), found in the run folder's ``artifacts/checkpoints`` or among the run's recorded
  checkpoint artifacts. Each checkpoint carries ``checkpoint["expman"]`` (written by
  :class:`~lightning_expman.lightning.continuation.RunCheckpointState`): the run id, the
  database, the hash of the run's config. It is used only when it names this run and the
  config hash equals the new run's: **a checkpoint from a changed config is never used** (the
  unit then starts over as a new row).
* **What is superseded.** When the continued fit starts training (after the restore, so for any
  checkpoint type, mid-epoch SLURM ones included): epochs ``>= e`` (the first epoch it trains)
  with their metrics and artifact links, step values of those epochs from step ``S`` (the
  restored step counter) on, and the run's RESULTS (the continued fit produces new ones). Rows
  are deleted, not flagged: every reader then sees one history.
* ``expman run --restart`` (``Experiment.run(continue_runs=False)``) starts interrupted units over
  as new rows, as before.
* **One run per folder.** A unit that starts over as a new row finds its ``run_<k>`` folder
  holding the previous run's files: they are moved to ``run_<k>.r<old id>`` first (and that
  run's recorded artifact paths follow, :func:`set_aside`), so the new run starts empty.

Example:
    >>> from lightning_expman.continuation import fault_error, config_hash
    >>> fault_error("OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB")
    True
    >>> fault_error("ValueError: bad shape")
    False
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .enums import RunStatus

if TYPE_CHECKING:  # pragma: no cover
    from .db.manager import DatabaseManager

__all__ = [
    "STATE_KEY",
    "ContinuePlan",
    "config_hash",
    "continuable_status",
    "fault_error",
    "find_last_checkpoints",
    "plan_continue",
    "read_state",
    "run_folder",
    "set_aside",
    "supersede",
]

log = logging.getLogger(__name__)

STATE_KEY = "expman"
"""The key of the run's state in every checkpoint the logger's fits save."""

_FAULT_TYPES = frozenset(
    {
        "OutOfMemoryError",
        "MemoryError",
        "OSError",
        "IOError",
        "EnvironmentError",
        "ConnectionError",
        "ConnectionResetError",
        "ConnectionAbortedError",
        "ConnectionRefusedError",
        "BrokenPipeError",
        "TimeoutError",
        "DatabaseError",
        "InterfaceError",
        "OperationalError",
        "DistBackendError",
        "DistNetworkError",
        "SIGTERMException",
    }
)
_FAULT_TEXT = ("out of memory", "can't allocate memory", "nccl", "no space left on device", "ecc error")


def fault_error(error: str | None) -> bool:
    """Whether a FAILED run's error text (``"Type: message"``) names a fault of the machine, not the code."""
    if not error:
        return False
    kind = error.split(":", 1)[0].strip().rsplit(".", 1)[-1]
    text = error.lower()
    return kind in _FAULT_TYPES or any(t in text for t in _FAULT_TEXT)


def continuable_status(status: str | None, error: str | None) -> bool:
    """Whether a unit whose current run ended so continues from its checkpoint (module docstring)."""
    if status in (RunStatus.ABORTED.value, RunStatus.LOST.value):
        return True
    return status == RunStatus.FAILED.value and fault_error(error)


def config_hash(config: Any) -> str:
    """A stable hash of a run's resolved config (plain JSON, keys sorted)."""
    text = json.dumps(config, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def read_state(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The ``checkpoint["expman"]`` state of a checkpoint file (``None``: unreadable or none).

    The tensors are memory-mapped, not read: peeking costs little even for a large model.
    """
    import torch

    try:
        try:
            ckpt = torch.load(os.fspath(path), map_location="cpu", weights_only=False, mmap=True)
        except RuntimeError:  # not a zip-format file: mmap unsupported
            ckpt = torch.load(os.fspath(path), map_location="cpu", weights_only=False)
    except Exception as e:  # a truncated file (killed while saving) is simply not used
        log.warning("checkpoint %s cannot be read (%s): not continuing from it", path, e)
        return None
    state = ckpt.get(STATE_KEY) if isinstance(ckpt, Mapping) else None
    if not isinstance(state, Mapping):
        return None
    out = dict(state)
    out.setdefault("epoch", ckpt.get("epoch"))
    out.setdefault("global_step", ckpt.get("global_step"))
    return out


def find_last_checkpoints(run_dir: str | os.PathLike[str] | None, recorded: Iterable[str] = ()) -> list[str]:
    """Existing ``last*.ckpt`` files of a run, newest first: in ``run_dir/artifacts/checkpoints``
    and among the run's recorded checkpoint paths."""
    found: set[str] = set()
    if run_dir is not None:
        folder = os.path.join(os.fspath(run_dir), "artifacts", "checkpoints")
        if os.path.isdir(folder):
            found |= {os.path.join(folder, n) for n in os.listdir(folder) if _is_last(n)}
    found |= {p for p in recorded if _is_last(os.path.basename(p))}
    existing = [p for p in found if os.path.isfile(p)]
    return sorted(existing, key=os.path.getmtime, reverse=True)


def _is_last(name: str) -> bool:
    return name.startswith("last") and name.endswith(".ckpt")


@dataclass(frozen=True)
class ContinuePlan:
    """How a unit's next attempt starts: ``ckpt_path`` set = continue ``run_id`` from it."""

    run_id: int | None
    ckpt_path: str | None
    reason: str

    @property
    def continues(self) -> bool:
        return self.ckpt_path is not None


def plan_continue(
    manager: DatabaseManager,
    run_id: int | None,
    status: str | None,
    run_dir: str | os.PathLike[str],
    config: Any,
) -> ContinuePlan:
    """Decide whether the unit's current run ``run_id`` is continued from its last checkpoint.

    Args:
        manager: the database.
        run_id, status: the unit's current run and its (displayed) status.
        run_dir: the unit's run folder.
        config: the new attempt's run config (as stored), compared by hash with the checkpoint's.
    """
    if run_id is None:
        return ContinuePlan(None, None, "no previous run")
    from .db import models as m

    row = m.TrialRun.select(m.TrialRun.error).where(m.TrialRun.id == run_id).tuples().first(manager.database)
    error = row[0] if row else None
    if not continuable_status(status, error):
        return ContinuePlan(
            run_id, None, f"run {run_id} is {status}{' (a bug, not a fault)' if error else ''}"
        )
    want = config_hash(config)
    for path in find_last_checkpoints(run_dir, _recorded_checkpoints(manager, run_id)):
        state = read_state(path)
        if state is None or state.get("run_id") != run_id:
            continue  # another run's file (or no state): never mixed into this run
        if state.get("config_hash") != want:
            return ContinuePlan(run_id, None, f"{path} was written under another config")
        return ContinuePlan(run_id, path, f"continuing run {run_id} from {path} (epoch {state.get('epoch')})")
    return ContinuePlan(run_id, None, f"run {run_id} has no last checkpoint")


def run_folder(spec: Any, trial: str, repeat_idx: int) -> Path:
    """The folder ``expman run`` gives run ``repeat_idx`` of ``trial`` (as the workspace names it)."""
    from .workspace import safe_name

    root = Path(os.path.abspath(os.path.expanduser(str(spec.workspace))))
    return root / safe_name(spec.name) / "trials" / safe_name(trial) / f"run_{repeat_idx}"


def set_aside(manager: DatabaseManager, run_id: int, folder: str | os.PathLike[str]) -> Path | None:
    """Move run ``run_id``'s folder to ``<folder>.r<run_id>`` before a new run of the unit uses ``folder``.

    The unit's new run then starts in an empty folder (two runs' checkpoints and logs are never
    mixed); the old run's recorded artifact paths are rewritten to the new place.

    Returns:
        The new place, or ``None`` when there was nothing to move.
    """
    from .db import models as m

    src = Path(folder)
    if not src.is_dir() or not any(src.iterdir()):
        return None
    dst = src.with_name(f"{src.name}.r{run_id}")
    n = 2
    while dst.exists():
        dst, n = src.with_name(f"{src.name}.r{run_id}_{n}"), n + 1
    os.replace(src, dst)
    prefix = str(src) + os.sep
    A = m.Artifact
    links = (
        m.TrialRunArtifact.select(m.TrialRunArtifact.artifact).where(m.TrialRunArtifact.trial_run == run_id),
        m.EpochArtifact.select(m.EpochArtifact.artifact).where(m.EpochArtifact.trial_run == run_id),
        m.ResultsArtifact.select(m.ResultsArtifact.artifact).where(m.ResultsArtifact.results == run_id),
    )

    def fn() -> None:
        for link in links:
            for aid, location in (
                A.select(A.id, A.location).where(A.id.in_(link)).tuples().execute(manager.database)
            ):
                if location.startswith(prefix):
                    new = str(dst) + os.sep + location[len(prefix) :]
                    A.update(location=new).where(A.id == aid).execute(manager.database)

    manager.run_in_transaction(fn, what=f"moving the files of trial run {run_id}", idempotent=True)
    log.info("files of trial run %s moved to %s (the unit starts over in %s)", run_id, dst, src)
    return dst


def _recorded_checkpoints(manager: DatabaseManager, run_id: int) -> list[str]:
    from .db import models as m

    A, L = m.Artifact, m.TrialRunArtifact
    q = (
        A.select(A.location)
        .join(L, on=(L.artifact == A.id))
        .where((L.trial_run == run_id) & (A.type == "checkpoint"))
    )
    return [r[0] for r in q.tuples().execute(manager.database)]


def supersede(manager: DatabaseManager, run_id: int, epoch: int, step: int | None = None) -> dict[str, int]:
    """Delete what run ``run_id`` recorded from epoch ``epoch`` (and step ``step``) on, and its RESULTS.

    Called when a continued fit starts training at ``epoch`` with the step counter at ``step``:
    the rows a dead attempt wrote past its checkpoint go, so each epoch is recorded once.

    Returns:
        Counts of deleted rows by kind (``epochs``, ``epoch_metrics``, ``steps``, ``results``...).
    """
    from .db import models as m

    db = manager.database
    EM, EA, E, SM = m.EpochMetric, m.EpochArtifact, m.Epoch, m.StepMetric
    RM, RA, R, MR, A = m.ResultsMetric, m.ResultsArtifact, m.Results, m.MetricRecord, m.Artifact

    def fn() -> dict[str, int]:
        late = (EM.trial_run == run_id) & (EM.epoch_idx >= epoch)
        metric_ids = [r[0] for r in EM.select(EM.metric).where(late).tuples().execute(db)]
        metric_ids += [r[0] for r in RM.select(RM.metric).where(RM.results == run_id).tuples().execute(db)]
        late_art = (EA.trial_run == run_id) & (EA.epoch_idx >= epoch)
        art_ids = [r[0] for r in EA.select(EA.artifact).where(late_art).tuples().execute(db)]
        counts = {
            "epoch_metrics": EM.delete().where(late).execute(db),
            "results": RM.delete().where(RM.results == run_id).execute(db),
            "epoch_artifacts": EA.delete().where(late_art).execute(db),
        }
        RA.delete().where(RA.results == run_id).execute(db)
        R.delete().where(R.trial_run == run_id).execute(db)
        counts["epochs"] = E.delete().where((E.trial_run == run_id) & (E.idx >= epoch)).execute(db)
        steps = (SM.trial_run == run_id) & (SM.epoch >= epoch)
        if step is not None:
            steps &= SM.step >= step
        counts["steps"] = SM.delete().where(steps).execute(db)
        for i in range(0, len(metric_ids), 500):
            MR.delete().where(MR.id.in_(metric_ids[i : i + 500])).execute(db)
        if art_ids:  # files of the superseded epochs: their rows go with them
            m.TrialRunArtifact.delete().where(
                (m.TrialRunArtifact.trial_run == run_id) & m.TrialRunArtifact.artifact.in_(art_ids)
            ).execute(db)
            A.delete().where(A.id.in_(art_ids)).execute(db)
        # Files every fit records again (model summary, metrics.log) are linked once.
        again = A.select(A.id).join(m.TrialRunArtifact, on=(m.TrialRunArtifact.artifact == A.id))
        again = again.where(
            (m.TrialRunArtifact.trial_run == run_id) & A.type.in_(["model_summary", "metrics_log"])
        )
        ids = [r[0] for r in again.tuples().execute(db)]
        if ids:
            m.TrialRunArtifact.delete().where(
                (m.TrialRunArtifact.trial_run == run_id) & m.TrialRunArtifact.artifact.in_(ids)
            ).execute(db)
            A.delete().where(A.id.in_(ids)).execute(db)
        return counts

    counts = manager.run_in_transaction(
        fn, what=f"superseding trial run {run_id} from epoch {epoch}", idempotent=True
    )
    log.info("trial run %s continues at epoch %s: superseded %s", run_id, epoch, counts)
    return counts
