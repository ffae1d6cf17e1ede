"""Runnable examples for lightning_expman (importable from the repository root as ``examples.*``)."""
