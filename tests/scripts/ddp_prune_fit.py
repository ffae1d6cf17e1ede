"""A 2-process DDP fit on CPU (gloo) whose search trial is pruned: ``ddp_prune_fit.py DB_URL SAVE_DIR``.

Rank zero (this process) creates a one-trial Optuna study whose pruner prunes from step 1 on and
registers the trial, as the search planner does; Lightning's subprocess launcher re-runs this
script for rank 1 (``LOCAL_RANK`` set), where no trial is registered: it stops only because rank
zero's decision is broadcast. Used by tests/test_search_ddp.py.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root

import lightning as L
import optuna

from lightning_expman.lightning import ExpmanLogger
from lightning_expman.search.planner import optuna_url
from lightning_expman.search.pruning import PruningCallback, active
from tests.tiny import TinyClassifier, TinyDataModule, fast_trainer_kwargs

STUDY = "ddp/s"


def main(url: str, save_dir: str) -> None:
    callback = PruningCallback(STUDY, 0, "val_loss")
    logger = ExpmanLogger("ddp", "pruned", db=url, save_dir=save_dir)
    trainer = L.Trainer(
        logger=logger,
        callbacks=[callback],
        **fast_trainer_kwargs(strategy="ddp", devices=2, max_epochs=6, num_sanity_val_steps=0),
    )
    registered = contextlib.nullcontext()
    if "LOCAL_RANK" not in os.environ:  # rank zero, before the launcher starts rank 1
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        pruner = optuna.pruners.ThresholdPruner(upper=0.0, n_warmup_steps=1)  # val_loss > 0: pruned at 1
        study = optuna.create_study(study_name=STUDY, storage=optuna_url(url), pruner=pruner)
        registered = active(STUDY, study.ask())
    with registered:
        trainer.fit(TinyClassifier(), datamodule=TinyDataModule())
    print(
        f"rank={trainer.global_rank} epochs={trainer.current_epoch} pruned_epoch={callback.pruned_epoch} "
        f"status={logger.status}",
        flush=True,
    )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
