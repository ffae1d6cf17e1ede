"""The ``system`` tracker: CPU, memory and GPU use of a run, sampled into its step series.

While a TRIAL_RUN is open a background thread samples, every ``interval`` seconds:

=====================  =========================================================
series                 what
=====================  =========================================================
``system/cpu_percent``   this process and its children, % of one core (psutil)
``system/rss_mb``        resident memory of this process and its children, MB
``system/gpu{i}_util``   GPU *i* utilisation, % (NVML, when a GPU and pynvml exist)
``system/gpu{i}_mem_mb`` GPU *i* memory in use, MB
=====================  =========================================================

and hands them to the other trackers of its manager as BATCH values whose ``step`` is the
sample's number (0, 1, ...), so they land in the database's step series (and MLflow's metric
history, TensorBoard scalars...) beside the training curves. Sampling costs a few hundred
microseconds per sample on the sampling thread, none on the training thread.

psutil (and nvidia-ml-py for GPUs) are optional: ``pip install 'lightning-expman[system]'``.

Example (env.yaml):

.. code-block:: yaml

    trackers:
      - type: db
      - type: system
        interval: 5        # seconds between samples
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from ..enums import Level
from ..errors import ConfigError
from .base import Tracker

if TYPE_CHECKING:  # pragma: no cover
    from .base import TrackerManager

__all__ = ["SystemTracker", "sample_system"]

log = logging.getLogger(__name__)


def _psutil() -> Any:
    try:
        import psutil
    except ImportError:
        raise ConfigError(
            "the 'system' tracker needs psutil: pip install 'lightning-expman[system]'", key="trackers"
        ) from None
    return psutil


def _gpus() -> list[Any]:
    """NVML device handles ([] without pynvml or GPUs)."""
    try:
        import pynvml

        pynvml.nvmlInit()
        return [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
    except Exception:  # no pynvml, no driver, no GPU: CPU and memory only
        return []


def sample_system(process: Any, gpus: list[Any]) -> dict[str, float]:
    """One sample of ``process`` (a ``psutil.Process``, children included) and the GPUs."""
    procs = [process, *process.children(recursive=True)]
    cpu = rss = 0.0
    for p in procs:
        try:
            cpu += p.cpu_percent(None)
            rss += p.memory_info().rss
        except Exception:  # a child that just ended
            continue
    values = {"system/cpu_percent": cpu, "system/rss_mb": rss / 2**20}
    if gpus:
        import pynvml

        for i, handle in enumerate(gpus):
            values[f"system/gpu{i}_util"] = float(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu)
            values[f"system/gpu{i}_mem_mb"] = pynvml.nvmlDeviceGetMemoryInfo(handle).used / 2**20
    return values


class SystemTracker(Tracker):
    """Sample CPU, memory and GPU use of each open run (see the module docstring).

    Args:
        interval: seconds between samples (> 0).
        gpu: sample GPUs through NVML when available.
    """

    def __init__(self, interval: float = 10.0, gpu: bool = True) -> None:
        if isinstance(interval, bool) or not isinstance(interval, int | float) or interval <= 0:
            raise ConfigError(f"system tracker: interval must be a number of seconds > 0, got {interval!r}")
        _psutil()  # fail at build time, with the extra to install
        self.interval = float(interval)
        self.gpu = gpu
        self._manager: TrackerManager | None = None
        self._stop: threading.Event | None = None
        self._thread: threading.Thread | None = None

    def attach(self, manager: TrackerManager) -> None:
        self._manager = manager

    def __getstate__(self) -> dict[str, Any]:
        return {"interval": self.interval, "gpu": self.gpu, "_manager": None, "_stop": None, "_thread": None}

    def on_start(self, level: Level, **kwargs: Any) -> None:
        if Level(level) is Level.TRIAL_RUN and self._manager is not None and self._thread is None:
            self._stop = threading.Event()
            self._thread = threading.Thread(
                target=self._run, args=(self._manager, self._stop), name="expman-system", daemon=True
            )
            self._thread.start()

    def on_end(self, level: Level, **kwargs: Any) -> None:
        if Level(level) is Level.TRIAL_RUN:
            self.close()

    def close(self) -> None:
        thread, stop = self._thread, self._stop
        self._thread = self._stop = None
        if stop is not None:
            stop.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=30)

    def _run(self, manager: TrackerManager, stop: threading.Event) -> None:
        process = _psutil().Process()
        gpus = _gpus() if self.gpu else []
        sample_system(process, gpus)  # primes cpu_percent (its first call has no interval to measure)
        step = 0
        while not stop.wait(self.interval):
            try:
                manager.track_dict(sample_system(process, gpus), step=step, level=Level.BATCH)
            except Exception as e:  # a missed sample is not lost training data
                log.warning("system tracker: sample %d failed: %s", step, e)
            step += 1
