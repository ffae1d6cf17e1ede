"""YAML configuration: load a config folder into an experiment spec; grids; secret masking.

Example:
    >>> from lightning_expman.config import load
    >>> spec = load("configs/digits", overrides=["trainer.max_epochs=2"])  # doctest: +SKIP
    >>> for run in spec.runs():  # doctest: +SKIP
    ...     print(run.trial.name, run.repeat_idx, run.seed, run.trial.settings.model.init_args.lr)

Rules (where the seed and the issue are silent):

* Files: ``experiment.yaml`` and ``trials.yaml`` are required; ``env.yaml`` (defaults: workspace
  ``outputs``, not verbose, no debug, a db tracker) and ``base.yaml`` are optional. base.yaml is
  either ``settings: {...}`` (the seed's form) or the bare mapping of settings, not both.
  trials.yaml is a list (or ``{trials: [...]}``); ``pipeline: lightning`` means the standard one.
* ``env.workspace`` is resolved against the current directory at load time and stored absolute.
  A ``{type: db, url: sqlite:///<workspace>/expman.db}`` tracker is appended when env.yaml lists
  no db tracker; ``db_url`` replaces the url of every db tracker.
* Trial defaults: ``id`` = 1-based position in trials.yaml, ``repeat`` = 1. ``settings.seed``
  defaults to 0; run ``k`` gets ``seed + k - 1``. Trial tags = experiment tags updated with the
  trial's. Names and ids must be unique (names also case-insensitively).
* Grids: a trial with ``grid: {dotted.key: [values]}`` becomes one trial per combination (last key
  varying fastest), named ``<name>-<key>=<value>-...`` with the shortest distinct key suffix, ids
  ``id * 10**digits(k) + 1 .. + k`` for k combinations (collisions are reported). ``params`` holds
  the combination. Grid values override the trial's settings; overrides may not touch grid keys.
* Overrides (``--set``): ``key=value``, dotted keys relative to settings, values parsed as YAML,
  applied to every trial (a mapping value replaces the whole subtree). The key must exist in some
  trial, or add a key in a validated section (``trainer.*``, ``model.init_args.*``,
  ``data.init_args.*``, a standard top-level key). ``+key=value`` adds anything (also ``+key:`` in
  a grid). A typo gets the closest existing key.
* ``config_hash``: SHA-256 of the pipeline and each trial's name, repeat, params and masked
  resolved settings; env (workspace, verbosity, trackers), ids, desc and tags do not count.

Nothing in this package imports torch or lightning (``class_path`` values are checked from
source, see :mod:`lightning_expman.config.classpath`).
"""

from __future__ import annotations

from ..errors import ConfigError
from ..masking import mask_secrets, mask_url
from ._util import to_plain
from .grid import expand_grid, insert_value, multiply
from .loader import load
from .schema import CALLBACK_TYPES, STANDARD_KEYS, trainer_params
from .spec import ExperimentSpec, RunSpec, TrialSpec, stable_hash

__all__ = [
    "CALLBACK_TYPES",
    "STANDARD_KEYS",
    "ConfigError",
    "ExperimentSpec",
    "RunSpec",
    "TrialSpec",
    "expand_grid",
    "insert_value",
    "load",
    "mask_secrets",
    "mask_url",
    "multiply",
    "stable_hash",
    "to_plain",
    "trainer_params",
]
