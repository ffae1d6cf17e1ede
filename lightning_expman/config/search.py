"""A trial's ``search:`` block (or the guide's ``hpo:`` form): parsed and validated into a
:class:`SearchSpec`. Nothing here imports Optuna; :mod:`lightning_expman.search` turns the spec
into Optuna distributions, samplers and pruners when a search runs.

Two forms are accepted, in a trial of trials.yaml or in experiment.yaml (there it searches every
trial that has no block of its own)::

    search:                              # the full form
      num_trials: 20
      metric: val_acc                    # or a list of metrics (multi-objective: sampler nsga2)
      direction: maximize                # or mode: max (default: minimize; max for *acc*)
      objective: best                    # best (default) or last epoch of each repeat
      sampler: tpe                       # tpe (default), random, grid, cmaes, gp, nsga2; or
                                         # {type: tpe, n_startup_trials: 5, ...}
      pruner: median                     # median, hyperband, successive_halving, none (default)
                                         # or {type: median, n_warmup_steps: 2, ...}
      space:
        model.init_args.lr: {low: 1.0e-4, high: 1.0e-1, log: true}   # float
        model.init_args.hidden: {low: 16, high: 128, step: 16}       # int (int bounds)
        model.init_args.dropout: [0.0, 0.1, 0.3]                    # categorical
        data.init_args.batch_size: {choices: [32, 64]}              # categorical

    hpo:                                 # the guide's form, accepted as written
      param_space: {learning_rate: [0.0001, 0.001, 0.01], batch_size: [16, 32, 64]}
      num_trials: 10

A space key is a dotted settings key. A bare name that is not a top-level setting (the guide's
``learning_rate``) is resolved to the one settings key ending with that name
(the shallowest one when several do: ``training.batch_size`` before
``data.init_args.batch_size``; ``model.init_args.lr`` is not matched by ``learning_rate``), or
to an argument of the model's / data module's class (added to its ``init_args``); see
:mod:`.search_space`. Every problem is one :class:`ConfigError` line naming the file, the key
and the bad value.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError
from ._util import hint, parse_key, short
from .search_space import _is_int, distribution, resolve_key

__all__ = ["PRUNERS", "SAMPLERS", "SEARCH_FORMS", "SearchSpec", "parse_search", "split_searches"]

SEARCH_FORMS = ("search", "hpo")
"""The trial keys that hold a search block."""

SEARCH_KEYS = (
    "num_trials",
    "metric",
    "direction",
    "mode",
    "objective",
    "sampler",
    "pruner",
    "space",
    "param_space",
)
SAMPLERS = ("tpe", "random", "grid", "cmaes", "gp", "nsga2")
PRUNERS = ("median", "hyperband", "successive_halving", "none")
OBJECTIVES = ("best", "last")
_DIRECTIONS = {"minimize": "minimize", "min": "minimize", "maximize": "maximize", "max": "maximize"}


@dataclass(frozen=True)
class SearchSpec:
    """A validated search block.

    Attributes:
        num_trials: how many Optuna trials the study holds when done (failed-and-replaced
            trials aside).
        metrics: the metric(s) the objective reads (one per objective).
        directions: ``"minimize"``/``"maximize"``, one per metric.
        objective: ``"best"`` (each repeat's best epoch value, the checkpoint's choice) or
            ``"last"`` (its final epoch); the value told to Optuna is the mean over repeats.
        sampler: ``(name, options)``; pruner likewise (``("none", {})`` without pruning).
        space: dotted settings key -> distribution as plain data:
            ``{"type": "categorical", "choices": [...]}``, ``{"type": "float"|"int", "low", "high",
            "log", "step"}``.
        form: ``"search"`` or ``"hpo"`` (the key it was written under).
    """

    num_trials: int
    metrics: tuple[str, ...]
    directions: tuple[str, ...]
    objective: str = "best"
    sampler: tuple[str, dict[str, Any]] = ("tpe", {})
    pruner: tuple[str, dict[str, Any]] = ("none", {})
    space: dict[str, dict[str, Any]] = field(default_factory=dict)
    form: str = "search"

    def space_parts(self) -> dict[str, list[str | int]]:
        return {key: parse_key(key) or [key] for key in self.space}

    def to_container(self) -> dict[str, Any]:
        """Plain data (stored with the experiment config; part of its config hash)."""
        return {
            "num_trials": self.num_trials,
            "metrics": list(self.metrics),
            "directions": list(self.directions),
            "objective": self.objective,
            "sampler": {"type": self.sampler[0], **self.sampler[1]},
            "pruner": {"type": self.pruner[0], **self.pruner[1]},
            "space": {k: dict(v) for k, v in self.space.items()},
        }

    def describe(self) -> list[str]:
        """Human-readable lines for ``--dry-run``: budget, objective, sampler, pruner, space."""
        metric = ", ".join(f"{m} ({d})" for m, d in zip(self.metrics, self.directions))
        lines = [
            f"budget: {self.num_trials} trials; objective: mean over repeats of the "
            f"{self.objective} {metric}",
            f"sampler: {_named(self.sampler)}; pruner: {_named(self.pruner)}",
        ]
        for key, dist in self.space.items():
            if dist["type"] == "categorical":
                lines.append(f"  {key}: one of {dist['choices']}")
            else:
                extra = (" log" if dist.get("log") else "") + (
                    f" step {dist['step']}" if dist.get("step") else ""
                )
                lines.append(f"  {key}: {dist['type']} in [{dist['low']}, {dist['high']}]{extra}")
        return lines


def _named(item: tuple[str, dict[str, Any]]) -> str:
    name, opts = item
    return name + (f" {opts}" if opts else "")


def _err(message: str, file: str, key: str) -> ConfigError:
    return ConfigError(message, file=file, key=key)


def parse_search(
    block: Any,
    file: str,
    where: str,
    form: str,
    settings: dict[str, Any],
    grid_keys: Sequence[str] = (),
) -> SearchSpec:
    """Validate a trial's ``search:``/``hpo:`` block against the trial's merged settings.

    Args:
        block: the block as read from YAML.
        file: trials.yaml's display name; ``where``: the block's key (``[0].search``).
        form: ``"search"`` or ``"hpo"``.
        settings: the trial's merged settings (space keys must name one of them).
        grid_keys: the trial's grid keys (a key cannot be both searched and gridded).

    Raises:
        ConfigError: one line naming file, key and bad value.
    """
    if not isinstance(block, Mapping) or not block:
        raise _err(
            f"must be a mapping with num_trials and space (or param_space), got {short(block)}", file, where
        )
    for key in block:
        if key not in SEARCH_KEYS:
            raise _err(
                f"unknown key {short(key)}{hint(str(key), SEARCH_KEYS)}; valid: {', '.join(SEARCH_KEYS)}",
                file,
                f"{where}.{key}",
            )
    num = block.get("num_trials")
    if num is None:
        raise _err("is required (how many trials the study runs)", file, f"{where}.num_trials")
    if not _is_int(num) or num < 1:
        raise _err(f"must be an integer >= 1, got {short(num)}", file, f"{where}.num_trials")

    metrics = _metrics(block.get("metric", "val_loss"), file, f"{where}.metric")
    directions = _directions(block, metrics, file, where)
    objective = block.get("objective", "best")
    if objective not in OBJECTIVES:
        raise _err(
            f"unknown objective {short(objective)}; valid: {', '.join(OBJECTIVES)}",
            file,
            f"{where}.objective",
        )
    sampler = _named_block(block.get("sampler", "tpe"), SAMPLERS, file, f"{where}.sampler")
    pruner = _named_block(block.get("pruner", "none"), PRUNERS, file, f"{where}.pruner")
    if len(metrics) > 1:
        if sampler[0] not in ("nsga2", "random", "tpe", "gp"):
            raise _err(
                f"sampler {sampler[0]!r} optimizes one metric; several metrics need nsga2 "
                "(or tpe, random, gp)",
                file,
                f"{where}.sampler",
            )
        if pruner[0] != "none":
            raise _err(
                f"pruning needs a single metric, got {list(metrics)} with pruner {pruner[0]!r}",
                file,
                f"{where}.pruner",
            )

    if "space" in block and "param_space" in block:
        raise _err("give either space or param_space (the hpo form), not both", file, f"{where}.param_space")
    space_key = "space" if "space" in block else "param_space"
    raw_space = block.get(space_key)
    if not isinstance(raw_space, Mapping) or not raw_space:
        raise _err(
            f"is required: a non-empty mapping of settings keys to distributions, got {short(raw_space)}",
            file,
            f"{where}.{space_key}",
        )
    space: dict[str, dict[str, Any]] = {}
    for written, value in raw_space.items():
        at = f"{where}.{space_key}.{written}"
        key = resolve_key(written, settings, file, at)
        if key in grid_keys:
            raise _err(f"{key!r} is varied by the trial's grid too; search it or grid it", file, at)
        if key in space:
            raise _err(f"{key!r} is searched twice", file, at)
        space[key] = distribution(value, file, at)
    if sampler[0] == "grid":
        for key, dist in space.items():
            if dist["type"] != "categorical" and not dist.get("step"):
                raise _err(
                    "the grid sampler needs finite choices: a list, {choices: [...]} or a step",
                    file,
                    f"{where}.{space_key}.{key}",
                )
    if sampler[0] == "cmaes" and all(d["type"] == "categorical" for d in space.values()):
        raise _err("cmaes samples numbers; the space has only categorical keys", file, f"{where}.sampler")
    return SearchSpec(
        num_trials=num,
        metrics=metrics,
        directions=directions,
        objective=objective,
        sampler=sampler,
        pruner=pruner,
        space=space,
        form=form,
    )


def _metrics(value: Any, file: str, key: str) -> tuple[str, ...]:
    items = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(m, str) and m.strip() for m in items):
        raise _err(f"must be a metric name or a list of them, got {short(value)}", file, key)
    if len(set(items)) != len(items):
        raise _err(f"lists a metric twice: {short(value)}", file, key)
    return tuple(m.strip() for m in items)


def _directions(block: Mapping[str, Any], metrics: tuple[str, ...], file: str, where: str) -> tuple[str, ...]:
    if "direction" in block and "mode" in block:
        raise _err("give direction or mode, not both", file, f"{where}.mode")
    key = "mode" if "mode" in block else "direction"
    value = block.get(key)
    if value is None:  # the metric's usual sense, as `expman compare` guesses it
        return tuple("maximize" if "acc" in m or "f1" in m or "auc" in m else "minimize" for m in metrics)
    items = value if isinstance(value, list) else [value] * len(metrics)
    if len(items) != len(metrics):
        raise _err(
            f"gives {len(items)} directions for {len(metrics)} metrics ({short(value)})",
            file,
            f"{where}.{key}",
        )
    out = []
    for item in items:
        d = _DIRECTIONS.get(str(item).lower()) if isinstance(item, str) else None
        if d is None:
            raise _err(
                f"unknown direction {short(item)}; valid: minimize, maximize (or min, max)",
                file,
                f"{where}.{key}",
            )
        out.append(d)
    return tuple(out)


def _named_block(value: Any, valid: Sequence[str], file: str, key: str) -> tuple[str, dict[str, Any]]:
    """``name`` or ``{type: name, **options}``; option names are checked when the search is built."""
    if isinstance(value, Mapping):
        opts = dict(value)
        name = opts.pop("type", None)
        if name is None:
            raise _err(f"needs 'type' (one of {', '.join(valid)}), got {short(value)}", file, key)
    else:
        name, opts = value, {}
    if not isinstance(name, str) or name.lower() not in valid:
        raise _err(f"unknown {short(name)}{hint(str(name), valid)}; valid: {', '.join(valid)}", file, key)
    for opt in opts:
        if not isinstance(opt, str) or not opt.isidentifier():
            raise _err(f"option names must be identifiers, got {short(opt)}", file, key)
    return name.lower(), opts


def split_searches(trials: list[Any], searched: dict[str, SearchSpec]) -> list[tuple[Any, SearchSpec]]:
    """Move the searched (template) trials out of ``trials`` (in place, renumbering the rest);
    returns ``[(template, search)]`` for :class:`ExperimentSpec` ``searches``."""
    if not searched:
        return []
    templates = [(t, searched[t.name]) for t in trials if t.name in searched]
    trials[:] = [t for t in trials if t.name not in searched]
    for i, t in enumerate(trials):
        t.index = i
    for i, (t, _) in enumerate(templates):
        t.index = i
    return templates
