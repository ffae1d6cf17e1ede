"""Benchmark: ``config.load`` + ``runs()`` of a 1,000-trial grid, and the import cost of the config.

Run: ``python benchmarks/bench_config_load.py [--digits-only]``. Prints wall times (best of N);
asserts nothing. The budgets it informs: ``expman run --dry-run`` of a 1,000-trial grid in <= 2 s
end to end, and of ``configs/digits`` (annotation checks of model, data, callbacks and Trainer
arguments included, read from source without importing torch) in <= 0.5 s.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

FILES = {
    "env.yaml": "workspace: outputs/bench\n",
    "experiment.yaml": "name: bench\nid: 1\nsettings:\n  trainer: {max_epochs: 5}\n",
    "base.yaml": """settings:
  seed: 7
  model: {class_path: tests.tiny.TinyClassifier, init_args: {hidden: 8, lr: 0.1}}
  data: {class_path: tests.tiny.TinyDataModule, init_args: {batch_size: 16, seed: "${seed}"}}
  trainer: {enable_progress_bar: false}
  callbacks: [{type: early_stopping, monitor: val_loss, patience: 3}, {type: checkpoint, interval: 1}]
""",
    "trials.yaml": """- name: g
  id: 1
  repeat: 2
  grid:
    model.init_args.lr: [0.1, 0.05, 0.02, 0.01, 0.005, 0.002, 0.001, 0.0005, 0.0002, 0.0001]
    model.init_args.hidden: [2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]
    data.init_args.batch_size: [4, 8, 12, 16, 20, 24, 28, 32, 36, 40]
""",
}


def _python(code: str, repeats: int = 7) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
        times.append(time.perf_counter() - t)
    return min(times)


def digits_dry_run(repeats: int = 5) -> None:
    """``expman run configs/digits --dry-run`` in a fresh process, from an empty folder."""
    cli = (
        "import sys; from lightning_expman.cli import main; "
        f"sys.exit(main(['run', {str(REPO / 'configs' / 'digits')!r}, '--dry-run']))"
    )
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        # Bytecode cached (in tmp, not the repository) as an installed package has it; the first
        # run writes the cache and is not counted.
        env = {
            **{k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
            "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
            "PYTHONPYCACHEPREFIX": str(Path(tmp) / "pycache"),
        }
        subprocess.run([sys.executable, "-c", cli], check=True, cwd=tmp, env=env, stdout=subprocess.DEVNULL)
        for _ in range(repeats):
            t = time.perf_counter()
            subprocess.run(
                [sys.executable, "-c", cli], check=True, cwd=tmp, env=env, stdout=subprocess.DEVNULL
            )
            times.append(time.perf_counter() - t)
    bare = _python("pass", repeats)
    print(
        f"fresh process: expman run configs/digits --dry-run: best {min(times):.3f} s, "
        f"median {statistics.median(times):.3f} s (python -c pass: {bare:.3f} s)"
    )


def main() -> None:
    if "--digits-only" in sys.argv[1:]:
        digits_dry_run()
        return
    digits_dry_run()
    from lightning_expman.config import load

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "grid"
        folder.mkdir()
        for name, text in FILES.items():
            (folder / name).write_text(text)
        times = []
        for _ in range(5):
            t = time.perf_counter()
            spec = load(folder, overrides=["trainer.max_epochs=2"])
            runs = spec.runs()
            times.append(time.perf_counter() - t)
        print(f"load + runs(): {len(spec.trials)} trials, {len(runs)} runs: "
              f"best {min(times):.3f} s, median {statistics.median(times):.3f} s")  # fmt: skip
        t = time.perf_counter()
        _ = [trial.settings for trial in spec.trials]
        print(f"building all {len(spec.trials)} DictConfig settings (lazy, not needed by --dry-run): "
              f"{time.perf_counter() - t:.3f} s")  # fmt: skip
        t = time.perf_counter()
        _ = spec.to_container()
        print(f"spec.to_container(): {time.perf_counter() - t:.3f} s")
        code = f"from lightning_expman.config import load; load({str(folder)!r}).runs()"
        print(f"fresh process: import + load + runs(): {_python(code, 3):.3f} s")
        cli = (
            "import sys; from lightning_expman.cli import main; "
            f"sys.exit(main(['run', {str(folder)!r}, '--dry-run']))"
        )
        try:
            times = []
            for _ in range(3):
                t = time.perf_counter()
                subprocess.run([sys.executable, "-c", cli], check=True, cwd=REPO, stdout=subprocess.DEVNULL)
                times.append(time.perf_counter() - t)
            print(
                f"fresh process: expman run --dry-run (1,000 trials, 2,000 runs listed): {min(times):.3f} s"
            )
        except subprocess.CalledProcessError as e:
            print(f"expman run --dry-run unavailable (exit {e.returncode})")

    bare = _python("pass")
    imp = _python("import lightning_expman.config")
    ws = _python("import lightning_expman.workspace")
    print(f"python -c pass: {bare:.3f} s")
    print(f"python -c 'import lightning_expman.config': {imp:.3f} s (+{imp - bare:.3f} s)")
    print(f"python -c 'import lightning_expman.workspace': {ws:.3f} s (+{ws - bare:.3f} s)")
    check = "import sys, lightning_expman.config, lightning_expman.workspace; " \
            "print('torch' in sys.modules or 'lightning' in sys.modules)"  # fmt: skip
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, cwd=REPO)
    heavy = result.stdout.strip()
    print(f"torch or lightning imported by config/workspace: {heavy}")


if __name__ == "__main__":
    main()
