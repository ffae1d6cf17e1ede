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

How a Trainer gets it. Lightning adds to every Trainer the callbacks returned by the factories
registered under the ``lightning.pytorch.callbacks_factory`` entry-point group
(``trainer/connectors/callback_connector.py``, ``_configure_external_callbacks``); this package
registers a factory there (pyproject.toml; ``lightning_expman/_lightning_entry.py``, which
imports nothing and returns no callbacks in a process that never imported ExpmanLogger, so
other programs' Trainers pay nothing), which returns :func:`callbacks_factory`'s :class:`LevelHooks`
and a :class:`~lightning_expman.lightning.continuation.RunCheckpointState`. Both stay inert
unless an :class:`ExpmanLogger` (with ``attach_hooks=True``) is among ``trainer.loggers``: a
Trainer without one pays one ``isinstance`` scan per stage. At ``setup`` the active LevelHooks
moves itself and RunCheckpointState to the front of ``trainer.callbacks`` (levels open before
other callbacks log) and drops duplicates, so adding them explicitly is harmless.

Where the package's metadata lacks the entry point (run from a source tree on ``sys.path``, or an
install older than the entry point), :func:`ensure_callbacks_factory` -- called by every
ExpmanLogger constructor -- registers the same factory in-process, through the documented
``importlib.metadata`` extension point (a ``DistributionFinder`` on ``sys.meta_path``). A Trainer
always gets its logger after the logger was built, so it sees the factory either way. Nothing
inspects stack frames.

Example:
    >>> import lightning as L
    >>> from lightning_expman import ExpmanLogger
    >>> from lightning_expman.lightning.hooks import LevelHooks
    >>> trainer = L.Trainer(logger=ExpmanLogger("digits"), callbacks=[LevelHooks()])
"""

from __future__ import annotations

import importlib.metadata as metadata
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback
from typing_extensions import override

if TYPE_CHECKING:
    from .logger import ExpmanLogger

__all__ = [
    "ENTRY_POINT_GROUP",
    "BatchlessCallback",
    "LevelHooks",
    "callbacks_factory",
    "ensure_callbacks_factory",
    "expman_loggers",
    "hooked_loggers",
]

ENTRY_POINT_GROUP = "lightning.pytorch.callbacks_factory"
# What the entry point names: a module that imports nothing, see lightning_expman/_lightning_entry.py.
_FACTORY = "lightning_expman._lightning_entry:callbacks_factory"


def expman_loggers(trainer: pl.Trainer) -> list[ExpmanLogger]:
    """The :class:`ExpmanLogger` instances among ``trainer.loggers``."""
    from .logger import ExpmanLogger

    return [lg for lg in trainer.loggers if isinstance(lg, ExpmanLogger)]


def hooked_loggers(trainer: pl.Trainer) -> list[ExpmanLogger]:
    """The ExpmanLoggers of ``trainer`` that follow its hooks (``attach_hooks=True``)."""
    return [lg for lg in expman_loggers(trainer) if lg._attach_hooks]


def callbacks_factory() -> list[Callback]:
    """The ``lightning.pytorch.callbacks_factory`` entry point: the callbacks every Trainer gets.

    Both are inert on a Trainer without an ExpmanLogger (see the module docstring).
    """
    from .continuation import RunCheckpointState

    return [LevelHooks(), RunCheckpointState()]


class _FactoryDistribution(metadata.Distribution):
    """In-process metadata declaring :func:`callbacks_factory` (see :func:`ensure_callbacks_factory`)."""

    _FILES = {
        "METADATA": "Metadata-Version: 2.1\nName: lightning-expman-hooks\nVersion: 0\n",
        "entry_points.txt": f"[{ENTRY_POINT_GROUP}]\nlightning_expman = {_FACTORY}\n",
    }

    def read_text(self, filename: str) -> str | None:
        return self._FILES.get(filename)

    def locate_file(self, path: Any) -> Any:
        return path


class _FactoryFinder(metadata.DistributionFinder):
    def find_spec(self, *args: Any, **kwargs: Any) -> None:
        return None  # finds no modules, only the distribution above

    def find_distributions(self, context: Any = None) -> Iterator[metadata.Distribution]:
        if getattr(context, "path", sys.path) is not sys.path:
            return  # a search of given folders (an installer's), not of this interpreter's path
        name = getattr(context, "name", None)
        if name is None or name.replace("_", "-").lower() == "lightning-expman-hooks":
            yield _FactoryDistribution()


_FINDER: _FactoryFinder | None = None


def ensure_callbacks_factory() -> None:
    """Make sure Trainers built from now on get :func:`callbacks_factory`'s callbacks.

    Installed, the package's metadata declares the entry point and this does nothing (one scan
    of the entry points, once per process). Otherwise the factory is declared in-process.
    """
    global _FINDER
    if _FINDER is not None:
        return
    _FINDER = _FactoryFinder()
    if not any(ep.value == _FACTORY for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)):
        sys.meta_path.append(_FINDER)


class BatchlessCallback(Callback):
    """A callback with no per-batch hooks: the base of the callbacks every Trainer carries.

    Lightning calls every hook of every callback on every batch, unless the attribute is not
    callable (``_call_callback_hooks`` checks ``callable(fn)``); setting them to ``None`` means
    the training loop pays nothing per batch for a callback that works per epoch.
    """

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


class LevelHooks(BatchlessCallback):
    """Forward Trainer hooks to the trainer's ExpmanLoggers as level events (see module docstring).

    Its only state is the list of the trainer's ExpmanLoggers (rank zero), refreshed at every
    ``setup``: a Trainer carrying it pickles, and one instance serves any number of fits. Inert
    on a Trainer without an ExpmanLogger, and when another LevelHooks precedes it.
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
        loggers = hooked_loggers(trainer)
        self._loggers = []
        if not loggers or not self._take_the_lead(trainer, pl_module, stage):
            return
        for lg in loggers:
            lg._bind_trainer(trainer)
        from .continuation import is_tuning

        # A Tuner call (lr_find, scale_batch_size) is a fit that ends after tuning: it records nothing.
        self._loggers = loggers if trainer.is_global_zero and not is_tuning(trainer) else []
        self._each(trainer, "_on_stage_setup", trainer, pl_module, str(getattr(stage, "value", stage)))

    def _take_the_lead(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> bool:
        """Put this LevelHooks and one RunCheckpointState first in ``trainer.callbacks``, drop their
        duplicates; ``False`` when another LevelHooks leads (this one stays inert)."""
        from .continuation import RunCheckpointState

        ours = (LevelHooks, RunCheckpointState)
        leader = next(cb for cb in trainer.callbacks if isinstance(cb, LevelHooks))
        if leader is not self:
            return False
        state = next((cb for cb in trainer.callbacks if isinstance(cb, RunCheckpointState)), None)
        if state is None:  # LevelHooks given explicitly where the factory did not run
            state = RunCheckpointState()
            state.setup(trainer, pl_module, stage)
        # A new list: Lightning is iterating the old one to call this very hook, and its iteration
        # must go on over the same callbacks. The next hooks see the new order.
        trainer.callbacks = [self, state, *(cb for cb in trainer.callbacks if not isinstance(cb, ours))]
        return True

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
