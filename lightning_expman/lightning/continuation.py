"""The Lightning side of continuing a run: :class:`RunCheckpointState` and Tuner detection.

:class:`RunCheckpointState` comes to every Trainer with
:class:`~lightning_expman.lightning.hooks.LevelHooks` (the ``lightning.pytorch.callbacks_factory``
entry point) and acts for the ExpmanLoggers that follow the hooks. It

* writes ``checkpoint["expman"]`` into every checkpoint a fit saves (ModelCheckpoint's files,
  ``last.ckpt``, SLURM's ``hpc_ckpt_N.ckpt``, ``trainer.save_checkpoint``): the run id, the
  database (URL, password masked), experiment and trial, the run config's hash, the lease token
  and the SLURM job;
* when a fit restores a checkpoint (``fit(ckpt_path=path | "last" | "hpc")``, or Lightning's
  automatic SLURM requeue restore) that names a run of the same database, experiment and trial,
  continues **that** run when its hyperparameters (the run config) are unchanged: re-claimed
  under a new lease with ``attempts`` + 1
  (:func:`~lightning_expman.coordination.reclaim`), the row this fit opened a moment earlier is
  dropped (it recorded nothing yet), and what the dead attempt recorded past the checkpoint is
  superseded when training starts (:func:`~lightning_expman.continuation.supersede`). A run still
  RUNNING under a live lease elsewhere is not taken: the fit is recorded as a new run (warning).
  A SLURM job requeued under the same job id takes over its own run at once.

Only the database tracker follows the switch: other trackers (MLflow...) record the continued fit
as a run of their own.

:func:`is_tuning`: ``Tuner.lr_find`` / ``Tuner.scale_batch_size`` run a ``fit`` that stops after
tuning; :class:`LevelHooks` forwards nothing for it, so tuning records no run.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import lightning.pytorch as pl
from typing_extensions import override

from ..continuation import STATE_KEY, config_hash, supersede
from .hooks import BatchlessCallback, hooked_loggers

if TYPE_CHECKING:  # pragma: no cover
    from .logger import ExpmanLogger

__all__ = ["RunCheckpointState", "is_tuning"]

log = logging.getLogger(__name__)


def is_tuning(trainer: pl.Trainer) -> bool:
    """Whether this ``fit`` is a Tuner call (``lr_find`` / ``scale_batch_size``) that ends after tuning."""
    from lightning.pytorch.callbacks import BatchSizeFinder, LearningRateFinder

    return any(
        isinstance(cb, (BatchSizeFinder, LearningRateFinder)) and getattr(cb, "_early_exit", False)
        for cb in trainer.callbacks
    )


def _slurm() -> tuple[str | None, int]:
    array = os.environ.get("SLURM_ARRAY_JOB_ID")
    job = f"{array}_{os.environ.get('SLURM_ARRAY_TASK_ID')}" if array else os.environ.get("SLURM_JOB_ID")
    try:
        restarts = int(os.environ.get("SLURM_RESTART_COUNT", "0"))
    except ValueError:
        restarts = 0
    return job, restarts


def _collect_rng_states() -> dict[str, Any]:
    """The random generators' states in types a ``weights_only`` checkpoint load accepts."""
    import random

    import numpy as np
    import torch

    name, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": [
            str(name),
            torch.from_numpy(keys.astype(np.int64)),
            int(pos),
            int(has_gauss),
            float(cached),
        ],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_states(state: Mapping[str, Any]) -> None:
    import random

    import numpy as np
    import torch

    try:
        torch.set_rng_state(state["torch"])
        version, internal, gauss = state["python"]
        random.setstate((version, tuple(internal), gauss))
        name, keys, pos, has_gauss, cached = state["numpy"]
        np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])
    except (KeyError, ValueError, TypeError, RuntimeError) as e:  # another version's layout: not fatal
        log.warning("the checkpoint's random state could not be restored (%s): training goes on", e)


def _run_config(logger: ExpmanLogger, trainer: pl.Trainer, pl_module: Any) -> Any:
    from .context import module_hparams

    config = logger._run_info.get("config")
    if config is None:
        config = module_hparams(pl_module, getattr(trainer, "datamodule", None)) or None
    return config


class RunCheckpointState(BatchlessCallback):
    """Stores the run in every checkpoint; continues the run a restored checkpoint names (see the module)."""

    def __init__(self) -> None:
        self._fit: str | None = None  # this fit's token: its own checkpoints are not a continuation
        self._pending: list[tuple[Any, int]] = []  # (db tracker, run) to supersede when training starts
        self._rng: dict[str, Any] | None = None  # the random state the checkpoint was saved with
        self._ckpt_epoch: int | None = None  # the epoch the restored checkpoint was saved in

    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage == "fit":
            self._fit = uuid.uuid4().hex
            self._pending = []
            self._rng = None
            self._ckpt_epoch = None

    @override
    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        for lg in hooked_loggers(trainer):
            db = lg._db_tracker()
            run = getattr(db, "trial_run_id", None)
            if run is None:
                continue
            job, restarts = _slurm()
            config = _run_config(lg, trainer, pl_module)
            checkpoint[STATE_KEY] = {
                "run_id": int(run),
                "db": db.manager.url,
                "experiment": lg._experiment_name,
                "trial": lg._trial_name,
                "config_hash": config_hash(config),
                "owner": db._owner,
                "fit": self._fit,
                "log_dir": lg.log_dir,
                "slurm_job_id": job,
                "slurm_restart_count": restarts,
                "rng": _collect_rng_states(),
            }
            return

    @override
    def on_load_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        state = checkpoint.get(STATE_KEY)
        if not isinstance(state, Mapping) or state.get("fit") == self._fit:
            return  # no run state, or this fit's own checkpoint (a tuner restoring its start)
        if not trainer.is_global_zero or is_tuning(trainer) or trainer.state.fn != "fit":
            return
        for lg in hooked_loggers(trainer):
            if self._continue(lg, state, config_hash(_run_config(lg, trainer, pl_module))):
                self._rng = state.get("rng")
                self._ckpt_epoch = checkpoint.get("epoch")
                return

    def _continue(self, logger: ExpmanLogger, state: Mapping[str, Any], config: str) -> bool:
        from ..coordination import reclaim

        db = logger._db_tracker()
        current = getattr(db, "trial_run_id", None)
        if current is None:
            return False
        old = int(state["run_id"])
        if state.get("db") != db.manager.url:
            log.warning(
                "checkpoint of trial run %s was recorded in %s, not %s: this fit is recorded as a new run",
                old,
                state.get("db"),
                db.manager.url,
            )
            return False
        if old == current:  # expman run continued the run already (its claim)
            self._pending.append((db, old))
            return True
        if logger._external_manager is not None:
            log.warning(
                "checkpoint of trial run %s restored into trial run %s: its history is not carried over",
                old,
                current,
            )
            return False
        names = _names(db.manager, old)
        if names != (logger._experiment_name, logger._trial_name):
            log.warning(
                "checkpoint of trial run %s (%s) is not of experiment %r trial %r: recorded as a new run",
                old,
                "deleted" if names is None else "/".join(names),
                logger._experiment_name,
                logger._trial_name,
            )
            return False
        if state.get("config_hash") != config:
            log.warning(
                "checkpoint of trial run %s was saved under other hyperparameters: recorded as a new run", old
            )
            return False
        job, restarts = _slurm()
        same_job = job is not None and job == state.get("slurm_job_id")
        take_over = (
            state.get("owner") if same_job and restarts > int(state.get("slurm_restart_count") or 0) else None
        )
        claim = reclaim(db.manager, old, stale_after=db.stale_after, take_over=take_over)
        if claim is None:
            log.warning(
                "trial run %s is running in another process (live lease): this fit is recorded as new run %s",
                old,
                current,
            )
            return False
        db.continue_run(old, claim.owner)
        logger.run_id = old
        self._pending.append((db, old))
        log.info("continuing trial run %s from its checkpoint (attempt recorded in the same row)", old)
        return True

    @override
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        pending, self._pending = self._pending, []
        rng, self._rng = self._rng, None
        if not pending:
            return
        if rng:  # shuffling and dropout go on as in the attempt that saved the checkpoint
            _set_rng_states(rng)
            _redraw_first_iterator(trainer, self._ckpt_epoch)
        epoch = int(trainer.current_epoch)
        step = int(getattr(trainer.fit_loop.epoch_loop, "_batches_that_stepped", trainer.global_step))
        for db, run in pending:
            db.flush()
            supersede(db.manager, run, epoch, step)
        _trim_metrics_logs(trainer, epoch)


def _redraw_first_iterator(trainer: pl.Trainer, ckpt_epoch: int | None) -> None:
    """Create the continued fit's first training iterator again, from the restored random state.

    Lightning creates a fit's first iterator in ``FitLoop.setup_data`` — before ``on_train_start``,
    so before the random state is restored — and every later one after ``on_train_epoch_start``.
    A DataLoader draws from the global generator when its iterator is created (its base seed; with
    workers, the first indices too): drawn again here, a continued fit starting a new epoch
    shuffles as an uninterrupted one does in that epoch. Mid-epoch (SLURM's checkpoints) the
    iterator is left alone.
    """
    fit_loop = trainer.fit_loop
    fetcher = getattr(fit_loop, "_data_fetcher", None)
    if fetcher is None or ckpt_epoch is None or trainer.current_epoch <= int(ckpt_epoch):
        return
    try:
        iter(fetcher)
    except Exception as e:  # Lightning internals moved: shuffling then differs, nothing else
        log.warning("could not restart the training iterator of the continued fit: %s", e)


def _names(manager: Any, run_id: int) -> tuple[str, str] | None:
    from ..db import models as m

    q = (
        m.TrialRun.select(m.Experiment.title, m.Trial.name)
        .join(m.Trial, on=(m.TrialRun.trial == m.Trial.id))
        .join(m.Experiment, on=(m.Trial.experiment == m.Experiment.id))
        .where(m.TrialRun.id == run_id)
        .tuples()
    )
    rows = list(q.execute(manager.database))
    return (rows[0][0], rows[0][1]) if rows else None


def _trim_metrics_logs(trainer: pl.Trainer, epoch: int) -> None:
    """Drop the rows of epochs ``>= epoch`` (and the final row) from the MetricsTracker files."""
    import csv

    from .callbacks import MetricsTracker

    for cb in trainer.callbacks:
        path = getattr(cb, "path", None) if isinstance(cb, MetricsTracker) else None
        if not path or not os.path.isfile(path):
            continue
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            header, rows = reader.fieldnames or [], list(reader)
        keep = [r for r in rows if str(r.get("epoch", "")).isdigit() and int(r["epoch"]) < epoch]
        tmp = f"{path}.tmp"
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=header)
            writer.writeheader()
            writer.writerows(keep)
        os.replace(tmp, path)
