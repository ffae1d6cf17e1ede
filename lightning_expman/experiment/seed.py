"""The seed's ways into an experiment: ``Experiment(name=..., env=..., config_dir_path=...)`` and
pipeline factories that read the config in the seed's nested shape.

* :func:`load_seed_spec` loads a config folder for the seed's constructor: the given
  :class:`~lightning_expman.workspace.Environment` supplies the workspace, verbosity and trackers
  (instead of env.yaml), and ``name`` / ``id`` / ``desc`` replace experiment.yaml's.
* :class:`SeedShapedFactory` wraps a custom pipeline factory so that the ``config`` it receives has
  the settings both flat (``config.epochs``, as the seed's pipelines read them) and nested
  (``config.get("settings", {}).get("model_type")``, as the seed's factories read them), plus the
  trial's ``name``, ``id`` and ``repeat``. The default :class:`~lightning_expman.pipeline.PipelineFactory`
  is not wrapped.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config._util import to_plain

if TYPE_CHECKING:  # pragma: no cover
    from ..config import ExperimentSpec
    from ..workspace import Environment

__all__ = ["SeedShapedFactory", "env_config_of", "is_default_factory", "load_seed_spec", "seed_shaped"]


def is_default_factory(factory: Any) -> bool:
    """True for ``None`` or the built-in :class:`PipelineFactory` itself (not a subclass)."""
    from ..pipeline import PipelineFactory

    return factory is None or factory is PipelineFactory


def env_config_of(env: Environment) -> dict[str, Any]:
    """The env.yaml-shaped config of an environment: its workspace root, flags and trackers
    (with a ``db`` tracker at ``<workspace>/expman.db`` unless one is listed, as for env.yaml)."""
    from ..workspace import with_default_db

    workspace = str(env.workspace)
    trackers = with_default_db(env.config.get("trackers"), workspace)
    return {"workspace": workspace, "verbose": env.verbose, "debug": env.debug, "trackers": trackers}


def load_seed_spec(
    config_dir_path: str | os.PathLike[str],
    *,
    env: Environment | None,
    name: str | None,
    id: int | None,
    desc: str | None,
) -> ExperimentSpec:
    """Load ``config_dir_path`` for ``Experiment(name=..., id=..., desc=..., env=..., config_dir_path=...)``.

    The standard pipeline's settings are not checked at load time (the seed's configs name no
    model); a run whose pipeline cannot be built is recorded FAILED with that error.

    Raises:
        ConfigError: as :func:`lightning_expman.config.load`.
    """
    from ..config import load

    spec = load(Path(config_dir_path), standard=False)
    if env is not None:
        spec.replace_env(env_config_of(env))
    if name is not None:
        spec.name = str(name)
    if id is not None:
        spec.id = int(id)
    if desc is not None:
        spec.desc = str(desc)
    return spec


def seed_shaped(config: Any, trial: dict[str, Any]) -> Any:
    """``config`` (a run's flat settings) as a DictConfig that also has ``settings`` (the same
    settings, nested) and the trial's ``name`` / ``id`` / ``repeat``; keys of the settings win."""
    from omegaconf import OmegaConf

    data = to_plain(config) or {}
    shaped = {**trial, **data}
    shaped.setdefault("settings", data)
    return OmegaConf.create(shaped)


class SeedShapedFactory:
    """A custom pipeline factory called with the seed-shaped config (see :func:`seed_shaped`).

    Attributes:
        factory: the user's factory (its ``create(name, config, env, id)`` is called).
        trials: trial id -> ``{"name", "id", "repeat"}``.
    """

    def __init__(self, factory: Any, spec: ExperimentSpec) -> None:
        self.factory = factory
        self.trials = {t.id: {"name": t.name, "id": t.id, "repeat": t.repeat} for t in spec.trials}

    def create(self, name: str | None, config: Any, env: Any, id: Any = None) -> Any:
        """Call the user's factory with the seed-shaped config."""
        return self.factory.create(name, seed_shaped(config, self.trials.get(id, {})), env, id)

    def __repr__(self) -> str:
        return f"SeedShapedFactory({self.factory!r})"
