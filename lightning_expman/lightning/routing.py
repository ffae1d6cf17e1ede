"""The metric-routing concern of :class:`~lightning_expman.lightning.logger.ExpmanLogger`.

Lightning hands a logger only metric dicts and step numbers. With
:class:`~lightning_expman.lightning.hooks.LevelHooks` the logger knows the phase (``_phase``, set
by the hooks) and routes each dict exactly:

=================================  ==========================================================
phase                              destination
=================================  ==========================================================
train / eval step                  BATCH: a step series (Lightning applies log_every_n_steps)
train epoch end (fit)              the open EPOCH (validation epoch-end values included)
sanity check                       nowhere: it is not an epoch
before the first epoch (fit)       BATCH at epoch 0 (a LearningRateMonitor in on_train_start)
test / validate                    the run's RESULTS
=================================  ==========================================================

Without hooks (``attach_hooks=False``, or a Trainer built before any ExpmanLogger existed in a
process without the entry point) the fallback uses what Lightning passes: the ``epoch`` key it
adds to every dict, the ``_step`` / ``_epoch`` suffixes of ``on_step=True, on_epoch=True`` metrics,
and how many values a name got in an epoch (once -> an epoch value, several -> a step series).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from lightning.pytorch.utilities.rank_zero import rank_zero_only
from typing_extensions import override

from ..enums import Level, RunStatus

if TYPE_CHECKING:  # pragma: no cover
    from ..tracking.base import TrackerManager

__all__ = ["MetricRouting"]

_STEP_PHASES = frozenset({"train_step", "eval_step"})


class MetricRouting:
    """Mixin of ExpmanLogger: metric dicts -> BATCH / EPOCH / RESULTS (see the module docstring)."""

    manager: TrackerManager
    _run_open: bool
    _hooked: bool
    _stage: str | None
    _phase: str | None
    _epoch: int | None
    _epoch_open: bool
    _fb_epoch: int | None
    _fb_values: dict[str, list[tuple[int | None, Any]]]
    _fb_fit_done: bool

    _ensure_run: Callable[[], None]  # RunLifecycle's

    @override
    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Route one dict of values to BATCH (step series), EPOCH, or the run's RESULTS."""
        if not self._run_open:
            self._ensure_run()
        values = dict(metrics)
        epoch = values.pop("epoch", None)  # Lightning's convenience key, not a metric
        if not values:
            return
        if not self._hooked:
            self._fallback_log(values, step, epoch)
            return
        phase = self._phase
        manager = self.manager
        if phase in _STEP_PHASES:
            manager.track_dict(values, step, level=Level.BATCH, epoch=self._epoch)
        elif phase == "train_epoch" and self._stage == "fit":
            idx = int(epoch) if epoch is not None else self._epoch
            manager.track_dict(values, step, level=Level.EPOCH, epoch=idx)
        elif phase == "sanity":
            return
        elif phase is None and self._stage == "fit" and self._epoch is None:
            # Before the first epoch (e.g. a LearningRateMonitor in on_train_start): a step point.
            manager.track_dict(values, step, level=Level.BATCH, epoch=0)
        else:
            manager.track_dict(values, None, level=Level.TRIAL_RUN)

    @rank_zero_only
    def log_per_label(self, name: str, values: Any, labels: Sequence[str] | None = None) -> None:
        """Record a per-label metric: a vector (torchmetrics with ``average=None``) or ``{label: value}``.

        ``LightningModule.log`` takes scalars only, so call this from the module, typically at
        epoch end. While fitting the value lands on the current epoch (nothing is recorded during
        the sanity check); in ``test()`` / ``validate()`` it becomes a RESULTS metric of the run.
        The stored total is the mean over labels.

        Example:
            >>> def on_validation_epoch_end(self):
            ...     per_class = self.val_f1.compute()  # MulticlassF1Score(average=None)
            ...     self.log("val_f1", per_class.mean())
            ...     self.logger.log_per_label("val_f1_per_class", per_class, labels=self.class_names)
        """
        if self._phase == "sanity":
            return
        self._ensure_run()
        fitting = self._stage == "fit" if self._hooked else not self._fb_fit_done
        epoch = self._epoch if self._hooked else self._fb_epoch
        if not fitting:
            self.manager.track(name, values, labels=labels, level=Level.TRIAL_RUN)
        elif epoch is not None:  # None: the sanity check, seen without LevelHooks
            self.manager.track(name, values, labels=labels, level=Level.EPOCH, epoch=epoch)

    # ------------------------------------------------------------------ fallback (no hooks)
    def _fallback_log(self, values: dict[str, Any], step: int | None, epoch: Any) -> None:
        """Classify values from what Lightning passes when no LevelHooks tells the phase."""
        manager = self.manager
        if self._fb_fit_done:
            # After the fit: evaluation results of the same run.
            manager.track_dict(values, None, level=Level.TRIAL_RUN)
            return
        if epoch is None:
            # No Lightning epoch key: a direct call (or a user-logged "step"): take it as given.
            level = Level.BATCH if step is not None else Level.TRIAL_RUN
            manager.track_dict(values, step, level=level, epoch=self._fb_epoch)
            return
        idx = int(epoch)
        if idx != self._fb_epoch:
            self._fallback_resolve_epoch()
            self._fb_epoch = idx
        steps = {k: v for k, v in values.items() if k.endswith("_step")}
        epochs = {k: v for k, v in values.items() if k.endswith("_epoch")}
        if steps:
            manager.track_dict(steps, step, level=Level.BATCH, epoch=self._fb_epoch)
        if epochs and self._fb_epoch is not None:
            self._fallback_open_epoch()
            manager.track_dict(epochs, step, level=Level.EPOCH, epoch=self._fb_epoch)
        for name, value in values.items():
            if name not in steps and name not in epochs:
                self._fb_values.setdefault(name, []).append((step, value))

    def _fallback_open_epoch(self) -> None:
        if not self._epoch_open or self._epoch != self._fb_epoch:
            manager = self.manager
            if self._epoch_open:
                manager.on_end(Level.EPOCH, status=RunStatus.COMPLETED)
            self._epoch = self._fb_epoch
            manager.on_create(Level.EPOCH, epoch_idx=self._epoch)
            manager.on_start(Level.EPOCH)
            self._epoch_open = True

    def _fallback_resolve_epoch(self) -> None:
        """A name logged once in an epoch is an epoch value; several times, a step series."""
        if not self._fb_values:
            return
        pending, self._fb_values = self._fb_values, {}
        manager = self.manager
        epoch_values = {name: points[0][1] for name, points in pending.items() if len(points) == 1}
        if epoch_values and self._fb_epoch is not None:
            self._fallback_open_epoch()
            manager.track_dict(epoch_values, None, level=Level.EPOCH, epoch=self._fb_epoch)
        for name, points in pending.items():
            if len(points) > 1:
                for step, value in points:
                    manager.track_dict({name: value}, step, level=Level.BATCH, epoch=self._fb_epoch)
