"""A validated :class:`~lightning_expman.config.search.SearchSpec` as Optuna objects: the
distributions, the sampler (seeded from the experiment seed) and the pruner.

Option names of a sampler/pruner (``{type: tpe, n_startup_trials: 5}``) are checked against the
Optuna class's signature, so a typo is a one-line :class:`ConfigError`, not a ``TypeError``.
"""

from __future__ import annotations

import inspect
import warnings
from typing import TYPE_CHECKING, Any

from ..config._util import hint
from ..errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    import optuna

    from ..config.search import SearchSpec

__all__ = ["build_pruner", "build_sampler", "distributions", "require_optuna"]


def require_optuna() -> Any:
    """Import Optuna, or say which extra to install."""
    try:
        import optuna
    except ImportError as e:  # pragma: no cover - the extra is installed in CI
        raise ConfigError(
            "a search: / hpo: block needs Optuna: pip install 'lightning-expman[optuna]'"
        ) from e
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # Heartbeats and fail_stale_trials are "experimental" in Optuna's words, and it warns that
    # heartbeats are meant for Study.optimize: this planner drives them itself (ask/tell).
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
    return optuna


def distributions(search: SearchSpec) -> dict[str, optuna.distributions.BaseDistribution]:
    """Dotted settings key -> Optuna distribution."""
    optuna = require_optuna()
    D = optuna.distributions
    out: dict[str, Any] = {}
    for key, d in search.space.items():
        if d["type"] == "categorical":
            out[key] = D.CategoricalDistribution(list(d["choices"]))
        elif d["type"] == "int":
            out[key] = D.IntDistribution(d["low"], d["high"], log=d["log"], step=d.get("step", 1))
        else:
            out[key] = D.FloatDistribution(
                float(d["low"]), float(d["high"]), log=d["log"], step=d.get("step")
            )
    return out


def _build(cls: Any, options: dict[str, Any], what: str, where: str, **fixed: Any) -> Any:
    params = inspect.signature(cls).parameters
    for name in options:
        if name not in params or name in fixed:
            valid = [p for p in params if p not in fixed and p != "self"]
            raise ConfigError(
                f"{what} has no option {name!r}{hint(name, valid)}; valid: {', '.join(valid)}", key=where
            )
    try:
        return cls(**fixed, **options)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{what}: {e} (options {options})", key=where) from None


def build_sampler(
    search: SearchSpec, seed: int, where: str = "search.sampler"
) -> optuna.samplers.BaseSampler:
    """The search's sampler; its seed is the experiment seed (``settings.seed``)."""
    optuna = require_optuna()
    S = optuna.samplers
    name, options = search.sampler
    if name == "grid":
        space = {}
        for key, d in search.space.items():
            if d["type"] == "categorical":
                space[key] = list(d["choices"])
            else:
                n = round((d["high"] - d["low"]) / d["step"])
                space[key] = [d["low"] + i * d["step"] for i in range(n + 1)]
        return _build(S.GridSampler, options, "sampler grid", where, search_space=space, seed=seed)
    classes = {
        "tpe": S.TPESampler,
        "random": S.RandomSampler,
        "cmaes": S.CmaEsSampler,
        "gp": getattr(S, "GPSampler", None),
        "nsga2": S.NSGAIISampler,
    }
    cls = classes[name]
    if cls is None:  # pragma: no cover - old Optuna
        raise ConfigError(f"sampler {name!r} needs a newer Optuna", key=where)
    return _build(cls, options, f"sampler {name}", where, seed=seed)


def build_pruner(search: SearchSpec, where: str = "search.pruner") -> optuna.pruners.BasePruner:
    """The search's pruner (``NopPruner`` for ``none``)."""
    optuna = require_optuna()
    P = optuna.pruners
    name, options = search.pruner
    classes = {
        "median": P.MedianPruner,
        "hyperband": P.HyperbandPruner,
        "successive_halving": P.SuccessiveHalvingPruner,
        "none": P.NopPruner,
    }
    return _build(classes[name], options, f"pruner {name}", where)
