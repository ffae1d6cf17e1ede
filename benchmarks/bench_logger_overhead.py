"""Fit overhead of ExpmanLogger vs a no-op Lightning Logger, with CSVLogger and MLFlowLogger as peers.

Each configuration fits the same tiny model (``log_every_n_steps=1``, 10 metrics logged per step,
several hundred steps); the configurations run as interleaved rounds in one process (order rotated
every round) so machine noise hits them alike. Reported: the median wall time of ``fit`` (+ the
logger's close, so buffered writes are counted) per configuration and its ratio to the no-op logger
(target: ExpmanLogger <= 1.03x); the calling-thread cost of ``log_metrics`` + ``save`` inside the
real fits (p50 / p99 / max; target p99 <= 0.2 ms); and a check that after finalize every logged
value is in the database.

Usage:
    python benchmarks/bench_logger_overhead.py [--rounds 7] [--steps 400]
    python benchmarks/bench_logger_overhead.py --model boring --metrics 3 --steps 2000 --epochs 1
        # the coordination issue's setting: Lightning's BoringModel, 3 values every step
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import lightning as L
import torch
from lightning.pytorch.demos.boring_classes import BoringModel, RandomDataset
from lightning.pytorch.loggers import CSVLogger, Logger, MLFlowLogger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_expman.lightning import ExpmanLogger

N_METRICS = 10


class NoOpLogger(Logger):
    """The baseline: a Lightning Logger that does nothing."""

    @property
    def name(self) -> str:
        return "noop"

    @property
    def version(self) -> str:
        return "0"

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        pass

    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        pass


class TimedExpmanLogger(ExpmanLogger):
    """ExpmanLogger timing its own log_metrics + save on the calling (training) thread."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.call_ns: list[int] = []
        self.logged: list[tuple[int | None, dict[str, float]]] = []

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        t0 = time.perf_counter_ns()
        super().log_metrics(metrics, step)
        self.save()
        self.call_ns.append(time.perf_counter_ns() - t0)
        self.logged.append((step, dict(metrics)))


class BoringBench(BoringModel):
    """Lightning's own BoringModel, logging N_METRICS values on every training step."""

    def training_step(self, batch: Any, batch_idx: int) -> Any:
        out = super().training_step(batch, batch_idx)
        loss = out["loss"].detach()
        self.log_dict({f"m{i}": loss * (i + 1) for i in range(N_METRICS)}, on_step=True, on_epoch=False)
        return out


class BenchModel(L.LightningModule):
    """A tiny MLP logging N_METRICS values on every training step."""

    def __init__(self, lr: float = 0.05) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        logits = self.net(x)
        loss = nn.functional.cross_entropy(logits, y)
        with torch.no_grad():
            acc = (logits.argmax(-1) == y).float().mean()
            values = {"train_loss": loss.detach(), "train_acc": acc}
            for i in range(N_METRICS - 2):
                values[f"m{i}"] = loss.detach() * (i + 1)
        self.log_dict(values, on_step=True, on_epoch=False)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


def make_loader(steps: int, batch_size: int = 8, model: str = "mlp") -> DataLoader:
    if model == "boring":
        return DataLoader(RandomDataset(32, steps * batch_size), batch_size=batch_size)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(steps * batch_size, 8, generator=g)
    y = (x[:, 0] > 0).long()
    return DataLoader(TensorDataset(x, y), batch_size=batch_size)


def build_logger(kind: str, root: Path, round_idx: int) -> Logger:
    if kind == "noop":
        return NoOpLogger()
    if kind == "expman":
        # One database for every round, as a user's runs accumulate in one file.
        return TimedExpmanLogger(
            "bench", "overhead", db=f"sqlite:///{root / 'expman.db'}", save_dir=root / "ex"
        )
    if kind == "csv":
        return CSVLogger(save_dir=root / "csv", name="bench", version=round_idx)
    if kind == "mlflow":
        return MLFlowLogger(experiment_name="bench", tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    raise ValueError(kind)


def run_fit(
    kind: str, root: Path, round_idx: int, loader: DataLoader, epochs: int, model_kind: str = "mlp"
) -> tuple[float, float, Logger]:
    torch.manual_seed(0)
    logger = build_logger(kind, root, round_idx)
    trainer = L.Trainer(
        logger=logger,
        max_epochs=epochs,
        log_every_n_steps=1,
        accelerator="cpu",
        devices=1,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        num_sanity_val_steps=0,
    )
    model = BoringBench() if model_kind == "boring" else BenchModel()
    # Collect the previous fits' garbage now, so no configuration pays for another's.
    gc.collect()
    t0, c0 = time.perf_counter(), time.process_time()
    trainer.fit(model, train_dataloaders=loader)
    if isinstance(logger, ExpmanLogger):
        logger.close()  # count the time to make every value durable
    # Wall time, and CPU time of the whole process (writer threads included): on a shared,
    # loaded machine the CPU time is the steadier measure of the work a logger adds.
    return time.perf_counter() - t0, time.process_time() - c0, logger


def verify_db(root: Path, logger: TimedExpmanLogger) -> tuple[int, int]:
    """(values logged on steps, values found in step_metric for that run); they must match."""
    from lightning_expman.db import models as m
    from lightning_expman.db.manager import DatabaseManager

    expected = {}
    for step, metrics in logger.logged:
        for name, value in metrics.items():
            if name != "epoch":
                expected[(step, name)] = float(value)
    db = DatabaseManager(f"sqlite:///{root / 'expman.db'}")
    try:
        with db.database.bind_ctx(m.ALL_MODELS):
            rows = (
                m.StepMetric.select(m.StepMetric.step, m.StepMetric.name, m.StepMetric.value)
                .where(m.StepMetric.trial_run == logger.run_id)
                .tuples()
            )
            found = {(s, n): v for s, n, v in rows}
    finally:
        db.close()
    mismatched = [
        k for k, v in expected.items() if k not in found or abs(found[k] - v) > 1e-6 * max(1, abs(v))
    ]
    if mismatched:
        raise SystemExit(
            f"database check FAILED: {len(mismatched)} values missing or wrong, e.g. {mismatched[:3]}"
        )
    return len(expected), len(found)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="measured rounds (after one warm-up round)")
    parser.add_argument("--steps", type=int, default=400, help="training steps per epoch")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--configs", default="noop,expman,csv,mlflow")
    parser.add_argument("--model", choices=("mlp", "boring"), default="mlp")
    parser.add_argument("--metrics", type=int, default=10, help="values logged per step")
    args = parser.parse_args()
    global N_METRICS
    N_METRICS = args.metrics
    warnings.filterwarnings("ignore")
    import logging

    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    torch.set_num_threads(1)
    kinds = args.configs.split(",")
    loader = make_loader(args.steps, model=args.model)
    times: dict[str, list[float]] = {k: [] for k in kinds}
    cpu: dict[str, list[float]] = {k: [] for k in kinds}
    calls: list[int] = []
    checked = (0, 0)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for round_idx in range(args.rounds + 1):
            order = kinds[round_idx % len(kinds) :] + kinds[: round_idx % len(kinds)]
            for kind in order:
                seconds, cpu_seconds, logger = run_fit(kind, root, round_idx, loader, args.epochs, args.model)
                if round_idx == 0:
                    continue  # warm-up: imports, schema / MLflow store creation, caches
                times[kind].append(seconds)
                cpu[kind].append(cpu_seconds)
                if isinstance(logger, TimedExpmanLogger):
                    calls += logger.call_ns
                    n, found = verify_db(root, logger)
                    checked = (checked[0] + n, checked[1] + found)
            print(f"round {round_idx}: " + ", ".join(f"{k}={times[k][-1]:.3f}s" for k in kinds if times[k]))
    steps = args.steps * args.epochs
    print(
        f"\n{args.rounds} rounds x {steps} steps of {args.model}, {N_METRICS} metrics/step, "
        "log_every_n_steps=1, torch threads=1"
    )
    base = statistics.median(times["noop"]) if "noop" in times else None
    cpu_base = statistics.median(cpu["noop"]) if "noop" in cpu else None
    # "paired": the median over rounds of (this config's fit / the no-op fit of the same round),
    # the interleaved-pairs measure; "min": best fit / best no-op fit, the least noisy estimate.
    print(
        f"{'config':<10}{'wall med s':>11}{'min s':>8}{'wall ratio':>12}{'paired':>9}{'min':>8}"
        f"{'cpu med s':>11}{'cpu ratio':>11}"
    )
    for kind in kinds:
        med, cmed = statistics.median(times[kind]), statistics.median(cpu[kind])
        ratio = f"{med / base:.3f}x" if base else "-"
        cratio = f"{cmed / cpu_base:.3f}x" if cpu_base else "-"
        paired = (
            f"{statistics.median(t / n for t, n in zip(times[kind], times['noop'])):.3f}x" if base else "-"
        )
        low = f"{min(times[kind]) / min(times['noop']):.3f}x" if base else "-"
        print(
            f"{kind:<10}{med:>11.3f}{min(times[kind]):>8.3f}{ratio:>12}{paired:>9}{low:>8}"
            f"{cmed:>11.3f}{cratio:>11}"
        )
    if calls:
        ms = sorted(c / 1e6 for c in calls)
        p = lambda q: ms[min(len(ms) - 1, int(q * len(ms)))]  # noqa: E731
        print(
            f"\nExpmanLogger log_metrics+save on the calling thread ({len(ms)} calls, {N_METRICS} metrics): "
            f"p50={p(0.50):.4f} ms  p99={p(0.99):.4f} ms  max={ms[-1]:.3f} ms"
        )
        print(
            f"database check: {checked[0]} step values logged, "
            f"{checked[1]} found after finalize -- all present"
        )
    sys.stdout.flush()
    os._exit(0)  # skip MLflow's slow interpreter-exit hooks


if __name__ == "__main__":
    main()
