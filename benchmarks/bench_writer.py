"""Calling-thread cost of logging step metrics through the DB tracker (SQLite).

What the Lightning logger's ``log_metrics`` does per call is one ``track_dict`` of ~10 values
at BATCH level. This times that call on the training thread (target: p99 <= 0.2 ms), the
throughput of the background writer, and checks after ``close()`` that every value is in the
database.

Modes:
    tight   calls back to back (worst case for contention with the writer thread). The
            producer outruns the writer ~20x here, so ``max`` shows back-pressure stalls
            (the buffer hit ``max_pending`` and the call waited for the writer, by design).
    paced   ~``--work-us`` of CPU work between calls, like a (very small) training step

Run:
    .venv/bin/python benchmarks/bench_writer.py                 # 20,000 calls, both modes
    .venv/bin/python benchmarks/bench_writer.py --calls 50000 --via-manager
"""

from __future__ import annotations

import argparse
import gc
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from lightning_expman import Level
from lightning_expman.tracking import TrackerManager
from lightning_expman.tracking.db import DBTracker

METRICS = [f"metric_{i}" for i in range(10)]


def busy(us: float) -> None:
    end = time.perf_counter() + us / 1e6
    while time.perf_counter() < end:
        pass


def run(mode: str, calls: int, work_us: float, via_manager: bool, folder: Path) -> dict:
    db_file = folder / f"bench_{mode}.db"
    tracker = DBTracker(f"sqlite:///{db_file}")
    manager = TrackerManager([tracker])
    manager.on_create(Level.EXPERIMENT, name="bench")
    manager.on_create(Level.TRIAL, name="writer")
    manager.on_create(Level.TRIAL_RUN, repeat_idx=1)
    manager.on_start(Level.TRIAL_RUN)
    manager.on_create(Level.EPOCH, epoch_idx=0)
    target = manager if via_manager else tracker
    track_dict = target.track_dict
    clock = time.perf_counter_ns
    samples = [0] * calls
    values = [0.1 * i for i in range(10)]
    gc.collect()
    start = time.perf_counter()
    for step in range(calls):
        metrics = dict(zip(METRICS, values))  # a fresh dict per call, as Lightning builds one
        t0 = clock()
        track_dict(metrics, step, level=Level.BATCH)
        samples[step] = clock() - t0
        if work_us:
            busy(work_us)
    produced = time.perf_counter() - start
    t_close = time.perf_counter()
    manager.on_end(Level.EPOCH)
    manager.on_end(Level.TRIAL_RUN)
    manager.close()
    drain = time.perf_counter() - t_close
    total = time.perf_counter() - start
    with sqlite3.connect(db_file) as con:
        stored = con.execute("SELECT count(*), count(DISTINCT step) FROM step_metric").fetchone()
        checksum = con.execute("SELECT sum(value) FROM step_metric").fetchone()[0]
    expected_rows = calls * len(METRICS)
    assert stored == (expected_rows, calls), f"stored {stored}, expected ({expected_rows}, {calls})"
    assert abs(checksum - calls * sum(values)) < 1e-6 * calls, "values differ"
    ms = sorted(s / 1e6 for s in samples)
    return {
        "mode": mode,
        "calls": calls,
        "p50": statistics.median(ms),
        "p99": ms[int(0.99 * (len(ms) - 1))],
        "p999": ms[int(0.999 * (len(ms) - 1))],
        "max": ms[-1],
        "rows": expected_rows,
        "produce_s": produced,
        "drain_s": drain,
        "rows_per_s": expected_rows / total,
    }


def writer_throughput(rows: int, folder: Path) -> float:
    """Rows/s of the writer alone: everything buffered first, then one flush."""
    tracker = DBTracker(f"sqlite:///{folder / 'throughput.db'}", flush_interval=3600, max_pending=rows * 2)
    manager = TrackerManager([tracker])
    manager.on_create(Level.EXPERIMENT, name="bench")
    manager.on_create(Level.TRIAL, name="throughput")
    manager.on_create(Level.TRIAL_RUN, repeat_idx=1)
    values = dict(zip(METRICS, [0.5] * 10))
    for step in range(rows // 10):
        tracker.track_dict(values, step, level=Level.BATCH)
    t0 = time.perf_counter()
    tracker.flush()
    elapsed = time.perf_counter() - t0
    manager.on_end(Level.TRIAL_RUN)
    manager.close()
    return rows / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--work-us", type=float, default=200.0, help="CPU work between calls in paced mode")
    parser.add_argument("--via-manager", action="store_true", help="call TrackerManager.track_dict")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        results = [
            run("tight", args.calls, 0.0, args.via_manager, folder),
            run("paced", args.calls, args.work_us, args.via_manager, folder),
        ]
        throughput = writer_throughput(200_000, folder)
    target = "TrackerManager" if args.via_manager else "DBTracker"
    print(f"{target}.track_dict of 10 values at BATCH level, SQLite, {args.calls} calls per mode")
    print(
        f"{'mode':<6} {'p50 ms':>8} {'p99 ms':>8} {'p99.9 ms':>9} {'max ms':>8} {'rows/s (end-to-end)':>20}"
    )
    for r in results:
        print(
            f"{r['mode']:<6} {r['p50']:8.4f} {r['p99']:8.4f} {r['p999']:9.4f} {r['max']:8.3f} "
            f"{r['rows_per_s']:20,.0f}"
        )
    print(f"writer alone: {throughput:,.0f} rows/s (200,000 buffered rows, one flush)")
    worst = max(r["p99"] for r in results)
    print(f"target p99 <= 0.2 ms: {'OK' if worst <= 0.2 else 'MISSED'} (worst p99 {worst:.4f} ms)")
    print("verified: every value of every call is in the database after close()")


if __name__ == "__main__":
    main()
