"""Validation of the standard Lightning pipeline's settings (LightningCLI style).

Settings of the standard pipeline::

    seed: 42                                   # int >= 0, optional (default 0)
    model:   {class_path: pkg.mod.Class, init_args: {...}}     # required
    data:    {class_path: pkg.mod.Class, init_args: {...}}     # optional (or null)
    trainer: {max_epochs: 10, ...}             # keyword arguments of the installed lightning.Trainer
      logger: {class_path: lightning.pytorch.loggers.CSVLogger}  # or a list: beside ExpmanLogger
    callbacks:                                 # optional list
      - {type: early_stopping, monitor: val_loss, patience: 3}
      - {type: checkpoint, interval: 1}
      - {type: metrics_tracker}
      - {class_path: pkg.mod.MyCallback, init_args: {...}}

Any other top-level key is a free variable (for interpolation, ``${hidden}``) unless it is
within typo distance of a known key (``trainr``), which is flagged. ``class_path`` values are
checked without importing (see :mod:`lightning_expman.config.classpath`), and ``init_args``
against the target's ``__init__`` parameters and their annotations when the source shows them,
recursively through the ``{class_path, init_args}`` values nested inside ``init_args`` (see
:mod:`.typecheck`). ``trainer:`` keys are checked against the installed Lightning's
``Trainer.__init__`` (names and annotations, read from its source).

A custom ``pipeline:`` (experiment.yaml) skips all of this except ``seed``.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

from ._util import closest, hint, short
from .classpath import resolve_target
from .typecheck import SettingsIssue, check_kwargs, check_nested, check_spec, fits

__all__ = [
    "CALLBACK_CLASSES",
    "CALLBACK_TYPES",
    "OPEN_SECTIONS",
    "SEED_MAX",
    "STANDARD_KEYS",
    "TRAINER_CLASS",
    "SettingsIssue",
    "callback_types",
    "check_loggers",
    "trainer_params",
    "validate_resources",
    "validate_seed",
    "validate_standard",
]

STANDARD_KEYS: tuple[str, ...] = ("seed", "model", "data", "trainer", "callbacks", "test", "resources")
"""Top-level settings keys the standard pipeline reads (``resources``: what a cluster executor
reserves for one run, see :func:`validate_resources`)."""

RESOURCE_KEYS: tuple[str, ...] = ("cpus", "gpus", "memory")
"""Keys of ``settings.resources``: CPUs and GPUs (numbers, fractions allowed), memory in bytes."""

CALLBACK_TYPES: tuple[str, ...] = ("early_stopping", "checkpoint", "metrics_tracker")
"""Values of a callback's ``type`` (or give ``class_path`` instead)."""

CALLBACK_CLASSES: dict[str, str] = {
    "early_stopping": "lightning_expman.callbacks.EarlyStopping",
    "checkpoint": "lightning_expman.callbacks.CheckpointCallback",
    "metrics_tracker": "lightning_expman.callbacks.MetricsTracker",
}
"""Where each callback ``type`` is implemented: its other keys are checked against that class's
``__init__`` when its source is readable (skipped otherwise)."""

OPEN_SECTIONS: tuple[str, ...] = ("trainer", "model.init_args", "data.init_args")
"""Sections where ``--set`` / ``grid:`` may add a key absent from the files: they are validated
(Trainer parameters, the class's ``__init__`` arguments), so a typo is still caught."""

SEED_MAX = 2**32 - 1  # lightning.seed_everything's bound (numpy's)

_NUM = (int, float)

TRAINER_CLASS = "lightning.pytorch.Trainer"
"""Whose ``__init__`` signature, read from the installed source, checks ``trainer:`` keys."""


def callback_types() -> tuple[str, ...]:
    """Valid callback ``type`` values: the built-ins, plus any registered with
    ``lightning_expman.callbacks.register_callback`` when that module is already imported (a
    Python user registering a type has imported it; the CLI never needs to)."""
    module = sys.modules.get("lightning_expman.lightning.callbacks")
    registry = getattr(module, "CALLBACKS", None)
    if isinstance(registry, Mapping):
        return tuple(dict.fromkeys([*CALLBACK_TYPES, *map(str, registry)]))
    return CALLBACK_TYPES


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def validate_seed(settings: Mapping[str, Any], repeat: int) -> int:
    """Return ``settings.seed`` (0 when absent) after checking it is an int in range for every repeat."""
    seed = settings.get("seed", 0)
    if seed is None:
        seed = 0
    if not _is_int(seed):
        raise SettingsIssue(["seed"], f"must be an integer, got {short(seed)}")
    if seed < 0 or seed + repeat - 1 > SEED_MAX:
        raise SettingsIssue(
            ["seed"], f"must be between 0 and {SEED_MAX - repeat + 1} for {repeat} repeat(s), got {seed}"
        )
    return seed


def trainer_params() -> tuple[tuple[str, ...] | None, dict[str, str]]:
    """The installed Lightning's ``Trainer.__init__`` parameters and their annotations (source text).

    Read from the source of the installed ``lightning`` package without importing it (see
    :mod:`.classpath`; cached per process), so a ``trainer:`` key is checked against the Lightning
    that will run it. ``(None, {})`` when the source cannot be read: names are then not checked.

    Example:
        >>> params, annotations = trainer_params()
        >>> "max_epochs" in params, annotations["max_epochs"]
        (True, 'Optional[int]')
    """
    target = resolve_target(TRAINER_CLASS)
    if target.error is not None:
        return None, {}
    return target.params, dict(target.annotations)


def _check_trainer(trainer: Any) -> None:
    if trainer is None:
        return
    if not isinstance(trainer, Mapping):
        raise SettingsIssue(
            ["trainer"], f"must be a mapping of lightning.Trainer arguments, got {short(trainer)}"
        )
    params, annotations = trainer_params()
    for key, value in trainer.items():
        if params is not None and key not in params:
            raise SettingsIssue(
                ["trainer", key],
                f"not an argument of the installed lightning.Trainer{hint(str(key), params)} "
                f"(value {short(value)})",
            )
        if key == "callbacks":
            raise SettingsIssue(
                ["trainer", key], "list callbacks in the top-level 'callbacks:' of settings instead"
            )
        if key == "logger":
            check_loggers(value)
            continue
        annotation = annotations.get(key)
        if annotation is not None and not fits(value, annotation):
            raise SettingsIssue(
                ["trainer", key], f"must be {annotation} (lightning.Trainer's annotation), got {short(value)}"
            )
        check_nested(["trainer", key], value)  # a plugin or profiler given as a spec
        if key in ("max_epochs", "max_steps") and _is_int(value) and value < -1:
            raise SettingsIssue(["trainer", key], f"must be >= -1 (-1 = unlimited), got {value}")
    for key in ("devices", "num_nodes"):
        if key in trainer and _several(trainer[key]):
            raise SettingsIssue(["trainer", key], f"{short(trainer[key])}: {MULTI_PROCESS}")


MULTI_PROCESS = (
    "expman run fits each run in one process and cannot follow a fit across several "
    "(ddp, ddp_spawn, fsdp, deepspeed); set 1, or fit in your own script with "
    "logger=ExpmanLogger(...), which records multi-process fits"
)
"""Why a run of ``expman run`` may not ask for several devices or nodes (one message, two checks:
the settings at load, the built Trainer at run time for ``devices: auto`` on several GPUs)."""


def _several(value: Any) -> bool:
    """``devices``/``num_nodes`` asking for more than one: a count > 1, -1 (all), several ids."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return value > 1 or value == -1
    if isinstance(value, list | tuple):
        return len(value) > 1
    if isinstance(value, str):
        text = value.strip()
        if "," in text:
            return len([v for v in text.split(",") if v.strip()]) > 1
        return text == "-1" or (text.isdigit() and int(text) > 1)
    return False


def check_loggers(value: Any) -> None:
    """Check ``trainer.logger``: ``true``/``false``/``null`` or one ``{class_path, init_args}`` or a
    list of them (Lightning loggers run beside the ExpmanLogger).

    Raises:
        SettingsIssue: anything else, or a spec that does not check (see :func:`.typecheck.check_spec`).
    """
    if value is None or isinstance(value, bool):
        return
    items = value if isinstance(value, list) else [value]
    for i, item in enumerate(items):
        path: list[str | int] = ["trainer", "logger", i] if isinstance(value, list) else ["trainer", "logger"]
        if not isinstance(item, Mapping):
            raise SettingsIssue(
                path,
                "must be a Lightning logger {class_path: ..., init_args: {...}} (or a list of them, "
                f"or true/false), got {short(item)}",
            )
        check_spec(path, item, required=True)


def _check_callbacks(callbacks: Any) -> None:
    if callbacks is None:
        return
    if not isinstance(callbacks, list):
        raise SettingsIssue(
            ["callbacks"],
            f"must be a list of callbacks ({{type: ...}} or {{class_path: ...}}), got {short(callbacks)}",
        )
    types = callback_types()
    valid = ", ".join(types)
    for i, cb in enumerate(callbacks):
        path: list[str | int] = ["callbacks", i]
        if not isinstance(cb, Mapping):
            raise SettingsIssue(
                path, f"must be a mapping with 'type' ({valid}) or 'class_path', got {short(cb)}"
            )
        if "class_path" in cb:
            if "type" in cb:
                raise SettingsIssue([*path, "type"], "give either 'type' or 'class_path', not both")
            check_spec(path, cb, required=True)
            continue
        kind = cb.get("type")
        if kind is None:
            raise SettingsIssue(
                path, f"needs 'type' ({valid}) or 'class_path' (got keys {sorted(map(str, cb))})"
            )
        if kind not in types:
            raise SettingsIssue(
                [*path, "type"],
                f"unknown callback type {short(kind)}{hint(str(kind), types)}; "
                f"valid: {valid} (or use class_path)",
            )
        if kind in CALLBACK_CLASSES:
            kwargs = {k: v for k, v in cb.items() if k != "type"}
            check_kwargs(path, kwargs, CALLBACK_CLASSES[kind], f"callback {kind!r}")


def validate_standard(settings: Mapping[str, Any]) -> None:
    """Check the settings of one trial of the standard Lightning pipeline.

    Raises:
        SettingsIssue: the first problem found, with its path inside ``settings``.
    """
    for key in settings:
        if key not in STANDARD_KEYS and isinstance(key, str):
            near = closest(key, STANDARD_KEYS, cutoff=0.75)
            if near is not None:
                raise SettingsIssue(
                    [key],
                    f"unknown key; did you mean {near!r}? (known: {', '.join(STANDARD_KEYS)}; "
                    "other top-level keys are free variables)",
                )
    check_spec(["model"], settings.get("model"), required=True)
    check_spec(["data"], settings.get("data"), required=False)
    _check_trainer(settings.get("trainer"))
    _check_callbacks(settings.get("callbacks"))
    test = settings.get("test", "auto")
    if test not in ("auto", True, False):
        raise SettingsIssue(["test"], f"must be auto, true or false (test after fit), got {short(test)}")
    validate_resources(settings.get("resources"))


def validate_resources(resources: Any) -> None:
    """Check ``settings.resources`` (``{cpus: 2, gpus: 1, memory: 4e9}``; absent: 1 CPU, no GPU).

    Raises:
        SettingsIssue: an unknown key or a value that is not a number >= 0 (``cpus`` > 0).
    """
    if resources is None:
        return
    if not isinstance(resources, Mapping):
        raise SettingsIssue(
            ["resources"], f"must be a mapping like {{cpus: 2, gpus: 1}}, got {short(resources)}"
        )
    for key, value in resources.items():
        if key not in RESOURCE_KEYS:
            raise SettingsIssue(
                ["resources", key],
                f"unknown resource{hint(str(key), RESOURCE_KEYS)}; valid: {', '.join(RESOURCE_KEYS)}",
            )
        number = isinstance(value, _NUM) and not isinstance(value, bool)
        if not number or value < 0 or (key == "cpus" and value == 0):
            need = "a number > 0" if key == "cpus" else "a number >= 0"
            raise SettingsIssue(["resources", key], f"must be {need}, got {short(value)}")
