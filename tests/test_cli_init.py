"""``expman init``: a runnable experiment folder, also from an installed wheel without the repo."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from lightning_expman.cli import main
from lightning_expman.cli_init import TEMPLATE_FILES

REPO = Path(__file__).resolve().parents[1]


def test_init_writes_the_folder_and_refuses_to_overwrite(tmp_path, capsys):
    assert main(["init", str(tmp_path / "my exp")]) == 0
    folder = tmp_path / "my exp"
    assert sorted(p.name for p in folder.iterdir()) == sorted(TEMPLATE_FILES)
    assert "name: my-exp" in (folder / "experiment.yaml").read_text()
    assert "next: expman run" in capsys.readouterr().out
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert main(["init", str(folder)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "is not empty" in err and "--force" in err
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before  # untouched
    (tmp_path / "file").write_text("x")
    assert main(["init", str(tmp_path / "file")]) == 2
    assert "is not a folder" in capsys.readouterr().err


def test_the_written_folder_passes_validation(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["init", "demo"]) == 0
    assert main(["run", "demo", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "experiment 'demo': 2 trials, 4 runs" in out


@pytest.mark.slow
def test_init_then_run_from_a_wheel_without_the_repo(tmp_path):
    """Build the wheel, install it alone into a fresh venv (dependencies come from this one's
    site-packages, but not this checkout), then ``expman init`` + ``expman run`` elsewhere."""
    wheels = tmp_path / "wheels"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(wheels),
            str(REPO),
        ],
        check=True,
        capture_output=True,
    )
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    (wheel,) = wheels.glob("lightning_expman-*.whl")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q", str(wheel)],
        check=True,
        capture_output=True,
    )
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # Only the dependencies: a directory added by a .pth file has its own .pth files (this
    # checkout's editable hook among them) ignored.
    Path(site, "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    expman = str(venv / "bin" / "expman")
    where = subprocess.run(
        [str(python), "-c", "import lightning_expman; print(lightning_expman.__file__)"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert str(venv) in where and str(REPO) not in where
    subprocess.run([expman, "init", "demo"], cwd=work, env=env, check=True, capture_output=True)
    run = subprocess.run(
        [expman, "run", "demo", "--set", "trainer.max_epochs=1"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    assert "demo: 4 runs: 4 completed" in run.stdout
