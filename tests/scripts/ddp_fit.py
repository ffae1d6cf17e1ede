"""A 2-process DDP fit on CPU (gloo) with ExpmanLogger: ``python ddp_fit.py DB_URL SAVE_DIR``.

Lightning's subprocess launcher re-runs this script for rank 1, so everything happens under
``__main__``. Used by tests/test_lightning_ddp.py; only rank zero may write to the database.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root

import lightning as L

from lightning_expman.callbacks import CheckpointCallback
from lightning_expman.lightning import ExpmanLogger
from tests.tiny import ScriptedModel, TinyDataModule, fast_trainer_kwargs


def main(url: str, save_dir: str) -> None:
    logger = ExpmanLogger("ddp", "two-ranks", db=url, save_dir=save_dir)
    trainer = L.Trainer(
        logger=logger,
        callbacks=[CheckpointCallback(interval=1)],
        **fast_trainer_kwargs(strategy="ddp", devices=2, max_epochs=2, num_sanity_val_steps=0),
    )
    trainer.fit(ScriptedModel(val_losses=(0.9, 0.8)), datamodule=TinyDataModule())
    trainer.test(ScriptedModel(), datamodule=TinyDataModule())
    print(f"rank={trainer.global_rank} run_id={logger.run_id} status={logger.status}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
