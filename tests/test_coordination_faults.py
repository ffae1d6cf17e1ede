"""Coordination under real faults: concurrent launchers, SIGKILL, connections killed every 0.2 s,
a database unreachable past the retry bound. Real processes, real Lightning fits of tiny models,
the real SQLite / MariaDB / PostgreSQL servers.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from lightning_expman.db import DatabaseManager
from lightning_expman.db import models as m
from lightning_expman.errors import DatabaseError
from tests.experiment_support import write_config
from tests.netfault import Proxy, connection_killer

REPO = Path(__file__).resolve().parents[1]
EXPMAN = Path(sys.executable).with_name("expman")
ENV = {**os.environ, "PYTHONPATH": str(REPO)}
TINY = {
    "seed": 42,
    "model": {"class_path": "tests.tiny.TinyClassifier", "init_args": {"hidden": 4}},
    "data": {"class_path": "tests.tiny.TinyDataModule", "init_args": {"n": 32, "batch_size": 16}},
    "trainer": {"max_epochs": 1},
}

pytestmark = pytest.mark.slow


def _rows(url: str) -> list[tuple]:
    """``(trial name, repeat, status, error)`` of every trial run, by id."""
    db = DatabaseManager(url)
    try:
        TR, T = m.TrialRun, m.Trial
        q = TR.select(T.name, TR.repeat_idx, TR.status, TR.error).join(T).order_by(TR.id).tuples()
        return list(q.execute(db.database))
    finally:
        db.close()


def _expman(*args: str, cwd: Path, timeout: float = 600) -> tuple[int, str, str]:
    proc = subprocess.run(
        [str(EXPMAN), *args], cwd=cwd, capture_output=True, text=True, env=ENV, timeout=timeout
    )
    return proc.returncode, proc.stdout, proc.stderr


@pytest.mark.parametrize("launchers", [8])  # fewer launchers: the SLURM-array test (4), test_search (2)
def test_concurrent_launchers_run_each_unit_exactly_once(db_url, tmp_path, launchers):
    trials = [{"name": f"t{i}", "id": i, "repeat": 2} for i in range(1, 5)]  # 8 units
    cfg = write_config(tmp_path, trials, settings=TINY)
    procs = [
        subprocess.Popen(
            [str(EXPMAN), "run", str(cfg), "--db", db_url],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=ENV,
        )
        for _ in range(launchers)
    ]
    outputs = [p.communicate(timeout=900) for p in procs]
    codes = [p.returncode for p in procs]
    unexpected = [(c, out[-1500:], err[-3000:]) for c, (out, err) in zip(codes, outputs) if c not in (0, 3)]
    assert not unexpected, unexpected  # 3: finished its share while others still ran
    rows = _rows(db_url)
    assert sorted((t, r) for t, r, *_ in rows) == sorted((f"t{i}", r) for i in range(1, 5) for r in (1, 2))
    assert {s for _, _, s, _ in rows} == {"COMPLETED"}
    # Each launcher printed only its own runs: 8 progress lines in all, none twice.
    lines = [
        line
        for out, _ in outputs
        for line in out.splitlines()
        if line.startswith("[") and "COMPLETED" in line
    ]
    assert len(lines) == 8 and len({line.split(" seed")[0] for line in lines}) == 8
    code, out, err = _expman("run", str(cfg), "--db", db_url, cwd=tmp_path)
    assert code == 0 and "8 skipped" in out, err


def test_a_slurm_array_of_four_launchers_splits_the_grid(mysql_url, tmp_path):
    """The SLURM form: ``sbatch --array=1-4 --wrap "expman run CFG --db URL"`` starts 4 identical
    processes (they differ only in SLURM_ARRAY_TASK_ID, which expman does not need)."""
    trials = [{"name": f"t{i}", "id": i, "repeat": 2} for i in range(1, 5)]  # 8 units
    cfg = write_config(tmp_path, trials, settings=TINY)
    procs = [
        subprocess.Popen(
            [str(EXPMAN), "run", str(cfg), "--db", mysql_url, "--wait"],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**ENV, "SLURM_ARRAY_TASK_ID": str(task), "SLURM_ARRAY_JOB_ID": "4242"},
        )
        for task in range(1, 5)
    ]
    outputs = [p.communicate(timeout=900) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], outputs  # --wait: each sees the grid finish
    rows = _rows(mysql_url)
    assert (
        len(rows) == 8
        and len({(t, r) for t, r, *_ in rows}) == 8
        and {s for _, _, s, _ in rows} == {"COMPLETED"}
    )


def test_a_killed_launcher_s_run_is_lost_after_its_lease_and_run_again(db_url, tmp_path):
    trials = [{"name": "long", "id": 1, "repeat": 1}]
    cfg = write_config(tmp_path, trials, settings={**TINY, "trainer": {"max_epochs": 40}})
    proc = subprocess.Popen(
        [str(EXPMAN), "run", str(cfg), "--db", db_url, "--stale-after", "2"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=ENV,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 300
        while not (os.path.exists(tmp_path / "ws") and _running(db_url)):
            assert time.monotonic() < deadline and proc.poll() is None, "the run never started"
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    # As seen from another host: the dead process cannot be checked, only its lease.
    db = DatabaseManager(db_url)
    m.TrialRun.update(proc_key="another-host/1/1/1").execute(db.database)
    db.close()
    _, out, _ = _expman("ls", "--db", db_url, cwd=tmp_path)
    assert "1 running" in out  # its lease has not run out yet
    time.sleep(2.5)
    _, out, _ = _expman("ls", "--db", db_url, cwd=tmp_path)
    assert "1 lost" in out and _rows(db_url)[0][2] == "RUNNING"  # shown lost; ls wrote nothing
    # --restart: a new row from scratch (without it the run would continue from its last
    # checkpoint in the same row when it had written one: tests/test_continuation.py).
    code, out, err = _expman("run", str(cfg), "--db", db_url, "--restart", cwd=tmp_path)
    assert code == 0, err
    (_, _, first, error), (_, _, second, _) = _rows(db_url)
    assert first == "LOST" and error.startswith("lost: no heartbeat within its lease")
    assert second == "COMPLETED"


def _running(url: str) -> bool:
    try:
        return any(s == "RUNNING" for _, _, s, _ in _rows(url))
    except Exception:  # the schema is being created right now
        return False


_DROP_IN = textwrap.dedent(
    """
    import sys
    import lightning as L
    from lightning_expman import ExpmanLogger
    from tests.tiny import TinyClassifier, TinyDataModule, fast_trainer_kwargs
    logger = ExpmanLogger("dropin", "t", db=sys.argv[1], save_dir=sys.argv[2], stale_after=2)
    trainer = L.Trainer(logger=logger, **fast_trainer_kwargs(max_epochs=100_000))
    trainer.fit(TinyClassifier(), TinyDataModule())
    """
)


def test_a_killed_drop_in_fit_is_shown_lost_after_its_lease(tmp_path):
    url = f"sqlite:///{tmp_path / 'expman.db'}"
    proc = subprocess.Popen(
        [sys.executable, "-c", _DROP_IN, url, str(tmp_path)], cwd=REPO, env=ENV, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 300
        while not _running(url):
            assert time.monotonic() < deadline and proc.poll() is None, "the fit never started"
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    deadline = time.monotonic() + 60
    while "1 lost" not in (out := _expman("ls", "--db", url, cwd=tmp_path)[1]):
        assert time.monotonic() < deadline, out
        time.sleep(0.5)
    assert _rows(url)[0][2] == "RUNNING"  # read commands never write
    # The next fit records the verdict (its process is gone, and by now its lease ran out too).
    subprocess.run(
        [sys.executable, "-c", _DROP_IN.replace("100_000", "1"), url, str(tmp_path)],
        cwd=REPO,
        env=ENV,
        check=True,
        capture_output=True,
    )
    (_, _, first, error), (_, _, second, _) = _rows(url)
    assert first == "LOST" and error.startswith("lost: ") and second == "COMPLETED"


def _fit(url: str, tmp_path: Path, **trainer: object):
    import lightning as L

    from lightning_expman import ExpmanLogger
    from tests.tiny import TinyClassifier, TinyDataModule, fast_trainer_kwargs

    class Steady(L.Callback):
        """4 ms per step: the fit lasts ~3 s however fast the machine, so the 0.2 s killer
        strikes many times during it."""

        def on_train_batch_end(self, *args: object) -> None:
            time.sleep(0.004)

    logger = ExpmanLogger("faults", "t", db=url, save_dir=tmp_path, stale_after=30)
    kwargs = fast_trainer_kwargs(**{"max_epochs": 40, "limit_train_batches": 16, **trainer})
    fit = L.Trainer(logger=logger, enable_checkpointing=False, callbacks=[Steady()], **kwargs)
    return logger, fit, TinyClassifier(), TinyDataModule(n=64, batch_size=4)


@pytest.mark.parametrize("server", ["mysql", "postgres"])
def test_connections_killed_every_200ms_lose_and_duplicate_nothing(server, request, tmp_path):
    url = request.getfixturevalue(f"{server}_url")
    logger, trainer, model, data = _fit(url, tmp_path)
    with connection_killer(url, every=0.2) as rounds:
        trainer.fit(model, data)
        time.sleep(0.5)  # let the killer see the run's connections once more
        logger.close()
    assert sum(rounds) >= 5, rounds  # connections really were killed, again and again
    steps = trainer.global_step
    db = DatabaseManager(url)
    try:
        run = m.TrialRun.get_by_id(logger.run_id)
        assert run.status == "COMPLETED", run.error
        S = m.StepMetric
        q = S.select(S.step).where((S.trial_run == run.id) & (S.name == "train_loss")).tuples()
        logged = [s for (s,) in q.execute(db.database)]
        assert sorted(logged) == list(range(1, steps + 1)) or sorted(logged) == list(range(steps))
        epochs = db.database.execute_sql(
            "SELECT COUNT(*), COUNT(DISTINCT e.epoch_idx) FROM epoch_metric e "
            f"JOIN metric m ON m.id = e.metric_id WHERE e.trial_run_id = {run.id} AND m.type = 'val_loss'"
        ).fetchone()
        assert tuple(epochs) == (40, 40)
    finally:
        db.close()


@pytest.mark.parametrize("server", ["mysql", "postgres"])
def test_a_database_unreachable_past_the_bound_fails_the_run_with_one_line(
    server, request, tmp_path, monkeypatch
):
    url = request.getfixturevalue(f"{server}_url")
    parts = urlsplit(url)
    monkeypatch.setenv("EXPMAN_DB_RETRY_FOR", "1.5")
    with Proxy(parts.hostname, parts.port) as proxy:
        via = proxy.url(url).replace("@", ":s3cret-canary@", 1) if server == "postgres" else proxy.url(url)
        logger, trainer, model, data = _fit(via, tmp_path, max_epochs=100_000)

        import lightning as L

        class Cut(L.Callback):
            def on_train_epoch_end(self, trainer, pl_module):
                if trainer.current_epoch == 3:
                    proxy.down()

        class Restore(logging.Handler):  # once the writer gave up, the server comes back
            def emit(self, record: logging.LogRecord) -> None:
                if "giving up" in record.getMessage():
                    proxy.up()

        handler = Restore(level=logging.ERROR)
        logging.getLogger("lightning_expman.db.writer").addHandler(handler)
        trainer.callbacks.append(Cut())
        try:
            with pytest.raises(DatabaseError) as info:
                trainer.fit(model, data)
        finally:
            logging.getLogger("lightning_expman.db.writer").removeHandler(handler)
    message = str(info.value)
    assert "\n" not in message and "value(s) not written" in message
    assert f"127.0.0.1:{proxy.port}" in message and "unreachable for 1.5 s" in message
    assert "s3cret-canary" not in message
    db = DatabaseManager(url)
    try:
        run = m.TrialRun.get_by_id(logger.run_id)
        assert run.status == "FAILED" and "value(s) not written" in run.error
        assert "s3cret-canary" not in run.error
    finally:
        db.close()
