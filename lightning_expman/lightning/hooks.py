"""Trainer hooks -> experiment levels: the :class:`LevelHooks` callback.

Lightning tells a logger *what* was logged but not *when* (which loop, which phase, whether a
value is a step value or an epoch aggregate, whether the fit failed or was interrupted).
:class:`LevelHooks` forwards the Trainer's hooks to every :class:`ExpmanLogger` of the trainer:

====================================  =====================================================
Trainer hook                          level event
====================================  =====================================================
``setup(stage)``                      TRIAL_RUN opens for ``fit`` (results of validate/test
                                      land on the open run, or a run opened for them)
``on_fit_start`` / ``on_fit_end``     PIPELINE (stage ``fit``); validate/test likewise
``on_train_epoch_start``              EPOCH ``epoch_idx`` opens (the previous one ends)
``on_validation_epoch_end``           the epoch's validation metrics land on that EPOCH
``on_train_epoch_end``                the epoch-level train metrics land on that EPOCH
(values logged between)              BATCH: step values (Lightning applies log_every_n_steps);
                                      no per-batch hook runs (see the end of the class)
``on_exception``                      FAILED with the error text; ABORTED for
                                      KeyboardInterrupt and SIGTERM (``SIGTERMException``)
====================================  =====================================================

Sanity-check validation is ignored: it is not an epoch. Only global rank zero forwards.
:class:`ExpmanLogger` attaches this callback itself when Lightning hands it the trainer, so a
plain ``Trainer(logger=ExpmanLogger(...))`` needs nothing else; adding it explicitly is harmless
(it is never attached twice).

Example:
    >>> import lightning as L
    >>> from lightning_expman import ExpmanLogger
    >>> from lightning_expman.lightning.hooks import LevelHooks
    >>> trainer = L.Trainer(logger=ExpmanLogger("digits"), callbacks=[LevelHooks()])
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback
from typing_extensions import override

if TYPE_CHECKING:
    from .logger import ExpmanLogger

__all__ = ["LevelHooks", "expman_loggers"]


def expman_loggers(trainer: pl.Trainer) -> list[ExpmanLogger]:
    """The :class:`ExpmanLogger` instances among ``trainer.loggers``."""
    from .logger import ExpmanLogger

    return [lg for lg in trainer.loggers if isinstance(lg, ExpmanLogger)]


class LevelHooks(Callback):
    """Forward Trainer hooks to the trainer's ExpmanLoggers as level events (see module docstring).

    Its only state is the list of the trainer's ExpmanLoggers (rank zero), refreshed at every
    ``setup``: a Trainer carrying it pickles, and one instance serves any number of fits.
    """

    def __init__(self) -> None:
        self._loggers: list[ExpmanLogger] = []  # rank zero's ExpmanLoggers, found at setup

    def _each(self, trainer: pl.Trainer, method: str, *args: Any, **kwargs: Any) -> None:
        # The loggers are looked up once per stage, at setup, and other ranks have none (they
        # never write).
        for lg in self._loggers:
            getattr(lg, method)(*args, **kwargs)

    # ------------------------------------------------------------------ stages
    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        # Every rank must know the trainer (artifact dirs, stop detection); only rank 0 opens a run.
        loggers = expman_loggers(trainer)
        for lg in loggers:
            lg._bind_trainer(trainer)
        from .continuation import is_tuning

        # A Tuner call (lr_find, scale_batch_size) is a fit that ends after tuning: it records nothing.
        self._loggers = loggers if trainer.is_global_zero and not is_tuning(trainer) else []
        self._each(trainer, "_on_stage_setup", trainer, pl_module, str(getattr(stage, "value", stage)))

    @override
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._each(trainer, "_on_pipeline_start", "fit", trainer, pl_module)

    @override
    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._each(trainer, "_on_pipeline_end", "fit", trainer)

    @override
    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            self._each(trainer, "_set_phase", "sanity")
        elif trainer.state.fn == "validate":
            self._each(trainer, "_on_pipeline_start", "validate", trainer, pl_module)

    @override
    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        if trainer.state.fn == "validate":
            self._each(trainer, "_on_pipeline_end", "validate", trainer)
        else:  # validation inside a fit (mid-epoch with val_check_interval < 1): training goes on
            self._each(trainer, "_set_phase", "train_step")

    @override
    def on_test_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._each(trainer, "_on_pipeline_start", "test", trainer, pl_module)

    @override
    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._each(trainer, "_on_pipeline_end", "test", trainer)

    # ------------------------------------------------------------------ epochs and phases
    @override
    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._each(trainer, "_on_epoch_start", trainer.current_epoch)
        # Lightning logs step values every log_every_n_steps: they become BATCH points (a step
        # series), not per-batch entities.
        self._each(trainer, "_set_phase", "train_step")

    @override
    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._each(trainer, "_set_phase", "eval_step")

    @override
    def on_test_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._each(trainer, "_set_phase", "eval_step")

    @override
    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Lightning logs the epoch-level validation metrics after this hook: during a fit they
        # belong to the open training epoch, in trainer.validate() they are results.
        if trainer.sanity_checking:
            return
        self._each(trainer, "_set_phase", "train_epoch" if trainer.state.fn == "fit" else "eval_epoch")

    @override
    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._each(trainer, "_set_phase", "eval_epoch")

    @override
    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # The epoch-level train metrics are logged after every on_train_epoch_end hook; the EPOCH
        # itself ends when the next one starts or the fit ends, so they still land on it.
        self._each(trainer, "_set_phase", "train_epoch")

    # ------------------------------------------------------------------ failures
    @override
    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        # Lightning then calls logger.finalize("failed") for every exception, Ctrl-C included;
        # remembering the exception lets the logger tell FAILED from ABORTED.
        self._each(trainer, "_record_exception", exception)

    # ------------------------------------------------------------------ per-batch hooks: none
    # Lightning calls every hook of every callback on every batch, unless the attribute is not
    # callable (``_call_callback_hooks`` checks ``callable(fn)``). Phases are set once per epoch
    # above, so the training loop pays nothing per batch for these hooks.
    on_train_batch_start = None  # type: ignore[assignment]
    on_train_batch_end = None  # type: ignore[assignment]
    on_validation_batch_start = None  # type: ignore[assignment]
    on_validation_batch_end = None  # type: ignore[assignment]
    on_test_batch_start = None  # type: ignore[assignment]
    on_test_batch_end = None  # type: ignore[assignment]
    on_predict_batch_start = None  # type: ignore[assignment]
    on_predict_batch_end = None  # type: ignore[assignment]
    on_before_backward = None  # type: ignore[assignment]
    on_after_backward = None  # type: ignore[assignment]
    on_before_optimizer_step = None  # type: ignore[assignment]
    on_before_zero_grad = None  # type: ignore[assignment]
