"""``DigitsMLP``: a small multilayer perceptron classifying scikit-learn's 8x8 digits.

Logged metrics (Lightning ``self.log`` names, stored by ExpmanLogger):

* ``train_loss`` (every ``log_every_n_steps`` and per epoch), ``train_acc`` (per epoch);
* ``val_loss``, ``val_acc``, ``val_f1`` (macro F1) per epoch, and ``val_f1_per_class``: the
  per-class F1 stored as per-label values (labels ``"0"`` .. ``"9"``; total = the macro mean);
* ``test_loss``, ``test_acc``, ``test_f1``, ``test_f1_per_class`` after fit, on the held-out
  test set (the run's RESULTS).

Example:
    >>> import lightning as L
    >>> from lightning_expman import ExpmanLogger
    >>> from examples.digits import DigitsDataModule, DigitsMLP
    >>> trainer = L.Trainer(max_epochs=5, logger=ExpmanLogger(experiment="digits", trial="mlp"))
    >>> trainer.fit(DigitsMLP(hidden=64, lr=0.01), datamodule=DigitsDataModule())
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch import nn
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

from .data import CLASS_NAMES

__all__ = ["DigitsMLP"]


class DigitsMLP(L.LightningModule):
    """64 -> hidden (-> hidden) -> 10 MLP with ReLU and dropout, trained with Adam.

    Args:
        hidden: width of the hidden layers.
        lr: Adam learning rate.
        layers: number of hidden layers (>= 1).
        dropout: dropout probability after each hidden layer.
        weight_decay: Adam weight decay.
        num_classes: output classes (10 digits).
        in_features: input features (8x8 pixels = 64).
    """

    def __init__(
        self,
        hidden: int = 64,
        lr: float = 0.01,
        layers: int = 1,
        dropout: float = 0.1,
        weight_decay: float = 0.0,
        num_classes: int = 10,
        in_features: int = 64,
    ) -> None:
        super().__init__()
        if hidden < 1 or layers < 1:
            raise ValueError(f"hidden and layers must be >= 1, got hidden={hidden}, layers={layers}")
        if lr <= 0:
            raise ValueError(f"lr must be > 0, got {lr}")
        self.save_hyperparameters()
        blocks: list[nn.Module] = []
        width = in_features
        for _ in range(layers):
            blocks += [nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(dropout)]
            width = hidden
        self.net = nn.Sequential(*blocks, nn.Linear(width, num_classes))
        self.train_acc = MulticlassAccuracy(num_classes)
        self.val_acc = MulticlassAccuracy(num_classes)
        self.test_acc = MulticlassAccuracy(num_classes)
        self.val_f1 = MulticlassF1Score(num_classes, average=None)
        self.test_f1 = MulticlassF1Score(num_classes, average=None)
        self.class_names = CLASS_NAMES[:num_classes] if num_classes <= len(CLASS_NAMES) else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        logits = self(x)
        loss = nn.functional.cross_entropy(logits, y)
        self.train_acc(logits, y)
        self.log("train_loss", loss, on_step=True, on_epoch=True)
        self.log("train_acc", self.train_acc, on_step=False, on_epoch=True)
        return loss

    def _eval_step(self, stage: str, batch: tuple[torch.Tensor, torch.Tensor]) -> None:
        x, y = batch
        logits = self(x)
        self.log(f"{stage}_loss", nn.functional.cross_entropy(logits, y))
        getattr(self, f"{stage}_acc").update(logits, y)
        getattr(self, f"{stage}_f1").update(logits, y)

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._eval_step("val", batch)

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._eval_step("test", batch)

    def _eval_epoch_end(self, stage: str) -> None:
        acc = getattr(self, f"{stage}_acc")
        f1 = getattr(self, f"{stage}_f1")
        per_class = f1.compute()  # one F1 per class (average=None)
        self.log(f"{stage}_acc", acc.compute())
        self.log(f"{stage}_f1", per_class.mean())
        self._log_per_label(f"{stage}_f1", per_class)
        acc.reset()
        f1.reset()

    def on_validation_epoch_end(self) -> None:
        self._eval_epoch_end("val")

    def on_test_epoch_end(self) -> None:
        self._eval_epoch_end("test")

    def _log_per_label(self, name: str, values: torch.Tensor) -> None:
        """Record the per-class vector as per-label values of ``<name>_per_class``.

        ``self.log`` accepts scalars only, so the vector goes through ExpmanLogger (other loggers do
        not receive it): an EPOCH value while fitting, a RESULTS value when testing.
        """
        from lightning_expman import ExpmanLogger

        for logger in self.loggers:
            if isinstance(logger, ExpmanLogger):
                logger.log_per_label(f"{name}_per_class", values, labels=self.class_names)

    def configure_optimizers(self) -> Any:
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
