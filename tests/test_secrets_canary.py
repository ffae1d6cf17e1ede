"""The canary test: a password planted everywhere a user may put one never comes out anywhere.

The canary sits in the database URL (MariaDB variant: a real user with that password), in the
MLflow ``tracking_uri`` (MariaDB variant), in settings named ``api_key`` / ``token`` /
``password`` (the token via ``${oc.env:...}``), in a ``--set``, in the model's hyperparameters
(also under an innocent name, ``plain_copy``), and in the text of a failing run's exception.
``expman run`` records to the db, mlflow, tensorboard and log trackers; then every output is
searched: the console of each command, every file under the test folder (run.log and the other
logs, saved configs, TensorBoard event files, the MLflow store and artifacts, exports, reports),
and every row of the databases. Expected hits: 0.

Not searched: the user's own config files, and Lightning checkpoints (``*.ckpt``), whose
``hyper_parameters`` are the model's own ``save_hyperparameters`` values (see
:mod:`lightning_expman.masking`).
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from tests.conftest import server_url
from tests.experiment_support import expman

REPO = Path(__file__).resolve().parents[1]
EXPMAN = Path(sys.executable).with_name("expman")
CANARY = f"Cnry{uuid.uuid4().hex[:12]}"


def _write_config(root: Path, db_url: str, mlflow_uri: str, mlflow_artifacts: Path) -> Path:
    cfg = root / "cfg"
    cfg.mkdir()
    env = {
        "workspace": str(root / "ws"),
        "trackers": [
            {"type": "db", "url": db_url},
            {"type": "mlflow", "tracking_uri": mlflow_uri, "artifact_location": mlflow_artifacts.as_uri()},
            {"type": "tensorboard"},
            {"type": "log"},
        ],
    }
    model_args = {
        "hidden": 4,
        "api_key": CANARY,
        "token": "${oc.env:EXPMAN_CANARY_TOKEN}",
        "db_url": f"postgresql://someone:{CANARY}@db.example/x",
        "plain_copy": CANARY,  # an innocent name: masked because the value is a known secret
    }
    settings = {
        "seed": 3,
        "api_key": CANARY,
        "service": {"token": "${oc.env:EXPMAN_CANARY_TOKEN}", "password": CANARY},
        "model": {"class_path": "tests.canary_support.SecretClassifier", "init_args": model_args},
        "data": {"class_path": "tests.tiny.TinyDataModule", "init_args": {"n": 32, "batch_size": 16}},
        "trainer": {"max_epochs": 2, "log_every_n_steps": 1},
        "callbacks": [{"type": "checkpoint", "interval": 1, "monitor": "val_loss"}],
    }
    trials = [
        {"name": "ok", "id": 1},
        {"name": "leaky", "id": 2, "settings": {"model": {"init_args": {"leak_in_error": True}}}},
    ]
    files = {
        "env": env,
        "experiment": {"name": "canary", "id": 1, "desc": "secrets"},
        "base": {"settings": settings},
        "trials": trials,
    }
    for name, data in files.items():
        (cfg / f"{name}.yaml").write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return cfg


def _mysql_setup(request) -> tuple[str, str]:
    """(db url, mlflow tracking uri) on MariaDB, both through a user whose password is the canary."""
    if server_url("mysql") is None:
        pytest.skip("mysql tests disabled: set EXPMAN_TEST_MYSQL_URL=mysql://root@127.0.0.1:3306/expman_test")
    import pymysql

    db_url = request.getfixturevalue("mysql_url")
    admin_parts = urlsplit(db_url)
    conn = pymysql.connect(
        host=admin_parts.hostname,
        port=admin_parts.port or 3306,
        user=admin_parts.username or "root",
        password=admin_parts.password or "",
        autocommit=True,
    )
    db = admin_parts.path.lstrip("/")
    mlflow_db = f"{db}_ml"
    user = f"cnry_{uuid.uuid4().hex[:8]}"
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {mlflow_db}")
        cur.execute(f"CREATE USER '{user}'@'%' IDENTIFIED BY '{CANARY}'")
        cur.execute(f"GRANT ALL ON {db}.* TO '{user}'@'%'")
        cur.execute(f"GRANT ALL ON {mlflow_db}.* TO '{user}'@'%'")

    def drop() -> None:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {mlflow_db}")
            cur.execute(f"DROP USER IF EXISTS '{user}'@'%'")
        conn.close()

    request.addfinalizer(drop)
    host = f"{admin_parts.hostname}:{admin_parts.port or 3306}"
    return f"mysql://{user}:{CANARY}@{host}/{db}", f"mysql+pymysql://{user}:{CANARY}@{host}/{mlflow_db}"


def _server_rows(url: str, dialect_prefix: str = "") -> list[str]:
    """Every row of every table of a MariaDB database, as text."""
    import pymysql

    parts = urlsplit(url)
    conn = pymysql.connect(
        host=parts.hostname, port=parts.port or 3306, user=parts.username, password=parts.password
    )
    try:
        with conn.cursor() as cur:
            cur.execute(f"USE {parts.path.lstrip('/')}")
            cur.execute("SHOW TABLES")
            tables = [t[0] for t in cur.fetchall()]
            rows = []
            for table in tables:
                cur.execute(f"SELECT * FROM `{table}`")
                rows += [f"{table}: {row!r}" for row in cur.fetchall()]
            return rows
    finally:
        conn.close()


def _file_hits(root: Path) -> list[str]:
    hits = []
    needle = CANARY.encode()
    for path in root.rglob("*"):
        rel = path.relative_to(root).as_posix()
        if not path.is_file() or rel.startswith("cfg/") or path.suffix == ".ckpt":
            continue
        if needle in path.read_bytes():
            hits.append(rel)
    return hits


@pytest.mark.parametrize(
    ("backend", "workers"),
    [("sqlite", 1), ("mysql", 1), ("sqlite", 2)],
    ids=["sqlite", "mysql", "sqlite-2-workers"],
)
def test_canary_password_appears_nowhere(backend, workers, tmp_path, request, capfd):
    if backend == "mysql":
        db_url, mlflow_uri = _mysql_setup(request)
    else:
        db_url, mlflow_uri = f"sqlite:///{tmp_path / 'expman.db'}", f"sqlite:///{tmp_path / 'mlflow.db'}"
    cfg = _write_config(tmp_path, db_url, mlflow_uri, tmp_path / "mlartifacts")
    env = {
        **os.environ,
        "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        "EXPMAN_CANARY_TOKEN": CANARY,
    }
    # A real process: its console is what a user sees (Lightning's and MLflow's warnings included).
    proc = subprocess.run(
        [
            str(EXPMAN),
            "run",
            str(cfg),
            "--set",
            f"+extra.secret_key={CANARY}",
            "--db",
            db_url,
            "--workers",
            str(workers),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 1, proc.stderr  # the leaky trial failed, the other completed
    assert "FAILED" in proc.stdout and "COMPLETED" in proc.stdout
    assert "Changing param values is not allowed" not in proc.stderr  # MLflow params: once per key
    outputs = {"run stdout": proc.stdout, "run stderr": proc.stderr}

    # Read commands, in this process, the database given with a password on the command line.
    os.environ["EXPMAN_CANARY_TOKEN"] = CANARY
    try:
        commands = [
            ("ls",),
            ("show", "canary"),
            ("show", "1"),
            ("show", "2"),
            ("show", "2", "--json"),
            ("export", "canary", "-o", "runs.csv"),
            ("export", "canary", "-o", "epochs.jsonl", "--table", "epochs"),
            ("report", "canary", "-o", "report.html"),
            ("report", "--run", "2", "-o", "run2.html"),
        ]
        # Run again (resume: the completed run is skipped, the failed one runs again).
        code, out, err = expman(
            "run", str(cfg), "--set", f"+extra.secret_key={CANARY}", "--db", db_url, cwd=tmp_path
        )
        assert code == 1, err
        assert "SKIPPED" in out
        outputs["resumed run"] = out + err
        for args in commands:
            code, out, err = expman(*args, "--db", db_url, cwd=tmp_path)
            assert code == 0, (args, err)
            outputs[" ".join(args)] = out + err
    finally:
        os.environ.pop("EXPMAN_CANARY_TOKEN", None)
    captured = capfd.readouterr()
    outputs["in-process console"] = captured.out + captured.err

    hits = [name for name, text in outputs.items() if CANARY in text]
    hits += _file_hits(tmp_path)
    if backend == "mysql":
        hits += [row for row in _server_rows(db_url) if CANARY in row]
        hits += [row for row in _server_rows(mlflow_uri.replace("+pymysql", "")) if CANARY in row]
    assert hits == [], "\n".join(hits)
    # The secrets were really there to leak: the failing run's error is kept, masked.
    assert "with key ***" in outputs["show 2"] or "with key ***" in outputs["show 2 --json"]
