"""A short smoke on whatever Lightning is installed: ``tox -e lowest`` runs it on the lowest one the
project declares (with ``EXPMAN_EXPECT_LIGHTNING=2.2.5``), the default env on the newest.

It checks that the installed Lightning is inside pyproject.toml's range, that ``trainer:`` keys are
checked against that Lightning's own ``Trainer`` (an argument only newer versions take is refused
at load, exit 2, instead of failing the run), and runs the digits grid (one epoch, a CSVLogger
beside ours) and the drop-in example.
"""

from __future__ import annotations

import inspect
import os
import re
import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from tests.experiment_support import expman, tree

REPO = Path(__file__).resolve().parents[1]

# Trainer arguments newer than the lowest supported Lightning (2.2.5 has neither).
NEWER_ARGUMENTS = {"enable_autolog_hparams": False, "model_registry": "null"}


def _declared() -> Requirement:
    # pyproject's dependency line (tomllib is Python 3.11+; the project supports 3.10).
    text = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    return Requirement(re.search(r'^\s*"(lightning[<>=!~ ][^"]*)"', text, re.M).group(1))


def test_the_installed_lightning_is_in_the_declared_range():
    installed = version("lightning")
    assert _declared().specifier.contains(installed), f"lightning {installed} outside {_declared()}"
    expected = os.environ.get("EXPMAN_EXPECT_LIGHTNING")
    if expected:
        assert installed == expected


def _digits(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "configs" / "digits", tmp_path / "digits")
    return tmp_path / "digits"


@pytest.mark.parametrize("argument", sorted(NEWER_ARGUMENTS))
def test_trainer_arguments_are_those_of_the_installed_lightning(argument, tmp_path):
    import lightning

    known = argument in inspect.signature(lightning.Trainer.__init__).parameters
    folder = _digits(tmp_path)
    before = tree(tmp_path)
    value = str(NEWER_ARGUMENTS[argument]).lower()
    code, out, err = expman(
        "run", str(folder), "--dry-run", "--set", f"trainer.{argument}={value}", cwd=tmp_path
    )
    if known:
        assert code == 0, err
    else:
        assert code == 2 and out == "", out
        assert f"trainer.{argument}: not an argument of the installed lightning.Trainer" in err
    assert tree(tmp_path) == before


@pytest.mark.slow
def test_digits_grid_with_a_csv_logger_and_the_drop_in_example(tmp_path):
    folder = _digits(tmp_path)
    csv = "trainer.logger={class_path: lightning.pytorch.loggers.CSVLogger}"
    db = f"sqlite:///{tmp_path / 'grid.db'}"
    sets = ["--set", "trainer.max_epochs=1", "--set", "trainer.limit_train_batches=4", "--set", csv]
    code, out, err = expman("run", str(folder), *sets, "--db", db, cwd=tmp_path)
    assert code == 0, err
    assert "digits: 8 runs: 8 completed" in out
    assert len(list((tmp_path / "expman_runs").rglob("metrics.csv"))) == 8
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    drop_in = subprocess.run(
        [
            sys.executable,
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
    assert drop_in.returncode == 0, drop_in.stderr[-2000:]
    assert "COMPLETED" in drop_in.stdout
