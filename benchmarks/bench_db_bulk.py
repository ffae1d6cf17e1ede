"""Benchmark the bulk step-metric path (``DatabaseManager.record_step_metrics``) against raw sqlite3.

Writes N step values (default 200,000) into a fresh SQLite file through ``record_step_metrics`` in
batches of B (default 5,000: what the background writer flushes at a time), then the same rows
with raw ``sqlite3.executemany`` into another fresh file that has the same ``step_metric`` table
and index, under the same pragmas (WAL, synchronous=NORMAL) and one transaction per batch. Prints
values/s for both and the ratio. Target (issue 2): >= 100,000 values/s for our path on SQLite.

Optional server figures (``--mysql URL`` / ``--postgres URL``, each an existing, empty database).

Usage::

    python benchmarks/bench_db_bulk.py
    python benchmarks/bench_db_bulk.py --values 500000 --batch 10000
    python benchmarks/bench_db_bulk.py --mysql mysql://root@127.0.0.1/bench --postgres postgresql://postgres@127.0.0.1/bench
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lightning_expman.db import DatabaseManager
from lightning_expman.db import models as m

NAMES = ("train_loss", "train_acc", "lr", "grad_norm")


def make_rows(run_id: int, n: int) -> list[tuple[int, int, int, str, float]]:
    """``n`` values of 4 metrics over n/4 steps, like a training loop logging every step."""
    per_step = len(NAMES)
    return [
        (run_id, i // per_step, i // (per_step * 1000), NAMES[i % per_step], 1.0 / (i + 1)) for i in range(n)
    ]


def batches(rows: list, size: int):
    for i in range(0, len(rows), size):
        yield rows[i : i + size]


def bench_manager(url: str, n: int, batch: int) -> tuple[float, int]:
    """Values/s through record_step_metrics (setup not timed), and the row count read back."""
    db = DatabaseManager(url)
    run = db.create_trial_run(db.create_trial(db.create_experiment("bench").id, "t").id)
    rows = make_rows(run.id, n)
    start = time.perf_counter()
    for chunk in batches(rows, batch):
        db.record_step_metrics(chunk)
    elapsed = time.perf_counter() - start
    count = db.database.execute_sql("SELECT COUNT(*) FROM step_metric").fetchone()[0]
    db.close()
    return n / elapsed, count


def bench_raw_sqlite(path: Path, n: int, batch: int) -> float:
    """Values/s with plain sqlite3.executemany into the same table (DDL generated from the model)."""
    db = DatabaseManager(f"sqlite:///{path}")  # creates the identical schema, then steps aside
    run = db.create_trial_run(db.create_trial(db.create_experiment("bench").id, "t").id)
    db.close()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=wal")
    conn.execute("PRAGMA synchronous=normal")
    rows = make_rows(run.id, n)
    sql = "INSERT INTO step_metric (trial_run_id, step, epoch, name, value) VALUES (?, ?, ?, ?, ?)"
    start = time.perf_counter()
    for chunk in batches(rows, batch):
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(sql, chunk)
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    assert conn.execute("SELECT COUNT(*) FROM step_metric").fetchone()[0] == n
    conn.close()
    return n / elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--values", type=int, default=200_000, help="step values to write (default 200000)")
    parser.add_argument("--batch", type=int, default=5_000, help="values per record_step_metrics call")
    parser.add_argument("--mysql", help="also benchmark this (empty) MySQL/MariaDB database URL")
    parser.add_argument("--postgres", help="also benchmark this (empty) PostgreSQL database URL")
    args = parser.parse_args(argv)

    print(f"{args.values:,} step values in batches of {args.batch:,}; table {m.StepMetric._meta.table_name}")
    with tempfile.TemporaryDirectory(prefix="expman_bench_") as tmp:
        ours, count = bench_manager(f"sqlite:///{Path(tmp) / 'ours.db'}", args.values, args.batch)
        assert count == args.values, f"wrote {count} rows, expected {args.values}"
        raw = bench_raw_sqlite(Path(tmp) / "raw.db", args.values, args.batch)
    verdict = "OK" if ours >= 100_000 else "BELOW TARGET"
    print(f"sqlite  record_step_metrics : {ours:>12,.0f} values/s   (target >= 100,000: {verdict})")
    print(f"sqlite  raw executemany     : {raw:>12,.0f} values/s")
    print(f"ratio ours / raw            : {ours / raw:>12.2f}")
    for label, url in (("mysql", args.mysql), ("postgres", args.postgres)):
        if url:
            rate, _ = bench_manager(url, args.values, args.batch)
            print(f"{label:<7} record_step_metrics : {rate:>12,.0f} values/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
