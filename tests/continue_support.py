"""Helpers of the continuation and reproduce tests (no tests here): a callback that kills its own
process, and a datamodule reading its data from a file.

``KillAt`` reads ``EXPMAN_TEST_KILL=<epoch>:<signal>`` (e.g. ``2:KILL``, ``2:TERM``, ``2:USR1``) so a
config or script is the same in the attempt that dies and in the one that continues it (the
config hash must not change). It waits ~1.5 s first, so the database writer has flushed what the
epoch recorded so far: the continued run must then supersede those rows.
"""

from __future__ import annotations

import os
import signal
import time

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from torch.utils.data import DataLoader, TensorDataset

ENV = "EXPMAN_TEST_KILL"


EPOCH_LOG = "EXPMAN_TEST_EPOCH_LOG"


class KillAt(Callback):
    """Send ``signal`` to this process after the second training batch of epoch ``epoch``.

    With ``EXPMAN_TEST_EPOCH_LOG=<file>`` each epoch this process starts is appended to it as
    ``<pid> <epoch>`` (what a benchmark counts).
    """

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        path = os.environ.get(EPOCH_LOG)
        if path:
            with open(path, "a") as f:
                f.write(f"{os.getpid()} {trainer.current_epoch}\n")

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


class FileDataModule(L.LightningDataModule):
    """TinyDataModule's problem read from a file written by :func:`write_data` (``torch.save``)."""

    def __init__(self, path: str, batch_size: int = 16) -> None:
        super().__init__()
        self.save_hyperparameters()

    def setup(self, stage: str | None = None) -> None:
        self.x, self.y = torch.load(self.hparams.path)

    def _loader(self) -> DataLoader:
        return DataLoader(TensorDataset(self.x, self.y), batch_size=self.hparams.batch_size)

    train_dataloader = val_dataloader = test_dataloader = _loader


def write_data(path: str, seed: int = 0, n: int = 64) -> None:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g)
    torch.save((x, (x[:, 0] + 0.5 * x[:, 1] > 0).long()), path)
