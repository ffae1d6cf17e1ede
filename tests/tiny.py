"""Tiny Lightning models and data shared by the tests: fits take well under a second on CPU.

Importing this module imports lightning (~9 s the first time in a process), so import it only
from tests that train.
"""

from __future__ import annotations

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


class TinyDataModule(L.LightningDataModule):
    """A linearly separable 2-class problem: 8 features, ``n`` samples, generated from ``seed``."""

    def __init__(self, n: int = 64, batch_size: int = 16, seed: int = 0) -> None:
        super().__init__()
        self.save_hyperparameters()
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, 8, generator=g)
        self.y = (self.x[:, 0] + 0.5 * self.x[:, 1] > 0).long()

    def _loader(self) -> DataLoader:
        return DataLoader(TensorDataset(self.x, self.y), batch_size=self.hparams.batch_size)

    def train_dataloader(self) -> DataLoader:
        return self._loader()

    def val_dataloader(self) -> DataLoader:
        return self._loader()

    def test_dataloader(self) -> DataLoader:
        return self._loader()


class TinyClassifier(L.LightningModule):
    """Linear classifier logging ``train_loss`` (step), ``val_loss``/``val_acc`` (epoch), ``test_*``.

    ``fail_at_step`` raises inside ``training_step`` at that global step (for FAILED runs).
    """

    def __init__(self, hidden: int = 8, lr: float = 0.1, fail_at_step: int | None = None) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(8, hidden), nn.ReLU(), nn.Linear(hidden, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def _step(self, batch):
        x, y = batch
        logits = self(x)
        return nn.functional.cross_entropy(logits, y), (logits.argmax(-1) == y).float().mean()

    def training_step(self, batch, batch_idx):
        if self.hparams.fail_at_step is not None and self.global_step >= self.hparams.fail_at_step:
            raise RuntimeError(f"planted failure at step {self.global_step}")
        loss, _ = self._step(batch)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        loss, acc = self._step(batch)
        self.log("val_loss", loss)
        self.log("val_acc", acc)

    def test_step(self, batch, batch_idx):
        loss, acc = self._step(batch)
        self.log("test_loss", loss)
        self.log("test_acc", acc)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


class ScriptedModel(TinyClassifier):
    """TinyClassifier whose ``val_loss`` follows ``val_losses`` (one value per epoch), for early stopping.

    Also logs ``train_loss`` both on_step and on_epoch (``train_loss_step`` / ``train_loss_epoch``),
    and raises ``KeyboardInterrupt`` at global step ``interrupt_at_step`` (for ABORTED runs).
    """

    def __init__(
        self,
        val_losses: tuple[float, ...] = (1.0, 0.9, 0.8),
        interrupt_at_step: int | None = None,
        fail_at_step: int | None = None,
    ) -> None:
        super().__init__(fail_at_step=fail_at_step)
        self.save_hyperparameters()

    def training_step(self, batch, batch_idx):
        if self.hparams.interrupt_at_step is not None and self.global_step >= self.hparams.interrupt_at_step:
            raise KeyboardInterrupt
        if self.hparams.fail_at_step is not None and self.global_step >= self.hparams.fail_at_step:
            raise RuntimeError(f"planted failure at step {self.global_step}")
        loss, _ = self._step(batch)
        self.log("train_loss", loss, on_step=True, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        losses = self.hparams.val_losses
        value = losses[min(self.current_epoch, len(losses) - 1)]
        self.log("val_loss", torch.tensor(float(value)))
        self.log("val_acc", self._step(batch)[1])


class SigintDeafClassifier(TinyClassifier):
    """Ignores SIGINT once fitting: Ctrl-C (or Ray's cancel, a KeyboardInterrupt) no longer stops it."""

    def on_fit_start(self) -> None:
        import signal

        signal.signal(signal.SIGINT, signal.SIG_IGN)


def fast_trainer_kwargs(**overrides) -> dict:
    """Trainer arguments for sub-second CPU fits: few batches, no progress bar or summary."""
    kwargs = dict(
        max_epochs=3,
        accelerator="cpu",
        devices=1,
        limit_train_batches=3,
        limit_val_batches=1,
        limit_test_batches=1,
        log_every_n_steps=1,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=1,
    )
    kwargs.update(overrides)
    return kwargs
