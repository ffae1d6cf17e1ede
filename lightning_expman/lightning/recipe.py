"""A drop-in run's recipe: what ``expman reproduce`` needs to fit it again without the user's script.

``expman run`` stores a run's settings (class paths, init args, Trainer arguments, callbacks) as
its config. A drop-in fit has only its hyperparameters; when a fit opens its run, the logger
adds ``context["recipe"]``:
the module's and datamodule's class paths with their ``save_hyperparameters`` values as init
args, and the Trainer arguments that decide what is trained (epochs, step and batch limits,
validation cadence, accumulation, clipping, precision). Callbacks are not recorded (they may
hold state a class path cannot rebuild).

A recipe rebuilds the run only when the classes are importable and every constructor argument
was saved with ``save_hyperparameters()`` (Lightning's own rule for ``load_from_checkpoint``).
"""

from __future__ import annotations

from typing import Any

__all__ = ["TRAINER_ARGS", "recipe"]

TRAINER_ARGS = (
    "max_epochs",
    "min_epochs",
    "max_steps",
    "min_steps",
    "limit_train_batches",
    "limit_val_batches",
    "limit_test_batches",
    "val_check_interval",
    "check_val_every_n_epoch",
    "num_sanity_val_steps",
    "log_every_n_steps",
    "accumulate_grad_batches",
    "gradient_clip_val",
    "gradient_clip_algorithm",
    "precision",
)
"""Trainer arguments recorded (read back from the Trainer's attributes of the same name)."""


def _class_path(obj: Any) -> str:
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def _spec(obj: Any) -> dict[str, Any] | None:
    from .context import jsonable

    if obj is None:
        return None
    hp = dict(getattr(obj, "hparams_initial", None) or {})
    hp.pop("_class_path", None)
    return {"class_path": _class_path(obj), "init_args": jsonable(hp)}


def recipe(trainer: Any, pl_module: Any) -> dict[str, Any]:
    """The recipe of the fit ``trainer`` runs on ``pl_module`` (see the module docstring)."""
    from .context import jsonable

    args: dict[str, Any] = {}
    for name in TRAINER_ARGS:
        value = getattr(trainer, name, None)
        if name == "max_epochs" and value is None:
            value = getattr(getattr(trainer, "fit_loop", None), "max_epochs", None)
        if name == "gradient_clip_algorithm" and value is not None:
            value = str(getattr(value, "value", value))
        if value is not None:
            args[name] = jsonable(value)
    out: dict[str, Any] = {"model": _spec(pl_module), "trainer": args}
    data = _spec(getattr(trainer, "datamodule", None))
    if data is not None:
        out["data"] = data
    return out
