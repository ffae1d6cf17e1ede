"""Helpers shared by the runner tests (no tests here): write a config folder, read the runs back.

Config folders are written with absolute workspace and database paths inside the test's
temporary directory, so nothing lands in the repository.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

TINY_SETTINGS: dict[str, Any] = {
    "seed": 42,
    "model": {"class_path": "tests.tiny.TinyClassifier", "init_args": {"hidden": 4, "lr": 0.1}},
    "data": {"class_path": "tests.tiny.TinyDataModule", "init_args": {"n": 32, "batch_size": 16}},
    "trainer": {"max_epochs": 2, "log_every_n_steps": 1},
}


def write_config(
    root: Path,
    trials: list[dict[str, Any]],
    *,
    name: str = "exp",
    settings: dict[str, Any] | None = None,
    experiment: dict[str, Any] | None = None,
    folder: str = "cfg",
) -> Path:
    """Write env/experiment/base/trials.yaml under ``root/folder``; returns the folder.

    The workspace is ``root/ws`` and the database ``root/expman.db``.
    """
    cfg = root / folder
    cfg.mkdir(parents=True, exist_ok=True)
    env = {
        "workspace": str(root / "ws"),
        "verbose": False,
        "debug": False,
        "trackers": [{"type": "db", "url": f"sqlite:///{root / 'expman.db'}"}],
    }
    exp = {"name": name, "id": 1, "desc": "test experiment", **(experiment or {})}
    base = {"settings": copy.deepcopy(TINY_SETTINGS if settings is None else settings)}
    for file, data in (("env", env), ("experiment", exp), ("base", base), ("trials", trials)):
        (cfg / f"{file}.yaml").write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return cfg


def db_url(root: Path) -> str:
    return f"sqlite:///{root / 'expman.db'}"


def runs_of(root: Path, experiment: str = "exp") -> list[dict[str, Any]]:
    """Every trial_run row of ``experiment`` as dicts (with ``trial`` = trial name), by id."""
    from lightning_expman.db import DatabaseManager
    from lightning_expman.db import models as m

    manager = DatabaseManager(db_url(root))
    try:
        with manager.database.bind_ctx(m.ALL_MODELS):
            query = (
                m.TrialRun.select(m.TrialRun, m.Trial)
                .join(m.Trial)
                .join(m.Experiment)
                .where(m.Experiment.title == experiment)
                .order_by(m.TrialRun.id)
            )
            rows = []
            for run in query:
                row = {f.name: getattr(run, f.name) for f in m.TrialRun._meta.sorted_fields}
                row["trial"] = run.trial.name
                row["trial_id"] = run.trial.id
                row["epochs"] = m.Epoch.select().where(m.Epoch.trial_run == run.id).count()
                rows.append(row)
            return rows
    finally:
        manager.close()


def experiments_of(root: Path) -> list[dict[str, Any]]:
    from lightning_expman.db import DatabaseManager
    from lightning_expman.db import models as m

    manager = DatabaseManager(db_url(root))
    try:
        with manager.database.bind_ctx(m.ALL_MODELS):
            return [
                {"id": e.id, "title": e.title, "config_hash": e.config_hash, "config": e.config}
                for e in m.Experiment.select().order_by(m.Experiment.id)
            ]
    finally:
        manager.close()


def set_run(root: Path, run_id: int, **values: Any) -> None:
    """Overwrite columns of one trial_run row (to simulate a crashed or live run)."""
    from lightning_expman.db import DatabaseManager
    from lightning_expman.db import models as m

    manager = DatabaseManager(db_url(root))
    try:
        with manager.database.bind_ctx(m.ALL_MODELS):
            m.TrialRun.update(**values).where(m.TrialRun.id == run_id).execute()
    finally:
        manager.close()


def expman(*args: str, cwd: Path) -> tuple[int, str, str]:
    """Run ``expman ARGS`` in this process from ``cwd``; returns (exit code, stdout, stderr)."""
    import contextlib
    import io
    import os

    from lightning_expman.cli import main

    out, err = io.StringIO(), io.StringIO()
    old = os.getcwd()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(list(args))
            except SystemExit as e:  # argparse usage errors
                code = int(e.code or 0)
    finally:
        os.chdir(old)
    return code, out.getvalue(), err.getvalue()


def tree(path: Path) -> set[str]:
    """Every file and folder below ``path``, relative, with ``/`` separators."""
    return {p.relative_to(path).as_posix() for p in path.rglob("*")}
