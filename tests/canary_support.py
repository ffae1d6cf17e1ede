"""A model whose hyperparameters hold secrets, for the canary test (imports lightning)."""

from __future__ import annotations

from tests.tiny import TinyClassifier


class SecretClassifier(TinyClassifier):
    """TinyClassifier whose ``save_hyperparameters`` also records an API key, a token and a DB URL.

    ``leak_in_error=True`` fails the first training step with an error quoting the key and the URL
    (as a client library reporting a failed connection would).
    """

    def __init__(
        self,
        hidden: int = 4,
        api_key: str = "",
        token: str = "",
        db_url: str = "",
        plain_copy: str = "",
        leak_in_error: bool = False,
    ) -> None:
        super().__init__(hidden=hidden)
        self.save_hyperparameters()

    def training_step(self, batch, batch_idx):
        if self.hparams.leak_in_error:
            raise RuntimeError(f"cannot reach {self.hparams.db_url} with key {self.hparams.api_key}")
        return super().training_step(batch, batch_idx)
