"""What a search through ``expman run`` costs and what pruning buys.

1. **Overhead** (``--trials`` x ``--epochs`` of the tiny model of ``tests/tiny.py``): the same
   random-sampler study run (a) as a plain Optuna objective with a plain Lightning Trainer
   (``logger=False``, no checkpoints, SQLite RDB storage) and (b) through
   :class:`~lightning_expman.Experiment` (a ``search:`` block: claims, leases, the db tracker
   recording every epoch and step, the workspace's files). Same model, data, epochs and Trainer
   flags; the expman side sets ``test: false`` because the plain objective does not test (by
   default a run tests after fitting: real work, not overhead). Both after a warm-up fit, in
   one process, rounds interleaved (alternating which side goes first), one torch thread. Wall
   time (the target) and the process's CPU time, each as the ratio of the fastest rounds (the
   estimate least moved by a shared machine's noise, as ``timeit`` takes the minimum), of the
   medians, and the median of the per-round ratios with their spread.
   Target (issue 10): (b) <= 1.10 x (a).
2. **Value of pruning** on the digits search (``configs/digits-search``: TPE + median pruning,
   16 trials of up to 10 epochs) against a full grid over the same ranges (24 trials x 10
   epochs): best validation accuracy of each, total epochs trained and their ratio. Target:
   best within 0.5 points of the grid's, <= 40 % of its epochs.

Usage:
    python benchmarks/bench_search.py [--trials 20] [--epochs 3] [--rounds 3]
        [--skip-pruning] [--skip-overhead]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TINY = {
    "seed": 0,
    "model": {"class_path": "tests.tiny.TinyClassifier", "init_args": {"hidden": 8, "lr": 0.1}},
    "data": {"class_path": "tests.tiny.TinyDataModule", "init_args": {"n": 256, "batch_size": 16}},
    "trainer": {
        "max_epochs": 3,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "log_every_n_steps": 50,
    },
}


def _write(folder: Path, name: str, settings: dict, trials: list, db: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    env = {"workspace": str(folder / "ws"), "trackers": [{"type": "db", "url": f"sqlite:///{db}"}]}
    files = {
        "env": env,
        "experiment": {"name": name, "id": 1},
        "base": {"settings": settings},
        "trials": trials,
    }
    for file, data in files.items():
        (folder / f"{file}.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return folder


def _plain(trials: int, epochs: int, tmp: Path) -> tuple[float, float]:
    import lightning as L
    import optuna

    from tests.tiny import TinyClassifier, TinyDataModule

    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def objective(trial: optuna.Trial) -> float:
        lr = trial.suggest_float("model.init_args.lr", 0.01, 0.5, log=True)
        L.seed_everything(0, workers=True, verbose=False)
        model, data = TinyClassifier(hidden=8, lr=lr), TinyDataModule(n=256, batch_size=16)
        trainer = L.Trainer(
            max_epochs=epochs,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
        )
        trainer.fit(model, data)
        return float(trainer.callback_metrics["val_loss"])

    # Timed from the study's creation, as the expman side is (its storage and study are created
    # inside Experiment.run).
    start, cpu = time.perf_counter(), time.process_time()
    study = optuna.create_study(
        storage=f"sqlite:///{tmp / 'plain.db'}", sampler=optuna.samplers.RandomSampler(seed=0)
    )
    study.optimize(objective, n_trials=trials)
    return time.perf_counter() - start, time.process_time() - cpu


def _expman(trials: int, epochs: int, tmp: Path, name: str = "bench") -> tuple[float, float]:
    from lightning_expman import Experiment

    settings = {**TINY, "test": False, "trainer": {**TINY["trainer"], "max_epochs": epochs}}
    search = {
        "num_trials": trials,
        "sampler": "random",
        "objective": "last",
        "space": {"model.init_args.lr": {"low": 0.01, "high": 0.5, "log": True}},
    }
    cfg = _write(tmp / name, name, settings, [{"name": "s", "search": search}], tmp / f"{name}.db")
    experiment = Experiment.create(cfg)
    start, cpu = time.perf_counter(), time.process_time()
    summary = experiment.run()
    elapsed = time.perf_counter() - start, time.process_time() - cpu
    assert summary.exit_code == 0, summary.table()
    return elapsed


def overhead(trials: int, epochs: int, rounds: int) -> None:
    import logging
    import statistics

    import torch

    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    # One intra-op thread for both sides: on a small shared machine torch's thread pool makes the
    # fits' own time (the same work on both sides) swing more than the overhead being measured.
    torch.set_num_threads(1)
    plain_s: list[tuple[float, float]] = []
    ours_s: list[tuple[float, float]] = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        (tmp / "warm").mkdir()
        _plain(1, 1, tmp / "warm")  # warm-up: imports, first fit, Optuna's tables
        _expman(1, 1, tmp, "warm")
        for i in range(rounds):  # interleaved, alternating which goes first (drift hits both alike)
            (tmp / f"p{i}").mkdir()
            for side in ("plain", "expman") if i % 2 == 0 else ("expman", "plain"):
                if side == "plain":
                    plain_s.append(_plain(trials, epochs, tmp / f"p{i}"))
                else:
                    ours_s.append(_expman(trials, epochs, tmp, f"bench{i}"))
    print(f"overhead: {trials} trials x {epochs} epochs of the tiny model, {rounds} interleaved rounds")
    for k, what in ((0, "wall"), (1, "CPU time of the process")):
        plain = statistics.median(p[k] for p in plain_s)
        ours = statistics.median(o[k] for o in ours_s)
        fastest_plain, fastest_ours = min(p[k] for p in plain_s), min(o[k] for o in ours_s)
        paired = sorted(o[k] / p[k] for p, o in zip(plain_s, ours_s))
        print(f"  {what}:")
        print(
            f"    plain Optuna objective + plain Trainer: median {plain:6.2f} s ({plain / trials * 1000:.0f} "
            f"ms/trial), fastest {fastest_plain:6.2f} s"
        )
        print(
            f"    expman run (search: block):             median {ours:6.2f} s ({ours / trials * 1000:.0f} "
            f"ms/trial), fastest {fastest_ours:6.2f} s"
        )
        print(
            f"    ratio (target <= 1.10x): fastest {fastest_ours / fastest_plain:.2f}x, medians "
            f"{ours / plain:.2f}x, paired rounds median {statistics.median(paired):.2f}x "
            f"(spread {paired[0]:.2f}-{paired[-1]:.2f}x)"
        )


def _epochs_and_best(db: Path, experiment: str) -> tuple[int, float, int]:
    from lightning_expman.db import DatabaseManager
    from lightning_expman.db import models as m

    manager = DatabaseManager(f"sqlite:///{db}")
    try:
        with manager.database.bind_ctx(m.ALL_MODELS):
            runs = (
                m.TrialRun.select(m.TrialRun.id)
                .join(m.Trial)
                .join(m.Experiment)
                .where(m.Experiment.title == experiment)
            )
            ids = [r.id for r in runs]
            epochs = m.Epoch.select().where(m.Epoch.trial_run.in_(ids)).count()
            EM, M = m.EpochMetric, m.MetricRecord
            best = (
                EM.select(M.total_val)
                .join(M, on=(EM.metric == M.id))
                .where(EM.trial_run.in_(ids) & (M.type == "val_acc"))
                .order_by(M.total_val.desc())
                .scalar()
            )
            return epochs, float(best), len(ids)
    finally:
        manager.close()


def pruning() -> None:
    from lightning_expman import Experiment

    src = ROOT / "configs" / "digits-search"
    settings = yaml.safe_load((src / "base.yaml").read_text())["settings"]
    settings["seed"] = 42
    search = yaml.safe_load((src / "trials.yaml").read_text())[0]["search"]
    grid = {
        "model.init_args.lr": [1.0e-3, 1.0e-2, 3.0e-2],
        "model.init_args.hidden": [32, 128],
        "model.init_args.dropout": [0.0, 0.3],
        "data.init_args.batch_size": [32, 128],
    }
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        db = tmp / "digits.db"
        results = {}
        for name, trial in (
            ("search", {"name": "mlp", "search": search}),
            ("grid", {"name": "mlp", "grid": grid}),
        ):
            cfg = _write(tmp / name, name, settings, [trial], db)
            start = time.perf_counter()
            summary = Experiment.create(cfg).run()
            wall = time.perf_counter() - start
            assert summary.exit_code == 0, summary.table()
            results[name] = (*_epochs_and_best(db, name), wall)
    (se, sb, sn, sw), (ge, gb, gn, gw) = results["search"], results["grid"]
    print("value of pruning: digits, TPE + median pruning vs the full grid")
    print(f"  search: {sn:3d} runs, {se:4d} epochs, best val_acc {sb * 100:.2f} %, {sw:6.1f} s")
    print(f"  grid:   {gn:3d} runs, {ge:4d} epochs, best val_acc {gb * 100:.2f} %, {gw:6.1f} s")
    print(
        f"  best: {(sb - gb) * 100:+.2f} points (target >= -0.5); epochs: {se / ge:.0%} of the grid's "
        "(target <= 40 %)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--skip-overhead", action="store_true")
    parser.add_argument("--skip-pruning", action="store_true")
    args = parser.parse_args()
    if not args.skip_overhead:
        overhead(args.trials, args.epochs, args.rounds)
    if not args.skip_pruning:
        pruning()


if __name__ == "__main__":
    main()
