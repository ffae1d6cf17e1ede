"""The lowest Lightning that pyproject.toml allows (``lightning>=2.2``) really runs: a digits grid
through ``expman run`` and a drop-in fit, in a fresh virtual environment with Lightning 2.2."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import IN_CI

REPO = Path(__file__).resolve().parents[1]
LOWEST = "2.2.5"
# The project's dependencies at the lowest Lightning (2.2 still imports pkg_resources).
PACKAGES = [
    f"lightning=={LOWEST}",
    "setuptools>=77,<81",  # torch 2.13 needs >= 77; 81 drops the pkg_resources Lightning 2.2 imports
    "omegaconf>=2.3",
    "peewee>=4.0,<5",
    "pyyaml>=6",
    "typing_extensions>=4.5",
    "scikit-learn>=1.3",
    "torchmetrics>=1.0",
]


@pytest.mark.slow
def test_the_lowest_supported_lightning_runs_a_grid_and_a_drop_in_fit(tmp_path):
    import torch

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    # The torch this suite runs on (CI pins the CPU wheel), so nothing large is downloaded.
    install = subprocess.run(
        [python, "-m", "pip", "install", "-q", f"torch=={torch.__version__.split('+')[0]}", *PACKAGES],
        capture_output=True,
        text=True,
    )
    if install.returncode != 0:
        message = f"cannot install Lightning {LOWEST}: {install.stderr.strip().splitlines()[-1:]}"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    version = subprocess.run(
        [python, "-c", "import lightning; print(lightning.__version__)"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert version == LOWEST
    shutil.copytree(REPO / "configs" / "digits", tmp_path / "digits")
    grid = subprocess.run(
        [
            python,
            "-m",
            "lightning_expman.cli",
            "run",
            str(tmp_path / "digits"),
            "--set",
            "trainer.max_epochs=1",
            "--db",
            f"sqlite:///{tmp_path / 'grid.db'}",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    assert grid.returncode == 0, grid.stdout + grid.stderr
    assert "digits: 8 runs: 8 completed" in grid.stdout
    drop_in = subprocess.run(
        [
            python,
            str(REPO / "examples" / "drop_in.py"),
            "--epochs",
            "1",
            "--db",
            f"sqlite:///{tmp_path / 'd.db'}",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert drop_in.returncode == 0, drop_in.stderr
    assert "COMPLETED" in drop_in.stdout
