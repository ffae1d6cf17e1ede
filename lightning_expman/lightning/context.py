"""Run context: what a trial run needs to be reproduced and compared later.

:func:`collect_context` gathers the resolved hyperparameters, the seed, the Python / torch /
lightning versions, the platform, the host and the git commit into a JSON-able dict that the
logger passes as ``context=`` when it creates the TRIAL_RUN (the DB tracker stores it in
``trial_run.context`` and copies ``host`` / ``git_commit`` into their own columns).
:func:`write_model_summary` saves Lightning's ``ModelSummary`` as a text artifact.

Example:
    >>> from lightning_expman.lightning.context import collect_context
    >>> ctx = collect_context(seed=42)
    >>> sorted(ctx)[:3]
    ['git_commit', 'host', 'lightning']
"""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..masking import mask_secrets, remember_secrets

__all__ = [
    "accelerators",
    "collect_context",
    "git_commit",
    "jsonable",
    "module_hparams",
    "resolve_seed",
    "safe_params",
    "user_hparams",
    "write_model_summary",
]


def git_commit(cwd: str | os.PathLike[str] | None = None) -> str | None:
    """The commit checked out in the repository containing ``cwd`` (default: the working directory).

    Reads ``.git/HEAD`` (and the ref it names) directly: that costs microseconds where spawning
    ``git rev-parse HEAD`` costs ~10 ms per fit (worktrees and submodules too, through their
    ``gitdir:`` pointer); git itself is asked only for layouts the direct read does not handle
    (unusual refs). Returns ``None`` quietly outside a
    repository or without git: the context is a convenience and must never fail a fit.
    """
    start = Path(cwd or os.getcwd()).resolve()
    for folder in (start, *start.parents):
        git = folder / ".git"
        if git.is_dir():
            commit = _read_head(git)
            return commit if commit is not None else _rev_parse(folder)
        if git.exists():  # a file: worktree or submodule pointer ("gitdir: <path>")
            commit = _read_pointer(folder, git)
            return commit if commit is not None else _rev_parse(folder)
    return None


def _read_pointer(folder: Path, pointer: Path) -> str | None:
    """HEAD of a worktree / submodule: its own git dir holds HEAD, the common dir the branches."""
    try:
        text = pointer.read_text(encoding="utf-8").strip()
        if not text.startswith("gitdir:"):
            return None
        gitdir = (folder / text[len("gitdir:") :].strip()).resolve()
        common = gitdir / "commondir"
        shared = (
            (gitdir / common.read_text(encoding="utf-8").strip()).resolve() if common.is_file() else gitdir
        )
    except OSError:
        return None
    return _read_head(gitdir, shared)


def _read_head(git: Path, refs: Path | None = None) -> str | None:
    refs = refs or git
    try:
        head = (git / "HEAD").read_text(encoding="utf-8").strip()
        if not head.startswith("ref:"):
            return head if len(head) == 40 else None
        ref = head[4:].strip()
        loose = refs / ref
        if loose.is_file():
            return loose.read_text(encoding="utf-8").strip() or None
        packed = refs / "packed-refs"
        if packed.is_file():
            for line in packed.read_text(encoding="utf-8").splitlines():
                sha, _, name = line.partition(" ")
                if name == ref:
                    return sha
    except OSError:
        pass
    return None


def _rev_parse(folder: Path) -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = out.stdout.strip()
    return commit if out.returncode == 0 and commit else None


def resolve_seed(run_info: Mapping[str, Any] | None = None) -> int | None:
    """The run's seed: ``run_info["seed"]``, else ``PL_GLOBAL_SEED`` (set by ``L.seed_everything``)."""
    if run_info and run_info.get("seed") is not None:
        return int(run_info["seed"])
    env = os.environ.get("PL_GLOBAL_SEED")
    try:
        return int(env) if env is not None else None
    except ValueError:
        return None


def jsonable(value: Any) -> Any:
    """``value`` made JSON-able: mappings and sequences recursively, other objects as ``str``."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)) or (
        isinstance(value, Sequence) and not isinstance(value, (str, bytes))
    ):  # OmegaConf's ListConfig is a Sequence, not a list
        return [jsonable(v) for v in value]
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:  # 0-d tensor / numpy scalar
        return value.item()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return str(value)


def module_hparams(pl_module: Any = None, datamodule: Any = None) -> dict[str, Any]:
    """The hyperparameters saved with ``save_hyperparameters`` on the module and datamodule.

    Secrets are masked (:mod:`lightning_expman.masking`) and remembered, so that the same value
    logged under another name later is masked too.
    """
    params: dict[str, Any] = {}
    for obj in (datamodule, pl_module):  # the module wins on a clash, as in Lightning's merge
        hp = getattr(obj, "hparams_initial", None) if obj is not None else None
        if hp:
            params.update(user_hparams(hp))
    return safe_params(params)


LIGHTNING_KEYS = frozenset({"_class_path", "_instantiator"})
"""Keys Lightning itself adds to ``hparams`` (LightningCLI's class path and instantiator): not the user's."""


def user_hparams(params: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` without the keys Lightning adds (:data:`LIGHTNING_KEYS`)."""
    return {k: v for k, v in dict(params).items() if k not in LIGHTNING_KEYS}


def safe_params(params: Any) -> Any:
    """``params`` JSON-able (:func:`jsonable`), secrets remembered and masked: what trackers get."""
    plain = jsonable(params)
    remember_secrets(plain)
    return mask_secrets(plain)


def collect_context(
    *,
    seed: int | None = None,
    hparams: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The context stored with a trial run.

    Args:
        seed: the run's seed (see :func:`resolve_seed`).
        hparams: resolved hyperparameters (see :func:`module_hparams`).
        extra: more keys (a runner's own context wins over the collected values).

    Returns:
        ``{"python", "torch", "lightning", "platform", "host", "pid", "git_commit", "seed",
        "hparams", ...}`` and, with CUDA devices, ``"cuda"``, ``"cudnn"``, ``"gpus"`` (names, one
        per visible device) -- all JSON-able.
    """
    ctx: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": _version("torch"),
        "lightning": _version("lightning"),
        "platform": platform.platform(),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "argv": list(sys.argv),
        "git_commit": git_commit(),
        "seed": seed,
    }
    ctx.update(accelerators())
    if hparams:
        ctx["hparams"] = jsonable(hparams)
    if extra:
        ctx.update(jsonable(extra))
    return mask_secrets(ctx)  # argv may hold ``--db URL`` or ``--set api_key=...``


def accelerators() -> dict[str, Any]:
    """``{"cuda": "12.8", "cudnn": 91002, "gpus": ["NVIDIA H200", ...]}`` when CUDA devices are
    visible (as ``CUDA_VISIBLE_DEVICES`` leaves them); ``{}`` on a CPU-only machine or build.
    Reads torch only when it is already imported (the run's model imported it)."""
    torch = sys.modules.get("torch")
    try:
        if torch is None or not torch.cuda.is_available():
            return {}
        return {
            "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
            "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
        }
    except Exception:  # a broken driver must not stop a run from being recorded
        return {}


def _version(module: str) -> str | None:
    mod = sys.modules.get(module)
    if mod is None:
        try:
            from importlib.metadata import version

            return version(module)
        except Exception:
            return None
    return getattr(mod, "__version__", None)


def write_model_summary(pl_module: Any, path: str | os.PathLike[str], max_depth: int = 2) -> str | None:
    """Write Lightning's ``ModelSummary`` of ``pl_module`` to ``path`` (a text file).

    Returns:
        The path written, or ``None`` when the summary cannot be computed (it must never fail a fit).
    """
    try:
        from lightning.pytorch.utilities.model_summary import ModelSummary

        text = str(ModelSummary(pl_module, max_depth=max_depth))
    except Exception:
        return None
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n", encoding="utf-8")
    return os.fspath(path)
