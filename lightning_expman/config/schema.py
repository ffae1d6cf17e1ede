"""Validation of the standard Lightning pipeline's settings (LightningCLI style).

Settings of the standard pipeline::

    seed: 42                                   # int >= 0, optional (default 0)
    model:   {class_path: pkg.mod.Class, init_args: {...}}     # required
    data:    {class_path: pkg.mod.Class, init_args: {...}}     # optional (or null)
    trainer: {max_epochs: 10, ...}             # keyword arguments of lightning.Trainer
    callbacks:                                 # optional list
      - {type: early_stopping, monitor: val_loss, patience: 3}
      - {type: checkpoint, interval: 1}
      - {type: metrics_tracker}
      - {class_path: pkg.mod.MyCallback, init_args: {...}}

Any other top-level key is a free variable (for interpolation, ``${hidden}``) unless it is
within typo distance of a known key (``trainr``), which is flagged. ``class_path`` values are
checked without importing (see :mod:`lightning_expman.config.classpath`), and ``init_args``
against the target's ``__init__`` parameters when the source shows them.

A custom ``pipeline:`` (experiment.yaml) skips all of this except ``seed``.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

from ._util import closest, format_key, hint, short
from .classpath import resolve_target

__all__ = [
    "CALLBACK_CLASSES",
    "CALLBACK_TYPES",
    "OPEN_SECTIONS",
    "SEED_MAX",
    "STANDARD_KEYS",
    "TRAINER_PARAMS",
    "SettingsIssue",
    "callback_types",
    "validate_resources",
    "validate_seed",
    "validate_standard",
]

TRAINER_PARAMS: tuple[str, ...] = (
    "accelerator", "strategy", "devices", "num_nodes", "precision", "logger", "callbacks", "fast_dev_run",
    "max_epochs", "min_epochs", "max_steps", "min_steps", "max_time", "limit_train_batches",
    "limit_val_batches", "limit_test_batches", "limit_predict_batches", "overfit_batches",
    "val_check_interval", "check_val_every_n_epoch", "num_sanity_val_steps", "log_every_n_steps",
    "enable_checkpointing", "enable_progress_bar", "enable_model_summary", "accumulate_grad_batches",
    "gradient_clip_val", "gradient_clip_algorithm", "deterministic", "benchmark", "inference_mode",
    "use_distributed_sampler", "profiler", "detect_anomaly", "barebones", "plugins", "sync_batchnorm",
    "reload_dataloaders_every_n_epochs", "default_root_dir", "enable_autolog_hparams", "model_registry",
)  # fmt: skip
"""``lightning.Trainer.__init__`` parameter names (Lightning 2.6); a test keeps it in sync."""

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

_INT = (int,)
_NUM = (int, float)
_TRAINER_TYPES: dict[str, tuple[tuple[type, ...], str]] = {
    **{k: (_INT, "an integer") for k in ("num_nodes", "num_sanity_val_steps", "log_every_n_steps",
                                          "reload_dataloaders_every_n_epochs")},
    **{k: ((int, type(None)), "an integer or null") for k in ("max_epochs", "min_epochs", "max_steps",
                                                               "min_steps", "check_val_every_n_epoch")},
    **{k: ((bool, type(None)), "true, false or null") for k in (
        "enable_checkpointing", "enable_progress_bar", "enable_model_summary", "deterministic",
        "benchmark", "inference_mode", "use_distributed_sampler", "detect_anomaly", "barebones",
        "sync_batchnorm")},
    **{k: ((*_NUM, type(None)), "a number or null") for k in (
        "limit_train_batches", "limit_val_batches", "limit_test_batches", "limit_predict_batches",
        "overfit_batches", "val_check_interval", "gradient_clip_val")},
}  # fmt: skip


class SettingsIssue(Exception):
    """An invalid value at a path inside a trial's settings (the loader adds the file)."""

    def __init__(self, parts: list[str | int], message: str) -> None:
        self.parts = parts
        self.message = message
        super().__init__(f"{format_key(parts)}: {message}")


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


def _check_kwargs(path: list[str | int], kwargs: Mapping[str, Any], target_path: str, what: str) -> None:
    target = resolve_target(target_path)
    if target.error is not None:
        return
    if target.params is not None:
        for key in kwargs:
            if key not in target.params:
                valid = ", ".join(target.params) or "(none)"
                raise SettingsIssue(
                    [*path, key],
                    f"unknown argument {key!r} of {what}{hint(str(key), target.params)}; valid: {valid}",
                )
    annotations = dict(target.annotations)
    for key, value in kwargs.items():
        annotation = annotations.get(key)
        if annotation is not None and not _fits(value, annotation):
            raise SettingsIssue(
                [*path, key], f"must be {annotation} (the annotation of {what}), got {short(value)}"
            )


# Annotation names checked against YAML values; any other name (a class, an enum, a Callable,
# a type variable) is accepted unchecked: a wrong guess must never refuse a valid config.
_SIMPLE_TYPES: dict[str, tuple[type, ...]] = {
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "str": (str,),
    "Path": (str,),
    "PathLike": (str,),
    "list": (list,),
    "List": (list,),
    "tuple": (list,),
    "Tuple": (list,),
    "Sequence": (list,),
    "Iterable": (list,),
    "dict": (dict,),
    "Dict": (dict,),
    "Mapping": (dict,),
}


def _fits(value: Any, annotation: str) -> bool:
    """Whether a YAML value can be passed for a parameter annotated ``annotation`` (source text).

    Understood: the builtin scalars (an int is a float; a bool is neither), ``None``, unions
    (``X | None``, ``Optional``, ``Union``), ``Literal`` and the containers (list/tuple/Sequence,
    dict/Mapping; their items are not checked). Anything else fits.
    """
    import ast

    try:
        node = ast.parse(annotation, mode="eval").body
    except SyntaxError:
        return True
    return _fits_node(value, node)


def _fits_node(value: Any, node: Any) -> bool:
    import ast

    if isinstance(node, ast.Constant):
        if node.value is None:
            return value is None
        return _fits(value, node.value) if isinstance(node.value, str) else True  # "quoted" refs
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return _fits_node(value, node.left) or _fits_node(value, node.right)
    if isinstance(node, ast.Subscript):
        outer = _name(node.value)
        args = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        if outer == "Optional":
            return value is None or _fits_node(value, args[0])
        if outer == "Union":
            return any(_fits_node(value, a) for a in args)
        if outer == "Literal":
            return any(isinstance(a, ast.Constant) and a.value == value for a in args)
        if outer == "Annotated":
            return _fits_node(value, args[0])
        node = node.value
    name = _name(node)
    if name in ("None", "NoneType"):
        return value is None
    types = _SIMPLE_TYPES.get(name or "")
    if types is None:
        return True
    if isinstance(value, bool) and bool not in types:
        return False
    return isinstance(value, types)


def _name(node: Any) -> str | None:
    import ast

    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _check_class(path: list[str | int], node: Any, required: bool) -> None:
    if node is None:
        if required:
            raise SettingsIssue(
                path, "is required: give {class_path: package.module.Class, init_args: {...}}"
            )
        return
    if not isinstance(node, Mapping):
        raise SettingsIssue(path, f"must be a mapping with 'class_path' (and 'init_args'), got {short(node)}")
    for key in node:
        if key not in ("class_path", "init_args"):
            raise SettingsIssue(
                [*path, key],
                f"unknown key (value {short(node[key])}){hint(str(key), ('class_path', 'init_args'), 0.4)}; "
                "valid: class_path, init_args",
            )
    class_path = node.get("class_path")
    if class_path is None:
        raise SettingsIssue([*path, "class_path"], "is required (e.g. 'my_pkg.models.MyModel')")
    if not isinstance(class_path, str):
        raise SettingsIssue([*path, "class_path"], f"must be a string, got {short(class_path)}")
    target = resolve_target(class_path)
    if target.error is not None:
        raise SettingsIssue([*path, "class_path"], f"{class_path!r} does not resolve: {target.error}")
    if target.kind == "function":
        raise SettingsIssue(
            [*path, "class_path"], f"{class_path!r} is a function, not a class: name the class to instantiate"
        )
    init_args = node.get("init_args")
    if init_args is None:
        return
    if not isinstance(init_args, Mapping):
        raise SettingsIssue(
            [*path, "init_args"], f"must be a mapping of keyword arguments, got {short(init_args)}"
        )
    _check_kwargs([*path, "init_args"], init_args, class_path, class_path)


def _check_trainer(trainer: Any) -> None:
    if trainer is None:
        return
    if not isinstance(trainer, Mapping):
        raise SettingsIssue(
            ["trainer"], f"must be a mapping of lightning.Trainer arguments, got {short(trainer)}"
        )
    for key, value in trainer.items():
        if key not in TRAINER_PARAMS:
            raise SettingsIssue(
                ["trainer", key],
                f"unknown lightning.Trainer argument{hint(str(key), TRAINER_PARAMS)} (value {short(value)})",
            )
        if key == "callbacks":
            raise SettingsIssue(
                ["trainer", key], "list callbacks in the top-level 'callbacks:' of settings instead"
            )
        if key == "logger":
            raise SettingsIssue(
                ["trainer", key],
                f"the logger is set by lightning_expman (value {short(value)}); "
                "add trackers in env.yaml instead",
            )
        expected = _TRAINER_TYPES.get(key)
        if expected and not (
            isinstance(value, expected[0]) and (bool in expected[0] or not isinstance(value, bool))
        ):
            raise SettingsIssue(["trainer", key], f"must be {expected[1]}, got {short(value)}")
        if key in ("max_epochs", "max_steps") and _is_int(value) and value < -1:
            raise SettingsIssue(["trainer", key], f"must be >= -1 (-1 = unlimited), got {value}")


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
            _check_class(path, cb, required=True)
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
            _check_kwargs(path, kwargs, CALLBACK_CLASSES[kind], f"callback {kind!r}")


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
    _check_class(["model"], settings.get("model"), required=True)
    _check_class(["data"], settings.get("data"), required=False)
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
