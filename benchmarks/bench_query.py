"""Benchmark of the read side: ``expman compare`` on 1,000 runs x 100 epochs x 4 metrics (SQLite).

Targets (issue 5): ``expman compare`` end to end (a subprocess, interpreter start included)
<= 0.5 s wall, its query alone <= 100 ms. With ``--mlflow`` the same data is loaded into MLflow
(a local SQLite tracking store, one ``log_batch`` per run) and MLflow answers the same question
("each trial's mean ± std over its repeats of val_loss"):

* final values: one ``MlflowClient.search_runs`` (+ ``mlflow.search_runs`` into pandas), which
  only knows each metric's *latest* value;
* best values (min over epochs, what ``expman compare`` shows by default): MLflow has no
  aggregate for that, so one ``get_metric_history`` per run.

The databases are cached in the temp folder, keyed by their parameters (building takes a while
the first time; MLflow's much longer).

Usage::

    python benchmarks/bench_query.py                 # expman only
    python benchmarks/bench_query.py --mlflow        # plus MLflow (first build: a few minutes)
    python benchmarks/bench_query.py --runs 200 --epochs 50 --repeat 10
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

METRICS = ("train_loss", "val_loss", "val_acc", "lr")
REPEATS = 4
EXPERIMENT = "bench"


def _params_for(trial: int) -> dict:
    """A grid: lr x hidden x dropout, one combination per trial."""
    lrs = [10 ** (-k / 2) for k in range(2, 12)]  # 10 values
    return {
        "model.lr": lrs[trial % 10],
        "model.hidden": [32, 64, 128, 256, 512][(trial // 10) % 5],
        "model.dropout": [0.0, 0.1, 0.2, 0.3, 0.5][(trial // 50) % 5],
    }


def _values(trial: int, repeat: int, epoch: int) -> dict[str, float]:
    rng = random.Random(trial * 100_000 + repeat * 1000 + epoch)
    base = 0.2 + (trial % 17) / 40
    val_loss = base + 1.0 / (epoch + 1) + rng.uniform(-0.02, 0.02)
    return {
        "train_loss": val_loss - 0.05,
        "val_loss": val_loss,
        "val_acc": 1.0 - val_loss / 2,
        "lr": _params_for(trial)["model.lr"],
    }


def build_expman(path: Path, runs: int, epochs: int) -> None:
    """Write the benchmark experiment with the DatabaseManager, epoch metrics in bulk inserts."""
    from lightning_expman.db import DatabaseManager
    from lightning_expman.db import models as m

    t0 = time.perf_counter()
    db = DatabaseManager(f"sqlite:///{path}")
    exp = db.create_experiment(EXPERIMENT, "read-side benchmark", tags={"kind": "benchmark"})
    trials = runs // REPEATS
    database = db.database
    metric_id = 0
    with database.atomic():
        for t in range(trials):
            trial = db.create_trial(exp.id, f"trial-{t:04d}", config={"model": _params_for(t)})
            for r in range(1, REPEATS + 1):
                run = db.create_trial_run(trial.id, "running", repeat_idx=r, seed=1000 * t + r)
                db.log_params(run.id, {**_params_for(t), "seed": 1000 * t + r})
                epoch_rows, metric_rows, link_rows = [], [], []
                for e in range(epochs):
                    epoch_rows.append((e, run.id))
                    for name, value in _values(t, r, e).items():
                        metric_id += 1
                        metric_rows.append((metric_id, name, value))
                        link_rows.append((e, run.id, metric_id))
                # The bulk path for history: explicit ids, three executemany inserts per run.
                m.Epoch.insert_many(epoch_rows, fields=[m.Epoch.idx, m.Epoch.trial_run]).execute(database)
                m.MetricRecord.insert_many(
                    metric_rows, fields=[m.MetricRecord.id, m.MetricRecord.type, m.MetricRecord.total_val]
                ).execute(database)
                m.EpochMetric.insert_many(
                    link_rows, fields=[m.EpochMetric.epoch_idx, m.EpochMetric.trial_run, m.EpochMetric.metric]
                ).execute(database)
                db.finish_trial_run(run.id, "completed")
    database.execute_sql("ANALYZE")
    db.close()
    print(f"built {path} in {time.perf_counter() - t0:.1f} s")


def build_mlflow(path: Path, runs: int, epochs: int) -> str:
    """The same runs in an MLflow SQLite tracking store: one log_batch per run."""
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{path}"
    t0 = time.perf_counter()
    client = MlflowClient(tracking_uri=uri)
    exp_id = client.create_experiment(EXPERIMENT, artifact_location=str(path.parent / "mlruns-artifacts"))
    ts = int(time.time() * 1000)
    for t in range(runs // REPEATS):
        for r in range(1, REPEATS + 1):
            run = client.create_run(exp_id, tags={"trial": f"trial-{t:04d}", "repeat": str(r)})
            metrics = [
                Metric(name, value, ts + e, e)
                for e in range(epochs)
                for name, value in _values(t, r, e).items()
            ]
            params = [Param(k, str(v)) for k, v in {**_params_for(t), "seed": 1000 * t + r}.items()]
            for i in range(0, len(metrics), 1000):  # MLflow's limit per batch
                first = i == 0
                client.log_batch(
                    run.info.run_id,
                    metrics=metrics[i : i + 1000],
                    params=params if first else [],
                    tags=[RunTag("kind", "benchmark")] if first else [],
                )
            client.set_terminated(run.info.run_id)
    print(f"built {path} in {time.perf_counter() - t0:.1f} s")
    return uri


def timed(fn, repeat: int) -> tuple[float, float, object]:
    """(median, min) seconds over ``repeat`` calls after one warm-up, and the last result."""
    result = fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), min(times), result


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=7, help="timed repetitions (median reported)")
    parser.add_argument("--mlflow", action="store_true", help="also load the data into MLflow and time it")
    parser.add_argument("--cache", default=os.path.join(tempfile.gettempdir(), "expman-bench"))
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args()

    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    key = f"r{args.runs}_e{args.epochs}_m{len(METRICS)}_k{REPEATS}_v1"
    db_path = cache / f"expman_{key}.db"
    if not db_path.exists():
        tmp = db_path.with_suffix(".building")
        for p in cache.glob(tmp.name + "*"):
            p.unlink()
        build_expman(tmp, args.runs, args.epochs)
        tmp.rename(db_path)
    url = f"sqlite:///{db_path}"
    size = db_path.stat().st_size / 1e6
    print(
        f"database: {db_path} ({size:.0f} MB): {args.runs} runs x {args.epochs} epochs x {len(METRICS)} "
        f"metrics, "
        f"{args.runs // REPEATS} trials x {REPEATS} repeats"
    )
    figures: dict[str, float] = {}

    # 1. expman compare end to end: a fresh interpreter each time, like a user at the terminal.
    exe = Path(sys.executable).with_name("expman")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "lightning_expman.cli"]
    cmd += ["compare", EXPERIMENT, "--metric", "val_loss", "--mode", "min", "--db", url]

    def cli() -> str:
        return subprocess.run(
            cmd, check=True, capture_output=True, text=True, env={**os.environ, "COLUMNS": "100"}
        ).stdout

    med, best, out = timed(cli, args.repeat)
    figures["cli_compare_s"] = med
    print(f"\nexpman compare (subprocess, end to end): median {med * 1000:.0f} ms, min {best * 1000:.0f} ms "
          f"(target <= 500 ms)")  # fmt: skip
    lines = str(out).splitlines()
    print("  " + "\n  ".join([*lines[:3], "  ...", lines[-1]]))

    # 2. the query alone (warm connection), best value per run (min over epochs) and final value.
    from lightning_expman.query import Query

    q = Query(url)
    for value in ("best", "final"):
        med, best, table = timed(
            lambda v=value: q.trial_summary(EXPERIMENT, "val_loss", "min", value=v), args.repeat
        )
        figures[f"query_{value}_s"] = med
        print(f"Query.trial_summary(value={value!r}): median {med * 1000:.1f} ms, min {best * 1000:.1f} ms "
              f"(target <= 100 ms), {len(table)} trials")  # fmt: skip
    med, best, _ = timed(lambda: Query(url).trial_summary(EXPERIMENT, "val_loss", "min"), args.repeat)
    figures["query_cold_s"] = med
    print(f"Query(url) + trial_summary (new connection each time): median {med * 1000:.1f} ms")
    med, best, runs_table = timed(lambda: q.runs(EXPERIMENT), max(1, args.repeat // 2))
    figures["runs_table_s"] = med
    print(
        f"Query.runs (all 4 metrics final+best, params): median {med * 1000:.0f} ms, {len(runs_table)} rows"
    )
    q.close()

    if args.mlflow:
        import logging

        logging.getLogger("mlflow").setLevel(logging.WARNING)
        ml_path = cache / f"mlflow_{key}.db"
        if not ml_path.exists():
            tmp = ml_path.with_suffix(".building")
            for p in cache.glob(tmp.name + "*"):
                p.unlink()
            build_mlflow(tmp, args.runs, args.epochs)
            tmp.rename(ml_path)
        import mlflow
        from mlflow.tracking import MlflowClient

        ml_uri = f"sqlite:///{ml_path}"
        client = MlflowClient(tracking_uri=ml_uri)
        exp_id = client.get_experiment_by_name(EXPERIMENT).experiment_id

        def ml_final_client() -> dict:
            runs, token = [], None
            while True:
                page = client.search_runs([exp_id], max_results=1000, page_token=token)
                runs.extend(page)
                token = page.token
                if not token:
                    break
            groups = defaultdict(list)
            for run in runs:
                groups[run.data.tags["trial"]].append(run.data.metrics["val_loss"])
            return {t: _mean_std(v) for t, v in groups.items()}

        def ml_final_pandas() -> dict:
            mlflow.set_tracking_uri(ml_uri)
            df = mlflow.search_runs(experiment_ids=[exp_id], max_results=100_000)
            g = df.groupby("tags.trial")["metrics.val_loss"].agg(["mean", "std", "count"])
            return g.to_dict("index")

        def ml_best_history() -> dict:
            runs = client.search_runs([exp_id], max_results=1000)
            groups = defaultdict(list)
            for run in runs:
                hist = client.get_metric_history(run.info.run_id, "val_loss")
                groups[run.data.tags["trial"]].append(min(h.value for h in hist))
            return {t: _mean_std(v) for t, v in groups.items()}

        print()
        for name, fn, ours in (
            ("MlflowClient.search_runs (final values) + mean/std", ml_final_client, "query_final_s"),
            ("mlflow.search_runs -> pandas groupby (final values)", ml_final_pandas, "query_final_s"),
            ("search_runs + get_metric_history per run (best values)", ml_best_history, "query_best_s"),
        ):
            reps = max(1, args.repeat // 3) if "history" in name else args.repeat
            med, _, _ = timed(fn, reps)
            figures[f"mlflow_{fn.__name__}_s"] = med
            ratio = med / figures[ours]
            print(f"MLflow {name}: median {med * 1000:.0f} ms -> {ratio:.1f}x expman's query ({ours})")
        # Same answer? (final values, first trial)
        check = ml_final_client()["trial-0000"]
        with Query(url) as q2:
            ours_row = q2.trial_summary(EXPERIMENT, "val_loss", "min", value="final").rows[0]
        assert math.isclose(check[0], ours_row["mean"], rel_tol=1e-9), (check, ours_row)
        print("  (MLflow and expman agree on trial-0000's mean final val_loss)")

    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
