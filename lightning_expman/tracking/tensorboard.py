"""The TensorBoard tracker: scalars per trial run, and hparams with the final metrics.

Each TRIAL_RUN writes to ``<log_dir>/<experiment>/<trial>/version_<n>`` (the next free ``n``):

* BATCH values -> scalar ``<name>`` at the global step;
* EPOCH values -> scalar ``epoch/<name>`` at the epoch index (its own axis, so a name logged
  both per step and per epoch does not mix two x axes);
* TRIAL_RUN values (results, e.g. test metrics) -> scalar ``results/<name>``;
* per-label values -> ``<tag>/<label>``;
* at the run's end: the hparams (the run's params, repeat index, seed) with the last value of
  every epoch and results metric as ``hparams/<name>``, shown in TensorBoard's HPARAMS tab.

TensorBoard is an optional dependency (``pip install lightning-expman[tensorboard]``);
``torch.utils.tensorboard`` is imported when the first run starts.

Example:
    >>> from lightning_expman.tracking.tensorboard import TensorBoardTracker
    >>> tracker = TensorBoardTracker(workspace="outputs")   # outputs/tensorboard/...
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..db.values import flatten as flatten_params
from ..enums import Level, RunStatus
from ..masking import mask_secrets
from .base import Tracker

__all__ = ["TensorBoardTracker"]

log = logging.getLogger(__name__)


def _summary_writer() -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as e:
        raise ImportError(
            "the 'tensorboard' tracker needs TensorBoard: pip install lightning-expman[tensorboard]"
        ) from e
    return SummaryWriter


def _safe(name: str) -> str:
    return re.sub(r"[^\w.\-]+", "_", name).strip("_") or "default"


def _hparam(value: Any) -> Any:
    if isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


class TensorBoardTracker(Tracker):
    """Write TensorBoard event files: one run directory per trial run.

    Args:
        log_dir: root folder; default ``<workspace>/tensorboard`` (``expman_runs/tensorboard``
            without a workspace).
        workspace: the experiment workspace.

    Attributes:
        run_dir: the open (or last) run's directory.

    Example:
        >>> tracker = TensorBoardTracker("tb_logs")
        >>> # tensorboard --logdir tb_logs
    """

    def __init__(self, log_dir: str | Path | None = None, *, workspace: str | Path | None = None) -> None:
        if log_dir is None:
            log_dir = Path(workspace if workspace is not None else "expman_runs") / "tensorboard"
        self.log_dir = Path(log_dir)
        self.run_dir: Path | None = None
        self._experiment = "default"
        self._trial = "default"
        self._epoch: int | None = None
        self._writer: Any = None
        self._hparams: dict[str, Any] = {}
        self._final: dict[str, float] = {}

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_writer"] = None
        return state

    # ------------------------------------------------------------------ lifecycle

    def on_create(self, level: Level, **kwargs: Any) -> None:
        level = Level(level)
        if level is Level.EXPERIMENT:
            self._experiment = _safe(str(kwargs.get("name") or "default"))
        elif level is Level.TRIAL:
            self._trial = _safe(str(kwargs.get("name") or "default"))
        elif level is Level.TRIAL_RUN:
            self._open_run(kwargs)
        elif level is Level.EPOCH:
            epoch = kwargs.get("epoch_idx", kwargs.get("epoch"))
            self._epoch = int(epoch) if epoch is not None else (0 if self._epoch is None else self._epoch + 1)

    def _open_run(self, kwargs: Mapping[str, Any]) -> None:
        writer_cls = _summary_writer()
        self._close_writer()
        parent = self.log_dir / self._experiment / self._trial
        n = 0
        while (parent / f"version_{n}").exists():
            n += 1
        self.run_dir = parent / f"version_{n}"
        self.run_dir.mkdir(parents=True)
        self._writer = writer_cls(log_dir=str(self.run_dir))
        self._epoch = None
        self._final = {}
        self._hparams = {k: kwargs[k] for k in ("repeat_idx", "seed") if kwargs.get(k) is not None}
        if kwargs.get("config"):
            self._hparams.update(flatten_params(mask_secrets(kwargs["config"])))

    def on_end(self, level: Level, **kwargs: Any) -> None:
        level = Level(level)
        if level is Level.EPOCH:
            self.flush()
        elif level is Level.TRIAL_RUN and self._writer is not None:
            status = RunStatus.parse(kwargs.get("status") or RunStatus.COMPLETED)
            self._write_hparams(status)
            self._close_writer()

    def _write_hparams(self, status: RunStatus) -> None:
        from torch.utils.tensorboard.summary import hparams

        hparam_dict = {k: _hparam(v) for k, v in self._hparams.items()}
        hparam_dict["status"] = status.value
        metric_dict = {f"hparams/{k}": v for k, v in self._final.items()}
        exp, ssi, sei = hparams(hparam_dict, metric_dict)
        file_writer = self._writer._get_file_writer()
        for summary in (exp, ssi, sei):
            file_writer.add_summary(summary)
        for key, value in metric_dict.items():
            self._writer.add_scalar(key, value, 0)

    # ------------------------------------------------------------------ metrics

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
        """Write one scalar (and ``<tag>/<label>`` scalars for per-label values)."""
        values: dict[str, float | None] = {metric: value}
        if per_label:
            values.update({f"{metric}/{k}": v for k, v in per_label.items()})
        self.track_dict(values, step, level=level, epoch=epoch)

    def track_dict(
        self,
        metrics: Mapping[str, float | None],
        step: int | None = None,
        *,
        level: Level | None = None,
        epoch: int | None = None,
    ) -> None:
        """Write scalars for the open run (see the module docstring for tags and axes)."""
        writer = self._writer
        if writer is None:
            log.debug("TensorBoardTracker: metrics %s outside a run: not written", sorted(metrics))
            return
        if level is Level.BATCH or (level is None and step is not None):
            prefix, x = "", step or 0
        elif level is Level.EPOCH:
            prefix, x = "epoch/", epoch if epoch is not None else (self._epoch or 0)
        else:
            prefix, x = "results/", step or 0
        for name, value in metrics.items():
            if value is None:
                continue
            writer.add_scalar(prefix + name, value, x)
            if prefix:
                self._final[name] = value

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Remember params for the run's hparams entry (written at the run's end)."""
        self._hparams.update(flatten_params(mask_secrets(params)))

    # ------------------------------------------------------------------ flush / close

    def _close_writer(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()

    def flush(self) -> None:
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        """Close the open run's event file."""
        self._close_writer()
