"""``DigitsDataModule``: scikit-learn's bundled 8x8 digits, split and standardised.

The split depends only on ``split_seed`` (not on the run's seed), so the repeats of a trial see
the same train/val/test sets and differ only in initialisation and shuffling.

Example:
    >>> dm = DigitsDataModule(batch_size=64)
    >>> dm.setup("fit")
    >>> x, y = next(iter(dm.train_dataloader()))
    >>> x.shape, y.shape
    (torch.Size([64, 64]), torch.Size([64]))
"""

from __future__ import annotations

import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset

__all__ = ["CLASS_NAMES", "DigitsDataModule"]

CLASS_NAMES = [str(i) for i in range(10)]
"""Label names of the 10 digit classes (used for per-label metrics)."""


class DigitsDataModule(L.LightningDataModule):
    """1,797 8x8 grey-level digit images (64 features, 10 classes) from ``sklearn.datasets.load_digits``.

    Args:
        batch_size: training batch size (evaluation uses the same).
        val_fraction: share of the samples held out for validation.
        test_fraction: share of the samples held out for the final test.
        split_seed: seed of the stratified split (fixed across repeats on purpose).
        num_workers: DataLoader worker processes (0 = load in the training process; the data is tiny).
    """

    def __init__(
        self,
        batch_size: int = 64,
        val_fraction: float = 0.15,
        test_fraction: float = 0.15,
        split_seed: int = 0,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        if not 0 < val_fraction < 1 or not 0 < test_fraction < 1 or val_fraction + test_fraction >= 1:
            raise ValueError(
                f"val_fraction={val_fraction} and test_fraction={test_fraction} must be in (0, 1) "
                "and sum to less than 1"
            )
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.save_hyperparameters()
        self.class_names = CLASS_NAMES
        self._sets: dict[str, TensorDataset] = {}

    def setup(self, stage: str | None = None) -> None:
        if self._sets:
            return
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
        from sklearn.preprocessing import StandardScaler

        x, y = load_digits(return_X_y=True)
        hp = self.hparams
        x_train, x_hold, y_train, y_hold = train_test_split(
            x, y, test_size=hp.val_fraction + hp.test_fraction, stratify=y, random_state=hp.split_seed
        )
        x_val, x_test, y_val, y_test = train_test_split(
            x_hold,
            y_hold,
            test_size=hp.test_fraction / (hp.val_fraction + hp.test_fraction),
            stratify=y_hold,
            random_state=hp.split_seed,
        )
        # Standardise with statistics of the training set only (no leakage into val/test).
        scaler = StandardScaler().fit(x_train)
        for name, xs, ys in (("train", x_train, y_train), ("val", x_val, y_val), ("test", x_test, y_test)):
            features = torch.as_tensor(scaler.transform(xs), dtype=torch.float32)
            self._sets[name] = TensorDataset(features, torch.as_tensor(ys, dtype=torch.long))

    def _loader(self, name: str, shuffle: bool = False) -> DataLoader:
        return DataLoader(
            self._sets[name],
            batch_size=self.hparams.batch_size,
            shuffle=shuffle,
            num_workers=self.hparams.num_workers,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")
