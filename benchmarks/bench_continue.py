"""What continuing costs: a 20-epoch digits run SIGKILLed in epoch 15, then continued by ``expman run``.

Three ``expman run`` processes on a one-run digits grid (no early stopping), each timed from start
to exit (Python and torch start-up included, ~10 s on a small machine):

* ``uninterrupted``: the 20 epochs in one go;
* ``killed``: the same grid in another database, SIGKILLed (``KillAt``) mid-epoch 15;
* ``continued``: ``expman run`` again: it continues the run from its ``last.ckpt`` (end of epoch 14).

Printed: epochs each process trained (counted by the process itself), wall times, the run's row
(one row, ``attempts`` 2, epochs 0..19 once each) and whether its final metrics equal the
uninterrupted run's. Target (issue 11): the continued attempt trains <= 6 epochs.

Usage:
    python benchmarks/bench_continue.py [--epochs 20] [--kill-at 15]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from lightning_expman.db import DatabaseManager  # noqa: E402
from lightning_expman.db import models as m  # noqa: E402
from lightning_expman.reproduce import final_metrics  # noqa: E402


def write_config(root: Path, epochs: int) -> Path:
    cfg = root / "cfg"
    cfg.mkdir(parents=True)
    settings = {
        "seed": 42,
        "model": {"class_path": "examples.digits.model.DigitsMLP", "init_args": {"hidden": 64, "lr": 0.01}},
        "data": {"class_path": "examples.digits.data.DigitsDataModule", "init_args": {"batch_size": 64}},
        "trainer": {"max_epochs": epochs, "log_every_n_steps": 10},
        "callbacks": [
            {"type": "checkpoint", "monitor": "val_loss"},
            {"type": "metrics_tracker"},
            {"class_path": "tests.continue_support.KillAt"},
        ],
    }
    files = {
        "env": {
            "workspace": str(root / "ws"),
            "trackers": [{"type": "db", "url": f"sqlite:///{root / 'expman.db'}"}],
        },
        "experiment": {"name": "digits", "id": 1},
        "base": {"settings": settings},
        "trials": [{"name": "mlp", "repeat": 1}],
    }
    for name, data in files.items():
        (cfg / f"{name}.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return cfg


def expman_run(cfg: Path, epoch_log: Path, kill: str | None = None) -> tuple[int, float, list[int]]:
    env = {k: v for k, v in os.environ.items() if k != "EXPMAN_TEST_KILL"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    env["EXPMAN_TEST_EPOCH_LOG"] = str(epoch_log)
    if kill:
        env["EXPMAN_TEST_KILL"] = kill
    before = epoch_log.read_text().splitlines() if epoch_log.exists() else []
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "lightning_expman.cli", "run", str(cfg)],
        cwd=REPO,
        env=env,
        capture_output=True,
    )
    wall = time.perf_counter() - start
    lines = epoch_log.read_text().splitlines()[len(before) :]
    return proc.returncode, wall, [int(line.split()[1]) for line in lines]


def the_run(root: Path) -> tuple[dict, list[int], dict]:
    with DatabaseManager(f"sqlite:///{root / 'expman.db'}") as db:
        (run,) = list(m.TrialRun.select().execute(db.database))
        epochs = sorted(
            e.idx for e in m.Epoch.select().where(m.Epoch.trial_run == run.id).execute(db.database)
        )
        return (
            {"id": run.id, "status": run.status, "attempts": run.attempts},
            epochs,
            final_metrics(db, run.id),
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--kill-at", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        a, b = Path(tmp) / "plain", Path(tmp) / "killed"
        cfg_a, cfg_b = write_config(a, args.epochs), write_config(b, args.epochs)
        rc, wall_plain, trained_plain = expman_run(cfg_a, a / "epochs.log")
        assert rc == 0, "uninterrupted run failed"
        rc, wall_killed, trained_killed = expman_run(cfg_b, b / "epochs.log", f"{args.kill_at}:KILL")
        assert rc == -9, f"expected SIGKILL, exit code {rc}"
        rc, wall_cont, trained_cont = expman_run(cfg_b, b / "epochs.log")
        assert rc == 0, "continued run failed"
        row, epochs, final = the_run(b)
        _, _, plain_final = the_run(a)

    def span(epochs: list[int]) -> str:
        return f"{epochs[0]}..{epochs[-1]} ({len(epochs)} epochs)" if epochs else "none"

    print(f"uninterrupted: trained {span(trained_plain)}, wall {wall_plain:.1f} s")
    killed_in = trained_killed[-1]
    print(
        f"killed       : trained {span(trained_killed)}, died in epoch {killed_in}, wall {wall_killed:.1f} s"
    )
    print(f"continued    : trained {span(trained_cont)}, wall {wall_cont:.1f} s")
    print(f"killed + continued: {wall_killed + wall_cont:.1f} s vs {wall_plain:.1f} s uninterrupted")
    recorded = epochs == list(range(args.epochs))
    print(f"run row: id {row['id']} {row['status']} attempts {row['attempts']}")
    print(f"epochs recorded: 0..{args.epochs - 1} once each: {recorded}")
    print(f"final metrics equal to the uninterrupted run's: {final == plain_final}")
    ok = len(trained_cont) <= 6 and row["attempts"] == 2 and epochs == list(range(args.epochs))
    print(
        "target (continued attempt trains <= 6 epochs, one row, each epoch once):", "met" if ok else "NOT met"
    )


if __name__ == "__main__":
    main()
