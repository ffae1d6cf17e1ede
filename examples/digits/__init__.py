"""An MLP on scikit-learn's bundled 8x8 digits: the project's main example.

Run the whole grid (2 learning rates x 2 widths x 2 seeds) from the repository root::

    expman run configs/digits

The data ships with scikit-learn (no download). Importing this package is cheap; the model and
data modules import lightning/torch.
"""

__all__ = ["DigitsDataModule", "DigitsMLP"]


def __getattr__(name: str):
    if name == "DigitsMLP":
        from .model import DigitsMLP

        return DigitsMLP
    if name == "DigitsDataModule":
        from .data import DigitsDataModule

        return DigitsDataModule
    raise AttributeError(name)
