"""Spawned fits (``strategy="ddp_spawn"``, ``ddp_fork``, ``ddp_notebook``): the run handed back.

With a multiprocessing launcher Lightning runs ``fit`` / ``test`` in worker processes that get a
pickled copy of the Trainer (and so of the logger) and exits them when the stage ends; it sends
back only the trainer state, the best checkpoint path and ``callback_metrics``
(``_MultiProcessingLauncher._collect_rank_zero_results`` / ``update_main_process_results``), and
a logger has no part in that exchange. So global rank zero of the workers writes the run's
identity to ``<log_dir>/.expman-run.json`` each time it changes (opened, settled, ended), and

* the main process's logger reads it lazily: ``logger.run_id`` / ``logger.status`` after a
  spawned ``fit`` are the run the workers recorded;
* a later spawned ``trainer.test()`` / ``validate()`` with the same logger reattaches to that run
  (its RESULTS land on it, as without spawning) while the run awaits its test: until the next fit
  of the logger or ``logger.close()``. A failed or interrupted fit ended its run: a later test
  opens its own, as it does without spawning.

The main process fixes the log folder (``version``) when it pickles the logger for the workers,
so every stage of one logger uses the same folder. The file names the logger instance (a token
made in ``__init__``), so two loggers sharing a folder never adopt each other's runs. Only the
database tracker reattaches; other trackers (MLflow...) record the test as a run of their own.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

__all__ = ["HANDOFF_FILE", "in_spawned_worker", "read_handoff", "write_handoff"]

HANDOFF_FILE = ".expman-run.json"


def in_spawned_worker(trainer: Any) -> bool:
    """Whether ``trainer`` runs its stages in processes its launcher started (spawn, fork...)."""
    if trainer is None:
        return False
    from lightning.pytorch.strategies.launchers.multiprocessing import _MultiProcessingLauncher

    return isinstance(getattr(trainer.strategy, "launcher", None), _MultiProcessingLauncher)


def write_handoff(log_dir: str, state: dict[str, Any]) -> None:
    """Write ``state`` (token, run id, status, lease owner, open...) atomically into ``log_dir``."""
    os.makedirs(log_dir, exist_ok=True)
    path = os.path.join(log_dir, HANDOFF_FILE)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump({**state, "at": time.time()}, f)
    os.replace(tmp, path)


def read_handoff(log_dir: str, token: str) -> dict[str, Any] | None:
    """The state a worker wrote for the logger ``token``, or ``None`` (none, another logger's, unreadable)."""
    try:
        with open(os.path.join(log_dir, HANDOFF_FILE), encoding="utf-8") as f:
            state = json.load(f)
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) and state.get("token") == token else None
