"""A LightningModule and a DataModule to start from (written by ``expman init``).

The data is generated (Gaussian blobs, one per class), so the example runs anywhere without a
download. Replace both classes with your own and point ``base.yaml``'s class paths at them.
"""

from __future__ import annotations

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset, random_split


class BlobsDataModule(L.LightningDataModule):
    """``n`` points in 16 dimensions around ``classes`` random centres; 70/15/15 split."""

    def __init__(self, n: int = 1024, batch_size: int = 64, classes: int = 4, seed: int = 0) -> None:
        super().__init__()
        self.save_hyperparameters()

    def setup(self, stage: str | None = None) -> None:
        g = torch.Generator().manual_seed(self.hparams.seed)
        centres = torch.randn(self.hparams.classes, 16, generator=g) * 0.5
        y = torch.randint(0, self.hparams.classes, (self.hparams.n,), generator=g)
        x = centres[y] + torch.randn(self.hparams.n, 16, generator=g)
        n_val = n_test = self.hparams.n * 15 // 100
        self.train, self.val, self.test = random_split(
            TensorDataset(x, y), [self.hparams.n - n_val - n_test, n_val, n_test], generator=g
        )

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.train, batch_size=self.hparams.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val, batch_size=self.hparams.batch_size)

    def test_dataloader(self) -> DataLoader:
        return DataLoader(self.test, batch_size=self.hparams.batch_size)


class Classifier(L.LightningModule):
    """An MLP logging ``train_loss`` per step, ``val_loss``/``val_acc`` per epoch, ``test_acc``."""

    def __init__(self, hidden: int = 32, lr: float = 0.01, dropout: float = 0.1, classes: int = 4) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(
            nn.Linear(16, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def _step(self, batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = batch
        logits = self(x)
        return nn.functional.cross_entropy(logits, y), (logits.argmax(-1) == y).float().mean()

    def training_step(self, batch, batch_idx):
        loss, _ = self._step(batch)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        loss, acc = self._step(batch)
        self.log_dict({"val_loss": loss, "val_acc": acc})

    def test_step(self, batch, batch_idx):
        loss, acc = self._step(batch)
        self.log_dict({"test_loss": loss, "test_acc": acc})

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
