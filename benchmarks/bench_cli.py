"""Benchmark: ``expman`` start-up (``--help``, ``ls``, ``show RUN``), ``--dry-run`` of a 1,000-trial
grid, ``--workers 2`` vs serial, and the digits example end to end.

Run from the repository root:
``python benchmarks/bench_cli.py [--skip-digits] [--startup-only] [--repeats N]``.
Prints wall times (best of N, fresh processes; start-up also the least CPU time, steadier on a
loaded machine) and the ratios the issue budgets; asserts nothing.

Budgets (issue 4):

* ``expman --help`` adds at most 0.4 s to a bare ``python -c pass``; ``expman ls`` and
  ``expman show RUN`` (the demo database of ``tests/query_data.py``) stay near it: they import
  neither torch, lightning nor mlflow;
* ``expman run --dry-run`` of a 1,000-trial grid takes at most 2 s;
* ``--workers 2`` on a grid of 8 tiny runs takes at most 0.65x the serial wall time.

Each run of the worker comparison fits ``tests.tiny.TinyClassifier`` on 1,024 samples for 12 epochs
(64 steps each): small, but long enough that the work is the fits, not the start-up.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
EXPMAN = Path(sys.executable).with_name("expman")
ENV = {**os.environ, "PYTHONPATH": str(REPO)}


CPU: dict[str, float] = {}  # command -> least CPU time (user + system) of its runs


def _wall(cmd: list[str], cwd: Path, repeats: int) -> float:
    """Best wall time of ``repeats`` runs of ``cmd`` (each must exit 0); the least CPU time of
    the same runs goes to :data:`CPU` (steadier than wall time on a loaded machine)."""
    best = cpu = float("inf")
    for _ in range(repeats):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True, text=True)
        elapsed = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
        best = min(best, elapsed)
        cpu = min(cpu, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    CPU[" ".join(cmd[:2])] = cpu
    return best


def _cpu(cmd: str) -> str:
    return f"cpu {CPU[cmd]:.3f} s"


def _write(folder: Path, files: dict[str, object]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return folder


def _config(folder: Path, name: str, trials: list[dict], settings: dict) -> Path:
    return _write(
        folder,
        {
            "env.yaml": {"workspace": str(folder.parent / f"ws_{name}")},
            "experiment.yaml": {"name": name, "id": 1},
            "base.yaml": {"settings": settings},
            "trials.yaml": trials,
        },
    )


def bench_help(tmp: Path, repeats: int) -> tuple[float, float]:
    bare = _wall([sys.executable, "-c", "pass"], tmp, repeats)
    helped = _wall([str(EXPMAN), "--help"], tmp, repeats)
    return bare, helped


def bench_read(tmp: Path, repeats: int) -> tuple[float, float]:
    """``expman ls`` and ``expman show RUN`` on the tests' demo database (SQLite)."""
    sys.path.insert(0, str(REPO))
    from tests.query_data import build_demo

    demo = build_demo(f"sqlite:///{tmp / 'demo.db'}")
    run = str(demo.runs["lr-0.01"][0])
    ls = _wall([str(EXPMAN), "ls", "--db", demo.url], tmp, repeats)
    show = _wall([str(EXPMAN), "show", run, "--db", demo.url], tmp, repeats)
    return ls, show


def bench_dry_run(tmp: Path, repeats: int) -> float:
    values = [10 ** -(i / 3) for i in range(10)]
    cfg = _config(
        tmp / "dry",
        "dry",
        [
            {
                "name": "g",
                "id": 1,
                "repeat": 1,
                "grid": {
                    "model.init_args.lr": values,
                    "model.init_args.hidden": [2**i for i in range(1, 11)],
                    "data.init_args.batch_size": list(range(4, 44, 4)),
                },
            }
        ],
        {
            "seed": 7,
            "model": {"class_path": "tests.tiny.TinyClassifier", "init_args": {"hidden": 8, "lr": 0.1}},
            "data": {"class_path": "tests.tiny.TinyDataModule", "init_args": {"batch_size": 16}},
            "trainer": {"max_epochs": 5},
            "callbacks": [{"type": "early_stopping", "monitor": "val_loss"}, {"type": "metrics_tracker"}],
        },
    )
    return _wall([str(EXPMAN), "run", str(cfg), "--dry-run"], tmp, repeats)


def bench_workers(tmp: Path, repeats: int) -> tuple[float, float]:
    settings = {
        "seed": 1,
        "model": {"class_path": "tests.tiny.TinyClassifier", "init_args": {"hidden": 32, "lr": 0.05}},
        "data": {"class_path": "tests.tiny.TinyDataModule", "init_args": {"n": 1024, "batch_size": 16}},
        "trainer": {"max_epochs": 12, "log_every_n_steps": 10},
    }
    trials = [{"name": "g", "id": 1, "repeat": 2, "grid": {"model.init_args.lr": [0.1, 0.05, 0.02, 0.01]}}]
    times: dict[int, float] = {}
    for workers in (1, 2):
        best = float("inf")
        for i in range(repeats):
            cfg = _config(tmp / f"w{workers}_{i}", f"w{workers}_{i}", trials, settings)
            best = min(best, _wall([str(EXPMAN), "run", str(cfg), "--workers", str(workers)], tmp, 1))
        times[workers] = best
    return times[1], times[2]


def bench_digits(tmp: Path) -> float:
    folder = tmp / "digits"
    shutil.copytree(REPO / "configs" / "digits", folder / "configs" / "digits")
    (folder / "examples").symlink_to(REPO / "examples", target_is_directory=True)
    return _wall([str(EXPMAN), "run", "configs/digits"], folder, 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="best of N for the start-up timings")
    parser.add_argument("--skip-digits", action="store_true", help="do not time `expman run configs/digits`")
    parser.add_argument("--startup-only", action="store_true", help="only --help, ls and show")
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory(prefix="bench_cli_") as name:
        tmp = Path(name)
        bare, helped = bench_help(tmp, args.repeats)
        exe = str(EXPMAN)
        print(f"python -c pass           {bare:6.3f} s   {_cpu(sys.executable + ' -c')}")
        print(
            f"expman --help            {helped:6.3f} s   {_cpu(exe + ' --help')}   "
            f"(+{helped - bare:.3f} s; budget +0.400 s)"
        )
        ls, show = bench_read(tmp, args.repeats)
        print(f"expman ls                {ls:6.3f} s   {_cpu(exe + ' ls')}   (+{ls - bare:.3f} s)")
        print(f"expman show RUN          {show:6.3f} s   {_cpu(exe + ' show')}   (+{show - bare:.3f} s)")
        if args.startup_only:
            return 0
        dry = bench_dry_run(tmp, args.repeats)
        print(f"run --dry-run 1000 trials {dry:5.3f} s   (budget 2.000 s)")
        serial, parallel = bench_workers(tmp, max(1, min(args.repeats, 2)))
        print(f"8 tiny runs, serial      {serial:6.2f} s")
        print(f"8 tiny runs, --workers 2 {parallel:6.2f} s   ({parallel / serial:.2f}x serial; budget 0.65x)")
        if not args.skip_digits:
            digits = bench_digits(tmp)
            print(f"expman run configs/digits {digits:5.1f} s   (8 runs; target about a minute on 2 cores)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
