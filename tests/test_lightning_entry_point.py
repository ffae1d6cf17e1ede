"""LevelHooks reaches every Trainer through Lightning's ``lightning.pytorch.callbacks_factory``
entry point (pyproject.toml), and through the in-process fallback where the installed metadata
lacks it. Each case runs in a fresh interpreter whose ``sys.path`` starts with a throwaway
``lightning_expman-0.dist-info`` (it shadows the installed package's metadata, as a
reinstall would): one declaring the entry point, one declaring none."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

PROBE = textwrap.dedent(
    """
    import sys
    import lightning as L
    # Another program's Trainer: the entry point adds nothing and imports none of our Lightning side.
    early = L.Trainer(logger=False, default_root_dir=sys.argv[1])
    mine = [type(cb).__name__ for cb in early.callbacks if type(cb).__module__.startswith("lightning_expman")]
    print("before any ExpmanLogger:", mine, "lightning_expman.lightning" in sys.modules)
    from lightning_expman.lightning import ExpmanLogger, LevelHooks, hooks
    from lightning_expman.lightning.continuation import RunCheckpointState
    from tests.tiny import TinyClassifier, TinyDataModule, fast_trainer_kwargs

    def ours(trainer):
        kinds = (LevelHooks, RunCheckpointState)
        return [type(cb).__name__ for cb in trainer.callbacks if isinstance(cb, kinds)]

    logger = ExpmanLogger("ep", "t", db=f"sqlite:///{sys.argv[1]}/expman.db", save_dir=sys.argv[1] + "/runs")
    print("fallback registered:", hooks._FINDER in sys.meta_path)
    plain = L.Trainer(logger=False, default_root_dir=sys.argv[1], **fast_trainer_kwargs(max_epochs=1))
    before = list(plain.callbacks)
    plain.fit(TinyClassifier(), datamodule=TinyDataModule())
    print("plain trainer untouched:", plain.callbacks == before)
    trainer = L.Trainer(logger=logger, **fast_trainer_kwargs(max_epochs=2))
    print("at init:", ours(trainer))
    trainer.fit(TinyClassifier(), datamodule=TinyDataModule())
    print("after fit:", ours(trainer)[:2], type(trainer.callbacks[0]).__name__, logger._hooked)
    print("status:", logger.status)
    """
)


def probe(tmp_path: Path, entry_points: str) -> str:
    site = tmp_path / "site"
    dist = site / "lightning_expman-0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: lightning_expman\nVersion: 0\n")
    (dist / "entry_points.txt").write_text(entry_points)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(REPO)])}
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


BEFORE = "before any ExpmanLogger: [] False\n"
EXPECTED = """\
plain trainer untouched: True
at init: ['LevelHooks', 'RunCheckpointState']
after fit: ['LevelHooks', 'RunCheckpointState'] LevelHooks True
status: COMPLETED
"""


@pytest.mark.slow
def test_the_entry_point_gives_every_trainer_the_hooks_once(tmp_path):
    out = probe(
        tmp_path,
        "[lightning.pytorch.callbacks_factory]\n"
        "lightning_expman = lightning_expman._lightning_entry:callbacks_factory\n",
    )
    assert out == BEFORE + "fallback registered: False\n" + EXPECTED


@pytest.mark.slow
def test_without_the_entry_point_in_metadata_the_fallback_declares_it(tmp_path):
    out = probe(tmp_path, "[console_scripts]\nexpman = lightning_expman.cli:main\n")
    assert out == BEFORE + "fallback registered: True\n" + EXPECTED
