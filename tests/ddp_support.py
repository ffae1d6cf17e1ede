"""Run a multi-process Lightning script (``tests/scripts/*``) the way the DDP tests need it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def run_ddp_script(script: Path, url: str, root: Path) -> subprocess.CompletedProcess:
    """``python SCRIPT URL ROOT/runs`` in ``root``: one CPU thread per rank, no fork, and no
    ``LOCAL_RANK`` inherited (it would make the script think it is already a worker). The timeout
    catches a rank that went on alone and hangs in its next collective."""
    env = {**os.environ, "PL_DISABLE_FORK": "1", "OMP_NUM_THREADS": "1"}
    env.pop("LOCAL_RANK", None)
    return subprocess.run(
        [sys.executable, str(script), url, str(root / "runs")],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=root,
    )
