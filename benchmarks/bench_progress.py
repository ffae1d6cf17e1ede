"""What the live display costs: the same grid through ``Experiment.run`` with the terminal display
(tqdm, redrawn at every epoch) vs ``--quiet``, interleaved rounds in one process (target <= 1%).

The terminal display draws into a pseudo-terminal nobody reads, so every redraw is paid in full.

Usage:
    python benchmarks/bench_progress.py [--rounds 7] [--runs 4] [--epochs 20]
"""

from __future__ import annotations

import argparse
import os
import pty
import statistics
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _tiny_grid import write_config

from lightning_expman.experiment import Experiment
from lightning_expman.progress import QuietDisplay, TerminalDisplay


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=20)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    leader, follower = pty.openpty()
    threading.Thread(target=lambda: [os.read(leader, 65536) for _ in iter(int, 1)], daemon=True).start()
    terminal = os.fdopen(follower, "w")
    times: dict[str, list[float]] = {"quiet": [], "terminal": []}
    with tempfile.TemporaryDirectory() as tmp:
        experiment = Experiment.create(write_config(Path(tmp), args.runs, args.epochs, log_every_n_steps=1))
        for round_idx in range(args.rounds + 1):
            for kind in ("quiet", "terminal") if round_idx % 2 else ("terminal", "quiet"):
                display = (
                    TerminalDisplay(terminal, args.runs, "bench") if kind == "terminal" else QuietDisplay()
                )
                t0 = time.perf_counter()
                experiment.run(
                    resume=False, force=True, on_result=display.finished, on_progress=display.progress
                )
                display.close()
                if round_idx:  # round 0 warms up imports and caches
                    times[kind].append(time.perf_counter() - t0)
    quiet, shown = statistics.median(times["quiet"]), statistics.median(times["terminal"])
    paired = statistics.median(t / q for t, q in zip(times["terminal"], times["quiet"]))
    print(f"{args.rounds} rounds x {args.runs} runs x {args.epochs} epochs (tiny model):")
    print(f"quiet     {quiet:.3f} s (median)")
    print(f"terminal  {shown:.3f} s (median)   ratio {shown / quiet:.4f}x   paired {paired:.4f}x")


if __name__ == "__main__":
    main()
