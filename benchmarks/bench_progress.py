"""What the live display costs (target <= 1% of fit time): the same grid through ``Experiment.run``
with no progress at all, with the progress tracker but nothing drawn (``--quiet``), and with the
terminal display (tqdm, redrawn at every epoch).

Built to give a usable figure on a loaded machine:

* arms are **interleaved**: every round runs each arm once, in a rotated order, so drifting load
  hits all arms alike; round 0 warms imports and caches and is dropped;
* each round gives **paired ratios** (terminal / none, quiet / none) of wall time and of this
  process's CPU time (other processes' load does not enter CPU time); reported as the
  **median** with the interquartile range and the min-max over rounds;
* the **own time** of the progress tracker (its hooks, run at every logged step) and of the
  display (its callbacks) is measured in place in every terminal run, as a share of that run's
  wall time: the figure least disturbed by load;
* the terminal is a pseudo-terminal drained by a separate ``cat`` process, so every redraw is paid
  in full here and reading it costs this process nothing.

Usage:
    python benchmarks/bench_progress.py [--rounds 7] [--runs 2] [--epochs 15]
"""

from __future__ import annotations

import argparse
import os
import pty
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _tiny_grid import write_config

from lightning_expman.experiment import Experiment
from lightning_expman.progress import ProgressTracker, QuietDisplay, TerminalDisplay

ARMS = ("none", "quiet", "terminal")
_TRACKER = [0.0]  # seconds inside ProgressTracker's hooks (the epoch redraws they call included)


def _timed_hook(hook: Callable[..., Any]) -> Callable[..., Any]:
    def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return hook(*args, **kwargs)
        finally:
            _TRACKER[0] += time.perf_counter() - start

    return timed


# The tracker's own cost is measured in place: its hooks run at every logged step and epoch
# (``track`` goes through ``track_dict``, counted once).
for _name in ("on_create", "on_end", "track_dict"):
    setattr(ProgressTracker, _name, _timed_hook(getattr(ProgressTracker, _name)))


class _Timed:
    """Forwards ``progress``/``finished`` to a display, adding up the seconds spent inside (those
    of the epoch redraws apart: they run inside the tracker's ``on_end``)."""

    def __init__(self, display: Any) -> None:
        self.display, self.seconds, self.epoch_seconds, self.calls = display, 0.0, 0.0, 0

    def _call(self, method: Callable[..., None], *args: Any) -> float:
        start = time.perf_counter()
        method(*args)
        seconds = time.perf_counter() - start
        self.seconds += seconds
        self.calls += 1
        return seconds

    def progress(self, kind: str, payload: Any) -> None:
        seconds = self._call(self.display.progress, kind, payload)
        if kind == "epoch":
            self.epoch_seconds += seconds

    def finished(self, result: Any) -> None:
        self._call(self.display.finished, result)


def _run(experiment: Experiment, arm: str, terminal: Any, runs: int) -> tuple[float, ...]:
    """(wall s, CPU s of this process, s inside the display, display calls, s inside the tracker
    without the display's) of one ``Experiment.run``."""
    timed = None
    if arm != "none":
        display = TerminalDisplay(terminal, runs, "bench") if arm == "terminal" else QuietDisplay()
        timed = _Timed(display)
    _TRACKER[0] = 0.0
    wall, cpu = time.perf_counter(), time.process_time()
    experiment.run(
        resume=False,
        force=True,
        on_result=timed.finished if timed else None,
        on_progress=timed.progress if timed else None,
    )
    if timed:
        timed.display.close()
    elapsed = time.perf_counter() - wall, time.process_time() - cpu
    if not timed:
        return (*elapsed, 0.0, 0, 0.0)
    return (*elapsed, timed.seconds, timed.calls, _TRACKER[0] - timed.epoch_seconds)


def _spread(values: list[float]) -> str:
    """``median [q1, q3] (min-max)`` of ratios, as percentages over 1."""
    pct = [(v - 1) * 100 for v in values]
    q1, _, q3 = statistics.quantiles(pct, n=4) if len(pct) > 1 else (pct[0], 0, pct[0])
    median = statistics.median(pct)
    return f"{median:+6.2f}%  IQR [{q1:+.2f}, {q3:+.2f}]  range [{min(pct):+.2f}, {max(pct):+.2f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="measured rounds (plus one warm-up)")
    parser.add_argument("--runs", type=int, default=2, help="runs in the grid")
    parser.add_argument("--epochs", type=int, default=15, help="epochs per run (16 steps each)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    leader, follower = pty.openpty()
    # drains the pty; ends with EIO once the display side is closed
    reader = subprocess.Popen(["cat"], stdin=leader, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    terminal = os.fdopen(follower, "w")
    samples: dict[str, list[tuple[float, ...]]] = {arm: [] for arm in ARMS}
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            cfg = write_config(Path(tmp), args.runs, args.epochs, log_every_n_steps=1)
            experiment = Experiment.create(cfg)
            for round_idx in range(args.rounds + 1):
                order = ARMS[round_idx % 3 :] + ARMS[: round_idx % 3]  # rotated: no arm always first
                for arm in order:
                    sample = _run(experiment, arm, terminal, args.runs)
                    if round_idx:  # round 0 warms up imports and caches
                        samples[arm].append(sample)
    finally:
        terminal.close()
        reader.wait(timeout=10)
        os.close(leader)
    load = os.getloadavg()[0]
    print(f"{args.rounds} rounds x {args.runs} runs x {args.epochs} epochs (tiny model), load now {load:.1f}")
    for arm in ARMS:
        wall = statistics.median(s[0] for s in samples[arm])
        cpu = statistics.median(s[1] for s in samples[arm])
        print(f"  {arm:9s} wall {wall:7.3f} s   cpu {cpu:7.3f} s   (medians)")
    none = samples["none"]
    for arm in ("quiet", "terminal"):
        print(f"{arm} vs none, paired per round:")
        print(f"  wall  {_spread([s[0] / n[0] for s, n in zip(samples[arm], none)])}")
        print(f"  cpu   {_spread([s[1] / n[1] for s, n in zip(samples[arm], none)])}")
    terminal = samples["terminal"]
    per_call = statistics.median(s[2] / s[3] * 1000 for s in terminal)
    print("own time, measured in place, as a share of the grid's wall time (median, range):")
    for label, share in (
        ("tracker", [s[4] / s[0] * 100 for s in terminal]),
        ("display", [s[2] / s[0] * 100 for s in terminal]),
        ("both", [(s[2] + s[4]) / s[0] * 100 for s in terminal]),
    ):
        print(f"  {label:8s} {statistics.median(share):.3f}%  ({min(share):.3f}-{max(share):.3f}%)")
    print(f"  target <= 1%; {per_call:.2f} ms per redraw (one per epoch, start and end of a run)")


if __name__ == "__main__":
    main()
