"""Pruning from a Lightning fit: :class:`PruningCallback` reports the monitored metric to the
Optuna trial after every validation and stops the fit when the pruner says so.

Decisions:

* The fit is **stopped, not aborted**: the callback sets ``trainer.should_stop`` (the epoch in
  progress ends normally and is recorded); :class:`~lightning_expman.ExpmanLogger` ends the run
  ``PRUNED`` (it reads :attr:`PruningCallback.pruned_epoch`) and the planner tells Optuna. A
  pruned run keeps every epoch it trained.
* **Repeats.** Only the first repeat of a trial reports intermediate values (Optuna keeps one
  value per step, and repeat 1 is what the pruner compares across trials). When repeat 1 is
  pruned the trial is PRUNED and its other repeats are not run; when it is not, the other
  repeats run to the end and the trial's value is the mean over all of them.
* **DDP.** Global rank zero (the launching process, where the planner registered the trial)
  reports and decides; the decision is broadcast (``trainer.strategy.broadcast``) so that every
  rank stops at the same epoch: a rank that went on alone would wait forever in the next
  gradient all-reduce. Tested with ``ddp``, 2 CPU processes (gloo). Under ``ddp_spawn`` rank
  zero is a spawned process where no trial is registered: nothing is reported there.
* The callback is added to the sampled trial's ``callbacks:`` settings as a class path (it is
  visible in the stored config); it is a no-op when no trial is registered in this process
  (repeats 2..n, a re-run by hand).
"""

from __future__ import annotations

from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer
from typing_extensions import override

__all__ = ["PruningCallback", "active", "pruned_epoch"]

_ACTIVE: dict[tuple[str, int], Any] = {}  # (study, trial number) -> optuna.Trial reporting now
_PRUNED: dict[tuple[str, int], int] = {}  # (study, trial number) -> epoch the fit was pruned at


class active:
    """Register ``trial`` (an ``optuna.Trial``) as the one this process's fit reports to."""

    def __init__(self, study: str, trial: Any) -> None:
        self.key = (study, trial.number)
        self.trial = trial

    def __enter__(self) -> None:
        _PRUNED.pop(self.key, None)
        _ACTIVE[self.key] = self.trial

    def __exit__(self, *exc: Any) -> None:
        _ACTIVE.pop(self.key, None)


def pruned_epoch(study: str, number: int) -> int | None:
    """The epoch at which trial ``number``'s fit was pruned here (read once; ``None``: not pruned)."""
    return _PRUNED.pop((study, number), None)


class PruningCallback(Callback):
    """Report ``monitor`` per epoch to Optuna trial ``trial`` of ``study``; stop the fit when pruned.

    Args:
        study: the study name (``<experiment>/<trial>``).
        trial: the Optuna trial number.
        monitor: the logged metric reported (the search's metric).
    """

    def __init__(self, study: str, trial: int, monitor: str) -> None:
        self.study = study
        self.trial = int(trial)
        self.monitor = monitor
        self.pruned_epoch: int | None = None  # read by ExpmanLogger: the run ends PRUNED

    @override
    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.pruned_epoch = None

    @override
    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking:
            return
        optuna_trial = _ACTIVE.get((self.study, self.trial))
        prune = False
        if optuna_trial is not None and trainer.is_global_zero:
            value = trainer.callback_metrics.get(self.monitor)
            if value is not None:
                optuna_trial.report(float(value), step=trainer.current_epoch)
                prune = bool(optuna_trial.should_prune())
        prune = bool(trainer.strategy.broadcast(prune))
        if prune:
            trainer.should_stop = True
            self.pruned_epoch = trainer.current_epoch
            _PRUNED[(self.study, self.trial)] = trainer.current_epoch
