"""``.expman/last_db``: launchers started together in one folder all record their database."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

from lightning_expman._state import STATE_FILE, default_db_url, remember_db_url


def _remember_many(folder: str, n: int) -> None:
    for i in range(n):
        remember_db_url(f"sqlite:///db{i % 3}.db", cwd=folder)


def test_launchers_writing_the_state_file_at_once_all_succeed(tmp_path):
    # A fixed temporary name (the old ``last_db.tmp``) made one writer's rename take another's
    # file: "No such file or directory" and a launcher exiting 1 after its runs completed.
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_remember_many, args=(str(tmp_path), 300)) for _ in range(6)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0] * 6
    assert default_db_url(tmp_path) in {f"sqlite:///db{i}.db" for i in range(3)}
    assert [f.name for f in Path(tmp_path, STATE_FILE).parent.iterdir()] == ["last_db"]  # no temp left
