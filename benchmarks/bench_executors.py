"""Wall time of one grid of tiny runs: serial vs ``--workers 2`` vs ``--executor ray`` on a local
two-node Ray cluster (one CPU per node), in one run; and Ray's scheduling overhead per task.

Each configuration runs the same 16-run grid (tests/tiny.py models) into a fresh database through
``expman run``, so process start-up and imports count as a user sees them. The Ray cluster is
started before the timed runs (a user's cluster is already up). The overhead per task is
``(ray wall - workers-2 wall) / runs`` (target: Ray <= 1.15x ``--workers 2``, <= 0.5 s per task).

Usage:
    python benchmarks/bench_executors.py [--runs 16] [--epochs 2]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXPMAN = Path(sys.executable).with_name("expman")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _tiny_grid import write_config  # noqa: E402

ENV = {**os.environ, "PYTHONPATH": str(REPO), "RAY_USAGE_STATS_ENABLED": "0"}


def fresh_database(url: str) -> str:
    """Drop and create the PostgreSQL database of ``url`` (every configuration starts empty)."""
    from urllib.parse import urlsplit

    import psycopg2

    parts = urlsplit(url)
    conn = psycopg2.connect(
        host=parts.hostname, port=parts.port or 5432, user=parts.username, dbname="postgres"
    )
    conn.autocommit = True
    name = parts.path.lstrip("/")
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        cur.execute(f"CREATE DATABASE {name}")
    conn.close()
    return url


def timed(cfg: Path, url: str, *extra: str) -> float:
    """Wall seconds of ``expman run cfg --db url *extra`` into an empty database."""
    fresh_database(url)
    t0 = time.perf_counter()
    proc = subprocess.run(
        [str(EXPMAN), "run", str(cfg), "--db", url, *extra], cwd=REPO, env=ENV, capture_output=True, text=True
    )
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"expman run {' '.join(extra)} failed: {proc.stderr.strip()[-500:]}")
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument(
        "--db",
        default="postgresql://postgres@127.0.0.1:5432/expman_bench",
        help="a server database (SQLite is refused on a multi-node cluster); emptied for each run",
    )
    args = parser.parse_args()
    from ray.cluster_utils import Cluster

    with tempfile.TemporaryDirectory() as tmp:
        cfg = write_config(Path(tmp), args.runs, args.epochs)
        os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        try:
            walls = {
                "serial": timed(cfg, args.db),
                "workers-2": timed(cfg, args.db, "--workers", "2"),
                "ray-2-nodes": timed(cfg, args.db, "--executor", "ray", "--address", cluster.address),
            }
        finally:
            cluster.shutdown()
    base = walls["workers-2"]
    print(f"{args.runs} runs x {args.epochs} epochs of a tiny model, through `expman run`, PostgreSQL:")
    print(f"{'executor':<14}{'wall s':>9}{'vs serial':>11}{'vs workers-2':>14}")
    for name, wall in walls.items():
        print(f"{name:<14}{wall:>9.2f}{wall / walls['serial']:>10.2f}x{wall / base:>13.2f}x")
    print(
        f"ray scheduling overhead per task vs --workers 2: {(walls['ray-2-nodes'] - base) / args.runs:+.3f} s"
    )


if __name__ == "__main__":
    main()
