"""A config folder of N tiny runs (tests/tiny.py models) for the benchmarks that time ``expman run``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


def write_config(root: Path, runs: int, epochs: int, **trainer: Any) -> Path:
    """``root/cfg``: one trial repeated ``runs`` times, ``epochs`` epochs each, workspace in ``root``."""
    cfg = root / "cfg"
    cfg.mkdir()
    files = {
        "env": {"workspace": str(root / "ws"), "trackers": [{"type": "db"}]},
        "experiment": {"name": "bench", "id": 1},
        "base": {
            "settings": {
                "seed": 1,
                "model": {"class_path": "tests.tiny.TinyClassifier", "init_args": {"hidden": 8}},
                "data": {
                    "class_path": "tests.tiny.TinyDataModule",
                    "init_args": {"n": 256, "batch_size": 16},
                },
                "trainer": {"max_epochs": epochs, **trainer},
            }
        },
        "trials": [{"name": "t", "id": 1, "repeat": runs}],
    }
    for name, data in files.items():
        (cfg / f"{name}.yaml").write_text(yaml.safe_dump(data))
    return cfg
