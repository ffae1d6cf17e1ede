"""``expman run --executor ray`` on a real two-node Ray cluster on this machine, with the real
MariaDB server: exactly-once records, a killed node's runs re-run elsewhere, two drivers splitting
a grid, and SQLite refused on a multi-node cluster.

The cluster is ``ray.cluster_utils.Cluster``: real raylets and a GCS, started and stopped by
these tests only (other Ray processes on the machine are left alone).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from lightning_expman.db import DatabaseManager
from lightning_expman.db import models as m
from tests.experiment_support import write_config

ray_cluster_utils = pytest.importorskip("ray.cluster_utils", reason="pip install 'lightning-expman[ray]'")

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
EXPMAN = Path(sys.executable).with_name("expman")
ENV = {**os.environ, "PYTHONPATH": str(REPO), "RAY_USAGE_STATS_ENABLED": "0"}
TINY = {
    "seed": 42,
    "model": {"class_path": "tests.tiny.TinyClassifier", "init_args": {"hidden": 4}},
    "data": {"class_path": "tests.tiny.TinyDataModule", "init_args": {"n": 32, "batch_size": 16}},
    "trainer": {"max_epochs": 2},
}
GRID = [{"name": "t", "id": 1, "repeat": 2, "grid": {"model.init_args.lr": [0.1, 0.05]}}]  # 4 units


def _start(head_cpus: int, workers: int) -> tuple[object, list]:
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    cluster = ray_cluster_utils.Cluster(
        initialize_head=True, head_node_args={"num_cpus": head_cpus, "include_dashboard": False}
    )
    nodes = [cluster.add_node(num_cpus=1) for _ in range(workers)]
    cluster.wait_for_nodes()
    return cluster, nodes


@pytest.fixture(scope="module")
def two_nodes():
    """A head and a worker node, one CPU each."""
    cluster, _ = _start(head_cpus=1, workers=1)
    yield cluster
    cluster.shutdown()


def _runs(url: str) -> list[tuple]:
    db = DatabaseManager(url)
    try:
        TR, T = m.TrialRun, m.Trial
        q = (
            TR.select(T.name, TR.repeat_idx, TR.seed, TR.status, TR.error)
            .join(T)
            .order_by(T.name, TR.repeat_idx, TR.id)
        )
        return [tuple(r) for r in q.tuples().execute(db.database)]
    finally:
        db.close()


def _driver(cfg: Path, url: str, address: str, cwd: Path, **env: str) -> subprocess.Popen:
    return subprocess.Popen(
        [str(EXPMAN), "run", str(cfg), "--db", url, "--executor", "ray", "--address", address],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**ENV, **env},
    )


def test_a_grid_on_two_nodes_records_what_a_serial_run_records(two_nodes, mysql_url, tmp_path):
    cfg = write_config(tmp_path, GRID, settings=TINY)
    proc = _driver(cfg, mysql_url, two_nodes.address, tmp_path)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, out + err
    assert out.count("COMPLETED") >= 4
    serial = tmp_path / "serial"
    serial.mkdir()
    url = f"sqlite:///{serial / 'expman.db'}"
    subprocess.run(
        [str(EXPMAN), "run", str(cfg), "--db", url], cwd=serial, env=ENV, check=True, capture_output=True
    )
    on_ray, alone = _runs(mysql_url), _runs(url)
    assert len(on_ray) == 4 and {r[3] for r in on_ray} == {"COMPLETED"}
    assert [r[:4] for r in on_ray] == [r[:4] for r in alone]  # same trials, repeats, seeds, statuses


def test_sqlite_is_refused_on_a_multi_node_cluster(two_nodes, tmp_path):
    cfg = write_config(tmp_path, GRID, settings=TINY)
    url = f"sqlite:///{tmp_path / 'expman.db'}"
    proc = _driver(cfg, url, two_nodes.address, tmp_path)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "SQLite file" in lines[0] and "2 nodes" in lines[0] and "mysql://" in lines[0]


@pytest.mark.parametrize("grace", ["soon", "-1", "nan"])
def test_a_bad_cancel_grace_is_refused_in_one_line(grace, tmp_path):
    cfg = write_config(tmp_path, GRID, settings=TINY)
    proc = _driver(
        cfg, f"sqlite:///{tmp_path / 'expman.db'}", "auto", tmp_path, EXPMAN_RAY_CANCEL_GRACE=grace
    )
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2, err
    assert err.strip().splitlines() == [
        f"expman: error: $EXPMAN_RAY_CANCEL_GRACE must be a number of seconds >= 0, got {grace!r}"
    ]


def test_two_drivers_split_the_grid(two_nodes, postgres_url, tmp_path):
    grid = [{"name": "t", "id": 1, "repeat": 4, "grid": {"model.init_args.lr": [0.1, 0.05]}}]  # 8 units
    cfg = write_config(tmp_path, grid, settings=TINY)
    first = _driver(cfg, postgres_url, two_nodes.address, tmp_path)
    second = _driver(cfg, postgres_url, two_nodes.address, tmp_path)
    outputs = [p.communicate(timeout=600) for p in (first, second)]
    assert {first.returncode, second.returncode} <= {0, 3}, outputs
    rows = _runs(postgres_url)
    assert len(rows) == 8 and len({(r[0], r[1]) for r in rows}) == 8 and {r[3] for r in rows} == {"COMPLETED"}
    lines = [
        [ln for ln in out.splitlines() if ln.startswith("[") and "COMPLETED" in ln] for out, _ in outputs
    ]
    assert len(lines[0]) + len(lines[1]) == 8
    assert lines[0] and lines[1]  # both drivers ran some of it


def test_a_killed_node_s_runs_are_run_again_elsewhere_and_recorded_once(mysql_url, tmp_path):
    # The head has no CPU: tasks run on node A; A is killed mid-grid and node B joins.
    cluster, (node_a,) = _start(head_cpus=0, workers=1)
    try:
        slow = {**TINY, "trainer": {"max_epochs": 60}}
        cfg = write_config(tmp_path, GRID, settings=slow)
        proc = _driver(cfg, mysql_url, cluster.address, tmp_path)
        deadline = time.monotonic() + 300
        while not _fitting_now(mysql_url):  # a task on A is fitting (not just claimed by the driver)
            assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
            time.sleep(0.3)
        cluster.remove_node(node_a, allow_graceful=False)
        cluster.add_node(num_cpus=1)
        _, err = proc.communicate(timeout=600)
    finally:
        cluster.shutdown()
    assert proc.returncode == 0, err
    rows = _runs(mysql_url)
    finished = [r for r in rows if r[3] == "COMPLETED"]
    assert sorted((r[0], r[1]) for r in finished) == sorted({(r[0], r[1]) for r in rows})  # each unit once
    assert len(finished) == 4
    lost = [r for r in rows if r[3] == "LOST"]
    assert lost and all(r[4].startswith("lost: ") for r in lost)  # the killed node's run, kept as history


def _safe_runs(url: str) -> list[tuple]:
    try:
        return _runs(url)
    except Exception:  # the schema is being created right now
        return []


def _fitting_now(url: str) -> int:
    """How many RUNNING runs have recorded an epoch of their own: their task is fitting."""
    db = DatabaseManager(url)
    try:
        TR, E = m.TrialRun, m.Epoch
        q = TR.select(TR.id).join(E, on=E.trial_run == TR.id).where(TR.status == "RUNNING").distinct()
        return q.count(db.database)
    except Exception:  # the schema is being created right now
        return 0
    finally:
        db.close()


def _fitting_runs(url: str) -> int:
    """How many runs have recorded an epoch."""
    db = DatabaseManager(url)
    try:
        return len({r[0] for r in m.Epoch.select(m.Epoch.trial_run).tuples().execute(db.database)})
    except Exception:  # the schema is being created right now
        return 0
    finally:
        db.close()


def _ctrl_c_once(proc: subprocess.Popen, ready: Callable[[], bool]) -> None:
    """SIGINT to the driver once ``ready()``; it must exit 130 (interrupted)."""
    deadline = time.monotonic() + 300
    while not ready():
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err


def test_ctrl_c_on_the_driver_cancels_the_tasks_and_records_them_aborted(two_nodes, mysql_url, tmp_path):
    slow = {**TINY, "trainer": {"max_epochs": 100_000}}
    cfg = write_config(tmp_path, GRID, settings=slow)
    proc = _driver(cfg, mysql_url, two_nodes.address, tmp_path)
    _ctrl_c_once(
        proc,
        lambda: sum(r[3] == "RUNNING" for r in _safe_runs(mysql_url)) >= 2 and _fitting_runs(mysql_url) > 0,
    )
    rows = _runs(mysql_url)
    assert rows and {r[3] for r in rows} == {"ABORTED"}  # nothing left RUNNING, nothing else claimed


def test_ctrl_c_kills_tasks_that_do_not_stop_and_records_them_aborted(two_nodes, mysql_url, tmp_path):
    """Tasks deaf to the cancel's KeyboardInterrupt (these ignore SIGINT; a cancel that reaches a
    task while it is still starting is lost the same way) are killed once the grace period is
    over, and the driver records their runs ABORTED: none is left RUNNING."""
    deaf = {
        **TINY,
        "model": {"class_path": "tests.tiny.SigintDeafClassifier", "init_args": {"hidden": 4}},
        "trainer": {"max_epochs": 100_000},
    }
    cfg = write_config(tmp_path, GRID, settings=deaf)
    proc = _driver(cfg, mysql_url, two_nodes.address, tmp_path, EXPMAN_RAY_CANCEL_GRACE="3")
    _ctrl_c_once(proc, lambda: _fitting_runs(mysql_url) >= 2)  # both tasks are fitting (and deaf)
    rows = _runs(mysql_url)
    assert [(r[3], r[4]) for r in rows] == [("ABORTED", "interrupted: its Ray task was cancelled")] * 2, rows


def test_a_search_on_two_nodes_beside_a_local_process_runs_exactly_num_trials(
    two_nodes, postgres_url, tmp_path
):
    optuna = pytest.importorskip("optuna")
    from lightning_expman.search.planner import optuna_url

    search = {
        "num_trials": 5,
        "sampler": "random",
        "pruner": {"type": "median", "n_startup_trials": 1},
        "space": {"model.init_args.lr": {"low": 0.01, "high": 0.5, "log": True}},
    }
    cfg = write_config(tmp_path, [{"name": "s", "id": 1, "repeat": 2, "search": search}], settings=TINY)
    ray_driver = _driver(cfg, postgres_url, two_nodes.address, tmp_path)
    local = subprocess.Popen(
        [str(EXPMAN), "run", str(cfg), "--db", postgres_url],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    outputs = [p.communicate(timeout=600) for p in (ray_driver, local)]
    assert (ray_driver.returncode, local.returncode) == (0, 0), outputs
    trials = optuna.load_study(study_name="exp/s", storage=optuna_url(postgres_url)).trials
    counted = [t for t in trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(counted) == 5 and all(t.state.name == "FAIL" for t in trials if t not in counted)
    db = DatabaseManager(postgres_url)
    try:
        TR, T = m.TrialRun, m.Trial
        rows = list(TR.select(T.name, TR.repeat_idx, TR.status, TR.pid).join(T).tuples().execute(db.database))
    finally:
        db.close()
    names = {f"s-t{t.number:03d}" for t in counted}
    assert {r[0] for r in rows} == names and len({(r[0], r[1]) for r in rows}) == len(rows)  # each unit once
    assert {r[2] for r in rows} <= {"COMPLETED", "PRUNED"}
    assert {r[3] for r in rows} - {ray_driver.pid, local.pid}  # some trials ran in Ray tasks
