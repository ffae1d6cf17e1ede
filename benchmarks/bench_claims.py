"""What coordination costs: a claim + heartbeat per run beside a plain insert, on each backend; and
N claimer processes splitting a grid of no-op runs (exact count, wall time against one process).

Per backend, in one run: the median over ``--claims`` units of

* ``insert``: one plain ``create_trial_run`` (the row every run writes anyway);
* ``claim``: :meth:`Claimer.claim` (locks the unit's claim row, reaps its old run, creates the
  leased run, points the claim at it);
* ``heartbeat``: one lease renewal (``renew_lease``), what the Lease thread does every
  ``stale_after / 4`` seconds.

Then ``--processes`` claimer processes race over a ``--units``-unit grid whose runs do nothing
(claim, then finish COMPLETED): the printed count must equal the unit count. With no-op runs the
wall time shows only overhead (process start-up, lock contention): real runs take seconds each,
where N processes divide the work.

Targets (coordination issue): claim + heartbeat <= 5 ms on SQLite, <= 20 ms on MariaDB/PostgreSQL.

Usage:
    python benchmarks/bench_claims.py [--claims 1000] [--units 200] [--processes 8]
        [--mysql mysql://root@127.0.0.1:3306/expman_bench] [--postgres postgresql://postgres@127.0.0.1/expman_bench]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lightning_expman.coordination import Claimer
from lightning_expman.db import DatabaseManager
from lightning_expman.db import models as m

_CLAIMER = textwrap.dedent(
    """
    import sys
    from lightning_expman.coordination import Claimer
    from lightning_expman.db import DatabaseManager
    db = DatabaseManager(sys.argv[1])
    trial, units = int(sys.argv[2]), int(sys.argv[3])
    claimer = Claimer(db)
    mine = 0
    for r in range(1, units + 1):
        claim = claimer.claim(trial, r)
        if claim is not None:
            db.finish_trial_run(claim.run_id, "completed", owner=claim.owner)
            mine += 1
    print(mine)
    """
)


def _fresh(url: str) -> None:
    """Empty server database (drop and create) so every backend starts alike."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    if url.startswith("mysql"):
        import pymysql

        conn = pymysql.connect(host=parts.hostname, port=parts.port or 3306, user=parts.username or "root")
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {name}")
            cur.execute(f"CREATE DATABASE {name}")
        conn.close()
    elif url.startswith("postgres"):
        import psycopg2

        conn = psycopg2.connect(
            host=parts.hostname, port=parts.port or 5432, user=parts.username or "postgres", dbname="postgres"
        )
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            cur.execute(f"CREATE DATABASE {name}")
        conn.close()


def per_run_costs(url: str, n: int) -> dict[str, float]:
    """Median milliseconds of a plain insert, a claim and a heartbeat (one process)."""
    db = DatabaseManager(url)
    trial = db.create_trial(db.create_experiment("bench-claims").id, "t").id
    claimer = Claimer(db)
    claimer.register((trial, r) for r in range(1, n + 1))
    times: dict[str, list[float]] = {"insert": [], "claim": [], "heartbeat": []}
    for r in range(1, n + 1):
        t0 = time.perf_counter()
        db.create_trial_run(trial, "running", repeat_idx=-r)
        t1 = time.perf_counter()
        claim = claimer.claim(trial, r)
        t2 = time.perf_counter()
        db.renew_lease(claim.run_id, claim.owner)
        t3 = time.perf_counter()
        times["insert"].append(t1 - t0)
        times["claim"].append(t2 - t1)
        times["heartbeat"].append(t3 - t2)
    db.close()
    return {k: statistics.median(v) * 1000 for k, v in times.items()}


def race(url: str, units: int, processes: int) -> tuple[int, int, float]:
    """``processes`` claimers over ``units`` no-op units: (runs claimed, distinct units, wall s)."""
    db = DatabaseManager(url)
    trial = db.create_trial(db.create_experiment(f"race-{processes}").id, "t").id
    Claimer(db).register((trial, r) for r in range(1, units + 1))
    t0 = time.perf_counter()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _CLAIMER, url, str(trial), str(units)], stdout=subprocess.PIPE, text=True
        )
        for _ in range(processes)
    ]
    claimed = sum(int(p.communicate()[0]) for p in procs)
    wall = time.perf_counter() - t0
    TR = m.TrialRun
    rows = list(TR.select(TR.repeat_idx).where(TR.trial == trial).tuples().execute(db.database))
    db.close()
    assert claimed == len(rows), (claimed, len(rows))
    return len(rows), len({r for (r,) in rows}), wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--claims", type=int, default=1000)
    parser.add_argument("--units", type=int, default=200)
    parser.add_argument("--processes", type=int, default=8)
    parser.add_argument("--mysql", default="mysql://root@127.0.0.1:3306/expman_bench")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/expman_bench")
    parser.add_argument("--backends", default="sqlite,mysql,postgres")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        urls = {
            "sqlite": f"sqlite:///{Path(tmp) / 'bench.db'}",
            "mysql": args.mysql,
            "postgres": args.postgres,
        }
        print(f"per run, median of {args.claims} (ms):")
        print(f"{'backend':<10}{'insert':>9}{'claim':>9}{'heartbeat':>11}{'claim+hb':>10}{'ratio':>8}")
        for name in args.backends.split(","):
            _fresh(urls[name])
            c = per_run_costs(urls[name], args.claims)
            both = c["claim"] + c["heartbeat"]
            print(
                f"{name:<10}{c['insert']:>9.2f}{c['claim']:>9.2f}{c['heartbeat']:>11.2f}{both:>10.2f}"
                f"{both / c['insert']:>7.1f}x"
            )
        print(f"\n{args.processes} claimer processes vs 1 over {args.units} no-op units:")
        many_s = f"{args.processes} procs s"
        print(f"{'backend':<10}{'runs':>6}{'units':>7}{'1 proc s':>10}{many_s:>12}{'ratio':>8}")
        for name in args.backends.split(","):
            _fresh(urls[name])
            n1, _, one = race(urls[name], args.units, 1)
            n, distinct, many = race(urls[name], args.units, args.processes)
            assert n == distinct == n1 == args.units, (n, distinct, n1)
            print(f"{name:<10}{n:>6}{distinct:>7}{one:>10.2f}{many:>12.2f}{many / one:>7.2f}x")


if __name__ == "__main__":
    main()
