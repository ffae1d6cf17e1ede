"""The lowest Lightning that pyproject.toml allows really runs: ``tox -e lowest``'s smoke (a digits
grid with a CSVLogger beside ours, the drop-in fit, Trainer arguments of the installed Lightning),
run in a fresh virtual environment with Lightning 2.2.5, so the suite (and CI) covers it."""

from __future__ import annotations

import configparser
import os
import re
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
    "pytest>=8",
]
# The smoke's files: the ones tox.ini's [testenv:lowest] runs (one list, kept there).
_TOX = configparser.ConfigParser(interpolation=None)
_TOX.read(REPO / "tox.ini", encoding="utf-8")
SMOKE = re.findall(r"tests/\S+\.py", _TOX["testenv:lowest"]["commands"])


@pytest.mark.slow
def test_the_lowest_supported_lightning_passes_the_smoke(tmp_path):
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
    env = {**os.environ, "PYTHONPATH": str(REPO), "EXPMAN_EXPECT_LIGHTNING": LOWEST}
    smoke = subprocess.run(
        [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", *SMOKE],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    assert smoke.returncode == 0, smoke.stdout[-4000:] + smoke.stderr[-2000:]
    assert " passed" in smoke.stdout and "skipped" not in smoke.stdout, smoke.stdout[-2000:]
