"""Helpers of the continuation tests (no tests here): a callback that kills its own process.

``KillAt`` reads ``EXPMAN_TEST_KILL=<epoch>:<signal>`` (e.g. ``2:KILL``, ``2:TERM``, ``2:USR1``) so a
config or script is the same in the attempt that dies and in the one that continues it (the
config hash must not change). It waits ~1.5 s first, so the database writer has flushed what the
epoch recorded so far: the continued run must then supersede those rows.
"""

from __future__ import annotations

import os
import signal
import time

from lightning.pytorch.callbacks import Callback

ENV = "EXPMAN_TEST_KILL"


class KillAt(Callback):
    """Send ``signal`` to this process after the second training batch of epoch ``epoch``."""

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        spec = os.environ.get(ENV)
        if not spec or batch_idx != 1:
            return
        epoch, _, name = spec.partition(":")
        if trainer.current_epoch != int(epoch):
            return
        time.sleep(1.5)
        os.kill(os.getpid(), getattr(signal, f"SIG{name or 'KILL'}"))
        if name == "USR1":
            os.environ.pop(ENV)  # requeue signal handled: train on until the scheduler kills us
            time.sleep(0.5)
