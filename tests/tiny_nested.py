"""A tiny model whose activation is a constructor argument, for nested ``class_path`` tests.

``act: {class_path: torch.nn.GELU}`` in its ``init_args`` reaches ``__init__`` as a module
(see :mod:`lightning_expman.instantiate`). Importing this module imports lightning.
"""

from __future__ import annotations

from torch import nn

from tests.tiny import TinyClassifier


class ActClassifier(TinyClassifier):
    """:class:`~tests.tiny.TinyClassifier` with ``act`` between its layers.

    Args:
        act: the activation module (anything else is refused; ``act_name`` is its class name).
        hidden: hidden width.
        lr: learning rate.
    """

    def __init__(self, act: nn.Module | None = None, hidden: int = 8, lr: float = 0.1) -> None:
        super().__init__(hidden=hidden, lr=lr)
        if act is not None and not isinstance(act, nn.Module):
            raise TypeError(f"act must be a torch.nn.Module, got {type(act).__name__}")
        self.act_name = type(act).__name__ if act is not None else "ReLU"
        if act is not None:
            self.net[1] = act
