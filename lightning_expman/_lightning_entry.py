"""The ``lightning.pytorch.callbacks_factory`` entry point, kept cheap for every Trainer.

Once this package is installed, Lightning calls :func:`callbacks_factory` for *every* Trainer
in the environment, including those of programs that never use lightning_expman. Importing
``lightning_expman.lightning`` costs a few hundred milliseconds, so this module imports nothing:
if no :class:`~lightning_expman.ExpmanLogger` was ever imported in this process, no Trainer
can have one and the factory returns no callbacks. Otherwise it returns
:func:`lightning_expman.lightning.hooks.callbacks_factory`'s (see that module's docstring).
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["callbacks_factory"]


def callbacks_factory() -> list[Any]:
    """The callbacks Lightning adds to every Trainer: none unless ExpmanLogger was imported."""
    if "lightning_expman.lightning.logger" not in sys.modules:
        return []
    from lightning_expman.lightning.hooks import callbacks_factory as factory

    return factory()
