"""One way to seed a run: Lightning's ``seed_everything`` without its console line, on every
supported Lightning (``verbose=`` exists from 2.4 on; older releases log the line at INFO)."""

from __future__ import annotations

import functools
import inspect
import logging
from typing import Any

__all__ = ["seed_everything"]


def seed_everything(seed: int) -> int:
    """Seed Python, NumPy and torch (and dataloader workers) with ``seed``, quietly.

    Example:
        >>> seed_everything(42)
        42
    """
    from lightning.fabric.utilities import seed as lightning_seed

    fn = lightning_seed.seed_everything
    if _takes_verbose(fn):
        return fn(int(seed), workers=True, verbose=False)
    quiet = logging.getLogger(lightning_seed.__name__)
    level = quiet.level
    quiet.setLevel(logging.WARNING)
    try:
        return fn(int(seed), workers=True)
    finally:
        quiet.setLevel(level)


@functools.cache
def _takes_verbose(fn: Any) -> bool:
    return "verbose" in inspect.signature(fn).parameters
