"""The seed's DatabaseManager example runs as written against SQLite and the real MariaDB."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "seed_database_manager.py"


def _load_example():
    spec = importlib.util.spec_from_file_location("seed_database_manager", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _check(summary: dict) -> None:
    assert summary["trial_run"][1] == "COMPLETED"
    assert summary["experiment_metrics"] == [
        ("accuracy", 0.87, {"airplane": 0.85, "car": 0.89, "bird": 0.82})
    ]
    assert summary["experiment_artifacts"] == [("model", "/path/to/model.pth")]
    assert summary["epoch_artifacts"] == [("plot", "/path/to/loss_curve.png")]
    assert summary["trial_artifacts"] == []


def test_example_runs_as_a_script_with_its_default_sqlite_file(tmp_path):
    root = EXAMPLE.parents[1]
    proc = subprocess.run(
        [sys.executable, str(EXAMPLE)],
        cwd=tmp_path,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "outputs" / "seed_database_manager" / "experiments.db").exists()
    assert "CIFAR-10 Classification" in proc.stdout and "/path/to/loss_curve.png" in proc.stdout


@pytest.mark.mysql
def test_example_against_mariadb(mysql_url, capsys):
    _check(_load_example().main(mysql_url))
    assert "ResNet-18" in capsys.readouterr().out


def test_example_against_sqlite_url(sqlite_url):
    _check(_load_example().main(sqlite_url))
