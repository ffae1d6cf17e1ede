"""Load a config folder into an :class:`~lightning_expman.config.spec.ExperimentSpec`.

A config folder holds::

    env.yaml         optional  workspace, verbose, debug, trackers
    experiment.yaml  required  name, id, desc, settings, tags, pipeline
    base.yaml        optional  settings shared by all trials: either ``settings: {...}`` (the
                               seed's form) or the bare mapping of settings
    trials.yaml      required  a list of trials: name, id, repeat, settings, grid, tags
                               (a mapping ``{trials: [...]}`` is accepted too)

Settings merge ``base -> experiment -> trial -> grid values -> overrides`` (mappings merge key by
key, anything else is replaced; a changed ``class_path`` drops the previous ``init_args``), then
OmegaConf interpolations (``${model.init_args.lr}``, ``${oc.env:HOME}``) are resolved per
trial, then the result is validated. Each run's settings are resolved again with the run's
seed (:meth:`TrialSpec.run_settings`, :attr:`RunSpec.settings`), so ``${seed}`` follows the
run. :func:`load` reads files only: it writes nothing.

Every problem raises :class:`~lightning_expman.errors.ConfigError` with one line
``<file>: <key>: <what is wrong> (the bad value); <valid choices / closest key>``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ._util import copy_tree, deep_merge, format_key, set_path, short
from .env_file import DEFAULT_WORKSPACE, ENV_KEYS, load_env
from .files import (
    EXPERIMENT_KEYS,
    STANDARD_PIPELINE,
    TRIAL_KEYS,
    display_name,
    load_base,
    load_experiment,
    load_trials,
)
from .grid import expand_grid, grid_trial_id, grid_trial_name, short_grid_keys
from .interpolation import has_interpolation, resolve
from .overrides import (
    OVERRIDE_SOURCE,
    Layer,
    Origins,
    key_allowed,
    located_error,
    parse_overrides,
    unknown_key_error,
)
from .schema import SettingsIssue, validate_seed, validate_standard
from .search import parse_search, split_searches
from .spec import ExperimentSpec, TrialSpec

__all__ = [
    "DEFAULT_WORKSPACE",
    "ENV_KEYS",
    "EXPERIMENT_KEYS",
    "OVERRIDE_SOURCE",
    "STANDARD_PIPELINE",
    "TRIAL_KEYS",
    "load",
]


def load(
    config_dir: str | os.PathLike[str],
    overrides: Sequence[str] | None = None,
    db_url: str | None = None,
    *,
    standard: bool = True,
) -> ExperimentSpec:
    """Read, merge, expand and validate a config folder (see the module docstring).

    Args:
        config_dir: the folder with env.yaml (optional), experiment.yaml, base.yaml (optional)
            and trials.yaml.
        overrides: ``KEY=VALUE`` strings (``expman run --set``). Keys are dotted paths relative
            to settings (``trainer.max_epochs=2``, ``callbacks[0].patience=5``); values are parsed
            as YAML (``0.1`` float, ``[32, 64]`` list, ``null``). They apply to every trial, after
            the trial's own settings and grid. A key must exist in some trial's settings, or add a
            key to a validated section (``trainer.*``, ``model.init_args.*``, ``data.init_args.*``,
            a standard top-level key such as ``seed``); otherwise it is reported as a typo with the
            closest existing key. Prefix ``+`` (``+my_var=3``) to add any new key. Overriding a
            key a trial varies in its ``grid:`` is an error.
        db_url: replaces the ``url`` of every ``db`` tracker of env.yaml (``expman run --db``).
        standard: ``False`` when a custom pipeline factory decides what runs (``Experiment.create``
            with the seed's ``YourPipelineFactory``): the settings are then checked as for a custom
            ``pipeline:`` (seed only), not as the standard Lightning pipeline's.

    Returns:
        The :class:`ExperimentSpec`.

    Raises:
        ConfigError: one line naming the file, the key and the bad value.

    Example:
        >>> from lightning_expman.config import load
        >>> spec = load("configs/digits", overrides=["trainer.max_epochs=2"])  # doctest: +SKIP
        >>> [(r.trial.name, r.repeat_idx, r.seed) for r in spec.runs()][:2]  # doctest: +SKIP
        [('mlp-lr=0.1-hidden=32', 1, 42), ('mlp-lr=0.1-hidden=32', 2, 43)]
    """
    config_dir = Path(config_dir)
    shown_dir = str(config_dir)
    if not config_dir.exists():
        raise ConfigError("config folder not found", file=shown_dir)
    if not config_dir.is_dir():
        raise ConfigError(
            "is not a folder; expected a folder with experiment.yaml and trials.yaml", file=shown_dir
        )
    parsed_overrides = parse_overrides(overrides)
    env = load_env(config_dir, db_url)
    experiment = load_experiment(config_dir)
    base, base_prefix = load_base(config_dir)
    raw_trials = load_trials(config_dir)
    standard = standard and experiment.pipeline is None

    base_file = display_name(config_dir, "base.yaml")
    exp_file = display_name(config_dir, "experiment.yaml")
    trials_file = display_name(config_dir, "trials.yaml")
    exp_settings = deep_merge(base, experiment.settings)
    merged_per_trial = [deep_merge(exp_settings, t.settings) for t in raw_trials]

    # Check grid keys against the trial's own settings, overrides against every trial's.
    for raw, merged in zip(raw_trials, merged_per_trial):
        for key, parts in raw.grid_parts.items():
            if key not in raw.grid_force and not key_allowed(parts, [merged], standard):
                raise unknown_key_error(
                    key, parts, [merged], trials_file, f"[{raw.index}].grid.{key}", raw.grid[key]
                )
    for ov in parsed_overrides:
        if not ov.force and not key_allowed(ov.parts, merged_per_trial, standard):
            raise unknown_key_error(ov.key, ov.parts, merged_per_trial, OVERRIDE_SOURCE, ov.key, ov.value)
        target = format_key(ov.parts)
        for raw in raw_trials:
            for gkey, gparts in raw.grid_parts.items():
                g = format_key(gparts)
                if (
                    g == target
                    or g.startswith((target + ".", target + "["))
                    or target.startswith((g + ".", g + "["))
                ):
                    raise ConfigError(
                        f"trial {raw.name!r} varies {gkey!r} in its grid (trials.yaml); "
                        f"edit the grid instead of overriding it (value {short(ov.value)})",
                        file=OVERRIDE_SOURCE,
                        key=ov.key,
                    )

    trials: list[TrialSpec] = []
    searched: dict[str, Any] = {}  # template trial name -> its SearchSpec (config/search.py)
    names: dict[str, str] = {}
    ids: dict[int, str] = {}
    folders: dict[str, str] = {}  # lower-cased folder name -> trial name
    from ..workspace import safe_name  # here: workspace imports this package

    override_origins = {format_key(ov.parts): ov.key for ov in parsed_overrides}
    for raw, merged in zip(raw_trials, merged_per_trial):
        at = f"[{raw.index}]"
        origins = Origins(
            layers=[
                Layer(base_file, base_prefix, base),
                Layer(exp_file, "settings.", experiment.settings),
                Layer(trials_file, f"{at}.settings.", raw.settings, f" (trial {raw.name!r})"),
            ],
            grid={format_key(p): (trials_file, f"{at}.grid.{k}") for k, p in raw.grid_parts.items()},
            overrides=override_origins,
            fallback=(exp_file, "settings."),
        )
        search = None
        if raw.search is not None:
            search = parse_search(
                raw.search[1], trials_file, f"{at}.{raw.search[0]}", raw.search[0], merged, list(raw.grid)
            )
        elif experiment.search is not None:  # experiment.yaml's block searches every other trial
            form, block = experiment.search
            search = parse_search(block, exp_file, form, form, merged, list(raw.grid))
        combos = expand_grid(raw.grid) if raw.grid else [{}]
        labels = short_grid_keys(list(raw.grid)) if raw.grid else {}
        tags = {**experiment.tags, **raw.tags}
        for n, combo in enumerate(combos):
            settings = copy_tree(merged) if len(combos) > 1 else merged
            for key, value in combo.items():
                try:
                    set_path(settings, raw.grid_parts[key], copy_tree(value))
                except KeyError as e:
                    raise ConfigError(
                        f"cannot set {key!r}: {e.args[0]!r} is not a mapping or the index is out of range",
                        file=trials_file,
                        key=f"{at}.grid.{key}",
                    ) from None
            for ov in parsed_overrides:
                try:
                    set_path(settings, ov.parts, copy_tree(ov.value))
                except KeyError as e:
                    raise ConfigError(
                        f"cannot set (value {short(ov.value)}): {e.args[0]!r} is not a mapping "
                        "or the index is out of range",
                        file=OVERRIDE_SOURCE,
                        key=ov.key,
                    ) from None
            raw_settings = None
            if has_interpolation(settings):
                # Kept unresolved too: each run resolves it again with its own seed.
                raw_settings = settings
                settings, problem = resolve(settings)
                if problem:
                    raise located_error(origins, problem[0], problem[1])
            try:
                seed = validate_seed(settings, raw.repeat)
                if standard:
                    validate_standard(settings)
            except SettingsIssue as e:
                raise located_error(origins, e.parts, e.message) from None
            if raw.grid:
                name = grid_trial_name(raw.name, combo, labels)
                trial_id = grid_trial_id(raw.id, n, len(combos))
            else:
                name, trial_id = raw.name, raw.id
            if name in names:
                raise ConfigError(
                    f"duplicate trial name {name!r} (also {names[name]}); trial names must be unique",
                    file=trials_file,
                    key=f"{at}.name",
                )
            if trial_id in ids:
                what = (
                    f"grid trial {name!r} gets id {trial_id}"
                    if raw.grid
                    else f"duplicate trial id {trial_id}"
                )
                raise ConfigError(
                    f"{what}, already used by {ids[trial_id]}; trial ids must be unique "
                    "(a grid trial N with k combinations uses ids N*10^digits(k)+1..+k)",
                    file=trials_file,
                    key=f"{at}.id",
                )
            folder = safe_name(name).lower()
            if folder in folders:
                raise ConfigError(
                    f"trial name {name!r} and {folders[folder]!r} map to the same folder on case-insensitive "
                    "file systems; rename one",
                    file=trials_file,
                    key=f"{at}.name",
                )
            folders[folder] = name
            names[name] = f"trial {at} {raw.name!r}"
            ids[trial_id] = f"trial {name!r}"
            params = {k: copy_tree(v) for k, v in combo.items()}
            trials.append(
                TrialSpec(
                    name=name,
                    id=trial_id,
                    repeat=raw.repeat,
                    data=settings,
                    params=params,
                    tags=tags,
                    index=len(trials),
                    seed=seed,
                    raw=raw_settings,
                )
            )
            if search is not None:  # a template: its trials are sampled when the search runs
                searched[name] = search

    exp_level = copy_tree(exp_settings)
    for ov in parsed_overrides:
        try:
            set_path(exp_level, ov.parts, copy_tree(ov.value))
        except KeyError:
            pass
    if has_interpolation(exp_level):
        resolved, problem = resolve(exp_level)
        if problem is None:
            exp_level = resolved  # else: refers to trial-level keys; kept unresolved

    return ExperimentSpec(
        name=experiment.name,
        id=experiment.id,
        desc=experiment.desc,
        tags=experiment.tags,
        source_dir=config_dir.resolve(),
        env=env,
        pipeline=experiment.pipeline,
        settings=exp_level,
        trials=trials,
        overrides=tuple(ov.text for ov in parsed_overrides),
        searches=split_searches(trials, searched),
    )
