"""A drop-in fit that may be killed and continued: ``python dropin_fit.py SAVE_DIR [CKPT_PATH]``.

``ExpmanLogger(version="main")`` keeps one folder, so ``last.ckpt`` is found again; ``KillAt``
(``EXPMAN_TEST_KILL``) kills the process mid-epoch. Used by tests/test_continuation.py, which also
calls :func:`fit` in its own process for the continuing attempt.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint

from lightning_expman.lightning import ExpmanLogger
from tests.continue_support import KillAt
from tests.tiny import TinyClassifier, TinyDataModule, fast_trainer_kwargs

EPOCHS = 5


def fit(save_dir: str, ckpt_path: str | None = None, **trainer: object) -> ExpmanLogger:
    L.seed_everything(3)
    logger = ExpmanLogger("dropin", "tiny", save_dir=save_dir, version="main")
    kwargs = fast_trainer_kwargs(max_epochs=EPOCHS, limit_train_batches=4, default_root_dir=save_dir)
    kwargs.update(trainer)
    t = L.Trainer(logger=logger, callbacks=[ModelCheckpoint(save_last=True), KillAt()], **kwargs)
    t.fit(TinyClassifier(), datamodule=TinyDataModule(), ckpt_path=ckpt_path)
    logger.close()
    return logger


if __name__ == "__main__":
    fit(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None)
