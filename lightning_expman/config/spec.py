"""The loaded, validated experiment: :class:`ExperimentSpec`, :class:`TrialSpec`, :class:`RunSpec`.

Built by :func:`lightning_expman.config.load`; nothing here touches the file system.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..masking import MASK, is_secret_key, mask_secrets, mask_url, remember_secrets
from ._util import copy_tree, format_key

if TYPE_CHECKING:
    from omegaconf import DictConfig

__all__ = ["ExperimentSpec", "RunSpec", "TrialSpec", "stable_hash"]


def stable_hash(value: Any) -> str:
    """SHA-256 (hex) of the canonical JSON of ``value``: key order and whitespace do not matter."""
    text = json.dumps(_str_keys(value), sort_keys=True, separators=(",", ":"), default=str, allow_nan=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _str_keys(value: Any) -> Any:
    """Mapping keys as strings (YAML allows ``1: x``; json cannot sort mixed key types)."""
    if isinstance(value, dict):
        return {
            f"{type(k).__name__}:{k}" if not isinstance(k, str) else k: _str_keys(v) for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [_str_keys(v) for v in value]
    return value


def _mask_override(text: str) -> str:
    key, sep, value = text.partition("=")
    last = key.strip().lstrip("+").replace("]", "").replace("[", ".").split(".")[-1]
    if sep and is_secret_key(last) and value.strip() not in ("", "null"):
        return f"{key}={MASK}"
    return mask_url(text)


def _dictconfig(data: dict[str, Any]) -> DictConfig:
    from omegaconf import OmegaConf

    return OmegaConf.create(data)  # type: ignore[return-value]


class TrialSpec:
    """One trial of the experiment (a grid trial is expanded into one TrialSpec per combination).

    Attributes:
        name: unique within the experiment; file-system safe for grid-expanded trials
            (``mlp-lr=0.1-hidden=32``). Use :func:`lightning_expman.workspace.safe_name` for others.
        id: unique within the experiment (see :func:`lightning_expman.config.grid.grid_trial_id`).
        repeat: how many runs (seeds) of this trial, >= 1.
        params: the grid values of a grid-expanded trial (dotted key -> value), ``{}`` otherwise.
        tags: experiment tags updated with the trial's tags.
        index: position in :attr:`ExperimentSpec.trials` (0-based).
        seed: ``settings.seed`` (0 when absent); run ``k`` uses ``seed + k - 1``.
        config_hash: hash of this trial's masked resolved settings, name, params and repeat.

    :attr:`settings` are resolved with the trial's seed; each run's settings, where ``seed`` is
    the run's seed and every ``${seed}`` follows it, come from :meth:`run_settings` (or
    :attr:`RunSpec.settings`).
    """

    __slots__ = (
        "_data",
        "_raw",
        "_settings",
        "config_hash",
        "id",
        "index",
        "name",
        "params",
        "repeat",
        "seed",
        "tags",
    )

    def __init__(
        self,
        name: str,
        id: int,
        repeat: int,
        data: dict[str, Any],
        params: dict[str, Any] | None = None,
        tags: dict[str, Any] | None = None,
        index: int = 0,
        seed: int = 0,
        raw: dict[str, Any] | None = None,
    ) -> None:
        self.name = name
        self.id = id
        self.repeat = repeat
        self.params = dict(params or {})
        self.tags = dict(tags or {})
        self.index = index
        self.seed = seed
        self._data = data
        # The merged settings before interpolation, kept only when they hold ``${...}``: a run
        # resolves them again with its own seed (see run_settings).
        self._raw = raw
        self._settings: DictConfig | None = None
        self.config_hash = stable_hash(
            {"name": name, "repeat": repeat, "params": self.params, "settings": mask_secrets(data)}
        )

    @property
    def settings(self) -> DictConfig:
        """The trial's resolved settings (base -> experiment -> trial -> grid -> overrides).

        Built on first access (a 1,000-trial ``--dry-run`` never pays for OmegaConf objects);
        the same object is returned afterwards. Editing it does not change :attr:`config_hash`.
        """
        if self._settings is None:
            self._settings = _dictconfig(copy_tree(self._data))
        return self._settings

    def run_settings_data(self, seed: int | None = None) -> dict[str, Any]:
        """Plain-dict settings of the run with ``seed``: ``seed`` replaced, then interpolations
        resolved, so ``${seed}`` anywhere in the settings (``data.init_args.split_seed: ${seed}``)
        is the run's seed. A new dict on every call.

        Args:
            seed: the run's seed (``trial.seed + repeat_idx - 1``); default the trial's seed.

        Raises:
            ConfigError: an interpolation that resolved at load time fails with this seed
                (e.g. a custom resolver rejecting the value).
        """
        seed = self.seed if seed is None else int(seed)
        if self._raw is None:  # nothing to re-resolve: copy the resolved settings
            data = copy_tree(self._data)
            data["seed"] = seed
            return data
        from .interpolation import resolve

        raw = copy_tree(self._raw)
        raw["seed"] = seed
        resolved, problem = resolve(raw)
        if problem is not None:
            from ..errors import ConfigError

            raise ConfigError(
                f"{problem[1]} (trial {self.name!r}, run seed {seed})", key=format_key(problem[0]) or None
            )
        return resolved

    def run_settings(self, seed: int | None = None) -> DictConfig:
        """:meth:`run_settings_data` as a new ``DictConfig`` (the runner's per-run config)."""
        return _dictconfig(self.run_settings_data(seed))

    def to_container(self, mask: bool = True) -> dict[str, Any]:
        """Plain dict of the trial: name, id, repeat, params, tags, settings (secrets masked)."""
        settings = mask_secrets(self._data) if mask else copy_tree(self._data)
        return {
            "name": self.name,
            "id": self.id,
            "repeat": self.repeat,
            "params": mask_secrets(self.params) if mask else copy_tree(self.params),
            "tags": copy_tree(self.tags),
            "settings": settings,
        }

    def runs(self) -> list[RunSpec]:
        """This trial's runs, ``repeat_idx`` 1..repeat."""
        return [RunSpec(self, k, self.seed + k - 1) for k in range(1, self.repeat + 1)]

    def __repr__(self) -> str:
        return f"TrialSpec(name={self.name!r}, id={self.id}, repeat={self.repeat}, params={self.params!r})"


@dataclass(frozen=True)
class RunSpec:
    """One run (repeat) of a trial.

    Attributes:
        trial: the trial.
        repeat_idx: 1..trial.repeat.
        seed: ``trial.seed + repeat_idx - 1`` (``settings.seed`` defaults to 0).
    """

    trial: TrialSpec
    repeat_idx: int
    seed: int

    @property
    def name(self) -> str:
        """The run's folder name: ``run_<repeat_idx>``."""
        return f"run_{self.repeat_idx}"

    @cached_property
    def settings(self) -> DictConfig:
        """The run's settings: the trial's with ``seed`` = this run's seed and interpolations
        resolved with it (``${seed}`` is the run's seed, not the trial's base seed).

        Built on first access (``load`` and ``--dry-run`` never pay for it) and cached; use
        ``trial.run_settings(run.seed)`` for a fresh copy to mutate.

        Example:
            >>> run = spec.trials[0].runs()[1]  # doctest: +SKIP
            >>> run.settings.seed, run.settings.data.init_args.split_seed  # doctest: +SKIP
            (43, 43)
        """
        return self.trial.run_settings(self.seed)

    def __repr__(self) -> str:
        return f"RunSpec(trial={self.trial.name!r}, repeat_idx={self.repeat_idx}, seed={self.seed})"


class ExperimentSpec:
    """A loaded experiment: what :func:`lightning_expman.config.load` returns.

    Attributes:
        name: experiment.yaml ``name``.
        id: experiment.yaml ``id``.
        desc: experiment.yaml ``desc`` ("" when absent).
        tags: experiment.yaml ``tags``.
        source_dir: the config folder (absolute).
        env: env.yaml as a ``DictConfig``: ``workspace`` (absolute path string; a relative
            workspace is resolved against the current directory at load time), ``verbose``,
            ``debug``, ``trackers`` (list of dicts, always including one ``{type: db, url: ...}``).
        pipeline: experiment.yaml ``pipeline`` (a custom PipelineFactory name) or None for the
            standard Lightning pipeline.
        settings: experiment-level settings (base -> experiment -> overrides); interpolations are
            resolved when they can be at this level, kept otherwise.
        trials: the expanded trials, in file order (grid combinations in grid order).
        overrides: the ``key=value`` overrides applied.
        config_hash: hash of everything that defines results: the pipeline and, per trial, its
            name, repeat, params and masked resolved settings. Not env (workspace, verbosity,
            trackers), ids, desc or tags.
    """

    def __init__(
        self,
        *,
        name: str,
        id: int,
        desc: str,
        tags: dict[str, Any],
        source_dir: Path,
        env: dict[str, Any],
        pipeline: str | None,
        settings: dict[str, Any],
        trials: list[TrialSpec],
        overrides: tuple[str, ...] = (),
        searches: list[tuple[TrialSpec, Any]] | None = None,
    ) -> None:
        self.name = name
        self.id = id
        self.desc = desc
        self.tags = tags
        self.source_dir = source_dir
        self.pipeline = pipeline
        self.trials = trials
        self.overrides = overrides
        self._env_data = env
        self._settings_data = settings
        self._env: DictConfig | None = None
        self._settings: DictConfig | None = None
        # Searched trials (a ``search:``/``hpo:`` block): (template trial, SearchSpec); their
        # trials are sampled when the experiment runs (lightning_expman.search).
        self.searches = list(searches or [])
        hashed: dict[str, Any] = {"pipeline": pipeline, "trials": [t.config_hash for t in trials]}
        if self.searches:
            hashed["searches"] = [[t.config_hash, s.to_container()] for t, s in self.searches]
        self.config_hash = stable_hash(hashed)
        self._remember_secrets()

    def _remember_secrets(self) -> None:
        # Resolved values too (a secret read with ${oc.env:...} is known only now), in every process
        # holding the spec: spawned workers unpickle it (see __setstate__).
        remember_secrets([self._env_data, self._settings_data, *(t._data for t in self.trials)])

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._remember_secrets()

    @property
    def env(self) -> DictConfig:
        """env.yaml, completed with defaults (see the class docstring)."""
        if self._env is None:
            self._env = _dictconfig(copy_tree(self._env_data))
        return self._env

    def replace_env(self, env: dict[str, Any]) -> None:
        """Use ``env`` (env.yaml's keys, ``workspace`` absolute) instead of the loaded env.yaml.

        Used by the seed's ``Experiment(..., env=...)``; :attr:`config_hash` does not depend on env.
        """
        self._env_data = copy_tree(env)
        self._env = None

    @property
    def settings(self) -> DictConfig:
        """Experiment-level settings (base -> experiment -> overrides)."""
        if self._settings is None:
            self._settings = _dictconfig(copy_tree(self._settings_data))
        return self._settings

    @property
    def workspace(self) -> Path:
        """``Path(env.workspace)``."""
        return Path(self._env_data["workspace"])

    def runs(self) -> list[RunSpec]:
        """Every trial x repeat, trial by trial, ``repeat_idx`` ascending."""
        return [run for trial in self.trials for run in trial.runs()]

    def trial(self, name: str) -> TrialSpec:
        """The trial called ``name``.

        Raises:
            KeyError: no such trial.
        """
        for t in self.trials:
            if t.name == name:
                return t
        raise KeyError(name)

    def to_container(self, mask: bool = True) -> dict[str, Any]:
        """Everything resolved, as plain dicts/lists, secrets masked (unless ``mask=False``).

        Keys: name, id, desc, tags, pipeline, source_dir, overrides, config_hash, env, settings,
        trials (each as :meth:`TrialSpec.to_container`).
        """
        env = mask_secrets(self._env_data) if mask else copy_tree(self._env_data)
        settings = mask_secrets(self._settings_data) if mask else copy_tree(self._settings_data)
        return {
            "name": self.name,
            "id": self.id,
            "desc": self.desc,
            "tags": copy_tree(self.tags),
            "pipeline": self.pipeline,
            "source_dir": str(self.source_dir),
            "overrides": [_mask_override(o) for o in self.overrides] if mask else list(self.overrides),
            "config_hash": self.config_hash,
            "env": env,
            "settings": settings,
            "trials": [t.to_container(mask) for t in self.trials],
            **(
                {"searches": [{**t.to_container(mask), "search": s.to_container()} for t, s in self.searches]}
                if self.searches
                else {}
            ),
        }

    def __repr__(self) -> str:
        return (
            f"ExperimentSpec(name={self.name!r}, id={self.id}, trials={len(self.trials)}, "
            f"runs={sum(t.repeat for t in self.trials)}, pipeline={self.pipeline!r})"
        )
