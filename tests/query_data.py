"""Realistic read-side test data: a few trials x repeats x epochs x metrics, per-label values,
step series, results, artifacts, tags, a failed run, and a second experiment of the same title.

Imported by the read-side tests (query, CLI, reports); holds no tests itself.

Layout of :func:`build_demo` (experiment "digits", the latest of two with that title):

=========  ==========================  =========================================
trial      params                      val_loss (best, per repeat)
=========  ==========================  =========================================
lr-0.1     model.lr=0.1, hidden=32     ~0.50 (3 repeats)
lr-0.01    model.lr=0.01, hidden=32    ~0.30 (3 repeats) -> best for min val_loss
lr-0.001   model.lr=0.001, hidden=64   ~0.40 (2 completed + 1 FAILED repeat)
=========  ==========================  =========================================
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from lightning_expman.db import DatabaseManager

EPOCHS = 6
STEPS_PER_EPOCH = 4
LABELS = ("0", "1", "2")
TRIALS = {  # name -> (lr, hidden, base val_loss)
    "lr-0.1": (0.1, 32, 0.50),
    "lr-0.01": (0.01, 32, 0.30),
    "lr-0.001": (0.001, 64, 0.40),
}


@dataclass
class Demo:
    url: str
    experiment_id: int
    old_experiment_id: int
    other_experiment_id: int
    runs: dict[str, list[int]] = field(default_factory=dict)  # trial name -> run ids (repeat order)
    failed_run: int = 0
    best_values: dict[int, float] = field(default_factory=dict)  # run id -> min val_loss
    final_values: dict[int, float] = field(default_factory=dict)  # run id -> last val_loss


def _curve(base: float, epoch: int, seed: int) -> float:
    rng = random.Random(seed * 1000 + epoch)
    # decreasing, with a small bump at the last epoch so "final" != "best"
    value = base + 0.6 / (epoch + 1) + rng.uniform(-0.01, 0.01)
    return value + (0.05 if epoch == EPOCHS - 1 else 0.0)


def _add_run(
    db: DatabaseManager,
    trial_id: int,
    repeat: int,
    seed: int,
    params: dict,
    base: float,
    *,
    status: str = "COMPLETED",
    epochs: int = EPOCHS,
    tags: dict | None = None,
    error: str | None = None,
) -> tuple[int, list[float]]:
    run = db.create_trial_run(
        trial_id,
        "running",
        repeat_idx=repeat,
        seed=seed,
        host="node-1",
        config={
            "model": {"lr": params["model.lr"], "hidden": params["model.hidden"]},
            "seed": seed,
            "data": {"batch_size": 64},
        },
        context={"python": "3.11.2", "torch": "2.5.0", "lightning": "2.4.0", "platform": "Linux"},
        tags=tags,
    )
    rid = run.id
    db.log_params(rid, {"model": {"lr": params["model.lr"], "hidden": params["model.hidden"]}, "seed": seed})
    vals = []
    step = 0
    for e in range(epochs):
        val_loss = _curve(base, e, seed)
        vals.append(val_loss)
        acc = max(0.0, min(1.0, 1.0 - val_loss))
        db.record_epoch_metrics(
            rid,
            e,
            [
                ("train_loss", val_loss - 0.05, None),
                ("val_loss", val_loss, None),
                ("val_acc", acc, {lab: round(acc - 0.02 * i, 4) for i, lab in enumerate(LABELS)}),
                ("lr", params["model.lr"], None),
            ],
        )
        db.record_step_metrics(
            [(rid, step + s, e, "train_loss_step", val_loss + 0.1 - 0.01 * s) for s in range(STEPS_PER_EPOCH)]
        )
        step += STEPS_PER_EPOCH
    if status == "COMPLETED":
        db.record_results_metrics(
            rid, [("test_acc", 1.0 - min(vals), None), ("test_loss", min(vals) + 0.02, None)]
        )
        db.add_artifact("checkpoint", f"/runs/digits/{rid}/best.ckpt", trial_run_id=rid)
        db.add_artifact("plot", f"/runs/digits/{rid}/epoch2.png", trial_run_id=rid, epoch_idx=2)
    db.finish_trial_run(rid, status, error=error)
    return rid, vals


def build_demo(url: str) -> Demo:
    """Write the demo experiments into a fresh database at ``url`` with the DatabaseManager."""
    db = DatabaseManager(url)
    try:
        old = db.create_experiment("digits", tags={"team": "old"})
        ot = db.create_trial(old.id, "only")
        _add_run(db, ot.id, 1, 7, {"model.lr": 0.5, "model.hidden": 8}, 0.9, epochs=2)

        exp = db.create_experiment(
            "digits",
            "MLP on sklearn digits",
            config={"trainer": {"max_epochs": EPOCHS}},
            tags={"team": "vision", "project": "demo"},
        )
        demo = Demo(url, exp.id, old.id, 0)
        seed = 100
        for name, (lr, hidden, base) in TRIALS.items():
            trial = db.create_trial(
                exp.id, name, config={"model": {"lr": lr}}, tags={"size": "big" if hidden == 64 else "small"}
            )
            demo.runs[name] = []
            for repeat in (1, 2, 3):
                seed += 1
                failed = name == "lr-0.001" and repeat == 3
                rid, vals = _add_run(
                    db,
                    trial.id,
                    repeat,
                    seed,
                    {"model.lr": lr, "model.hidden": hidden},
                    base,
                    status="FAILED" if failed else "COMPLETED",
                    epochs=2 if failed else EPOCHS,
                    tags={"flaky": "yes"} if failed else None,
                    error="RuntimeError: CUDA out of memory <script>alert(1)</script>" if failed else None,
                )
                demo.runs[name].append(rid)
                demo.best_values[rid] = min(vals)
                demo.final_values[rid] = vals[-1]
                if failed:
                    demo.failed_run = rid
        other = db.create_experiment("mnist <b>small</b>", tags={"team": "nlp"})
        demo.other_experiment_id = other.id
        trial = db.create_trial(other.id, "base")
        _add_run(db, trial.id, 1, 1, {"model.lr": 0.1, "model.hidden": 16}, 0.2, epochs=3)
    finally:
        db.close()
    return demo
