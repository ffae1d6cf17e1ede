"""Drop-in use: a plain ``lightning.Trainer`` with ``ExpmanLogger`` records the fit, no YAML needed.

Run from the repository root::

    python -m examples.drop_in                 # 10 epochs, recorded in expman_runs/expman.db
    python -m examples.drop_in --epochs 3 --db sqlite:///drop_in.db

Then read it back with ``expman ls`` / ``expman show`` (they default to the database used last).
"""

from __future__ import annotations

import argparse

import lightning as L

from examples.digits.data import DigitsDataModule
from examples.digits.model import DigitsMLP
from lightning_expman import ExpmanLogger
from lightning_expman.callbacks import EarlyStopping


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Fit an MLP on the digits with a plain Lightning Trainer.")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--db", default=None, help="database URL (default sqlite:///expman_runs/expman.db)")
    args = parser.parse_args(argv)

    L.seed_everything(args.seed, workers=True)
    logger = ExpmanLogger(experiment="digits_drop_in", trial="mlp-h64", db=args.db, save_dir="expman_runs")
    trainer = L.Trainer(
        max_epochs=args.epochs,
        logger=logger,
        callbacks=[EarlyStopping(monitor="val_loss", patience=3, min_delta_percent=1.0)],
        enable_progress_bar=False,
        log_every_n_steps=10,
    )
    model, data = DigitsMLP(hidden=64, lr=0.01), DigitsDataModule(batch_size=64)
    trainer.fit(model, datamodule=data)
    trainer.test(model, datamodule=data, verbose=False)  # RESULTS of the same trial run
    logger.close()
    test_acc = float(trainer.callback_metrics["test_acc"])
    print(f"trial run {logger.run_id}: {logger.status.value}, test_acc={test_acc:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
