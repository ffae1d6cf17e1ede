"""``python ddp_spawn_fit.py DB_URL SAVE_DIR``: a 2-process ``ddp_spawn`` fit on CPU, then a test,
then (after ``logger.close()``) a validate, then a test in the main process.

Mirrors Lightning's ``test_logger_initialization`` (``tests_pytorch/loggers/test_all.py``): on
rank zero the logger's ``experiment`` is the real tracker manager, on other ranks a dummy
whose methods do nothing. Prints what the main process sees after each stage.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root

import lightning as L
from lightning.fabric.loggers.logger import _DummyExperiment

from lightning_expman.lightning import ExpmanLogger
from tests.tiny import TinyClassifier, TinyDataModule, fast_trainer_kwargs


class RankZeroLoggerCheck(L.Callback):
    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        is_dummy = isinstance(trainer.logger.experiment, _DummyExperiment)
        assert is_dummy != trainer.is_global_zero, (trainer.global_rank, is_dummy)
        if not trainer.is_global_zero:
            assert pl_module.logger.experiment.something(foo="bar") is None


def main(url: str, save_dir: str) -> None:
    logger = ExpmanLogger("spawn", "two-ranks", db=url, save_dir=save_dir)
    trainer = L.Trainer(
        logger=logger,
        callbacks=[RankZeroLoggerCheck()],
        **fast_trainer_kwargs(strategy="ddp_spawn", devices=2, max_epochs=1, num_sanity_val_steps=0),
    )
    trainer.fit(TinyClassifier(), datamodule=TinyDataModule())
    print(f"after fit: run_id={logger.run_id} status={logger.status}", flush=True)
    trainer.test(TinyClassifier(), datamodule=TinyDataModule())
    print(f"after test: run_id={logger.run_id} status={logger.status}", flush=True)
    logger.close()  # the fit's run is over: a later stage is a run of its own
    trainer.validate(TinyClassifier(), datamodule=TinyDataModule())
    print(f"after validate: run_id={logger.run_id} status={logger.status}", flush=True)
    # Not spawned: joins the validate's run, as a test after a fit in one process does.
    local = L.Trainer(logger=logger, **fast_trainer_kwargs(devices=1, max_epochs=1))
    local.test(TinyClassifier(), datamodule=TinyDataModule())
    print(f"after local test: run_id={logger.run_id} status={logger.status}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
