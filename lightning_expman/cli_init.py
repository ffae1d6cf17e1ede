"""``expman init [DIR]``: write a runnable experiment folder to start from.

::

    expman init my_experiment        # env/experiment/base/trials.yaml + model.py
    expman run my_experiment         # a 2-learning-rate grid x 2 seeds on generated data

The folder holds the four YAML files ``expman run`` reads and ``model.py`` (a LightningModule and
a DataModule on generated data: no download, no extra package). Class paths resolve from the
current directory and then from the config folder, so ``model.Classifier`` finds it. An existing,
non-empty folder is refused (exit 2) unless ``--force``, and nothing is half-written.
"""

from __future__ import annotations

import argparse
import re
import shutil
import tempfile
from importlib import resources
from pathlib import Path
from typing import Any

from .errors import ConfigError

__all__ = ["register", "write_example"]

TEMPLATE_FILES = ("env.yaml", "experiment.yaml", "base.yaml", "trials.yaml", "model.py")


def register(subparsers: Any) -> None:
    """Add the ``init`` command to ``expman``'s subparsers."""
    from .cli import describe

    parser = subparsers.add_parser(
        "init",
        help="write a runnable experiment folder (YAML files + model.py) to start from",
        **describe(
            "Write DIR/{env,experiment,base,trials}.yaml and DIR/model.py: a small grid of "
            "Lightning fits on generated data that `expman run DIR` runs as it is. An existing, "
            "non-empty DIR is refused (exit 2) unless --force.",
            "expman init my_experiment && expman run my_experiment",
        ),
    )
    parser.add_argument("dir", metavar="DIR", nargs="?", default="my_experiment", help="folder to create")
    parser.add_argument("--force", action="store_true", help="write into an existing, non-empty folder")
    parser.set_defaults(handler=init_command)


def write_example(target: str | Path, *, force: bool = False) -> list[Path]:
    """Write the example experiment into ``target``; returns the files written.

    Raises:
        ConfigError: ``target`` is a file, or a non-empty folder without ``force``.
    """
    target = Path(target)
    if target.exists() and not target.is_dir():
        raise ConfigError(f"expman init: {target} exists and is not a folder")
    if target.is_dir() and any(target.iterdir()) and not force:
        raise ConfigError(f"expman init: {target} is not empty; choose another folder or pass --force")
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", target.resolve().name).strip("-.") or "experiment"
    source = resources.files("lightning_expman") / "templates" / "init"
    target.mkdir(parents=True, exist_ok=True)
    # Written into a scratch folder beside the target, then moved: never half a folder.
    with tempfile.TemporaryDirectory(dir=target) as scratch:
        written = []
        for file in TEMPLATE_FILES:
            text = (source / file).read_text(encoding="utf-8")
            if file == "experiment.yaml":
                text = text.format(name=name)
            (Path(scratch) / file).write_text(text, encoding="utf-8")
        for file in TEMPLATE_FILES:
            shutil.move(str(Path(scratch) / file), target / file)
            written.append(target / file)
    return written


def init_command(args: argparse.Namespace) -> int:
    """Handler of ``expman init``."""
    written = write_example(args.dir, force=args.force)
    folder = written[0].parent
    print(f"wrote {', '.join(p.name for p in written)} to {folder}/")
    compare = f"expman compare {_name(folder)} --metric val_acc --mode max"
    print(f"next: expman run {args.dir}    (then: {compare})")
    return 0


def _name(folder: Path) -> str:
    text = (folder / "experiment.yaml").read_text(encoding="utf-8")
    match = re.search(r"^name:\s*(\S+)", text, re.M)
    return match.group(1) if match else str(folder.name)
