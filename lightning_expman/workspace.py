"""The workspace: one folder per experiment, trial and run, with per-level log files.

Layout (``<workspace>`` is env.yaml's ``workspace``)::

    <workspace>/
      <experiment>/                  level EXPERIMENT
        configs/  logs/experiment.log  artifacts/
        trials/
          <trial>/                   level TRIAL
            configs/  logs/trial.log  artifacts/
            run_1/                   level TRIAL_RUN
              logs/run.log  artifacts/  config.yaml (save_config writes in the run folder itself)

Names become folder names through :func:`safe_name`, so nothing can escape the workspace.

Example:
    >>> from lightning_expman.config import load
    >>> from lightning_expman.workspace import Environment
    >>> spec = load("configs/digits")                              # doctest: +SKIP
    >>> env = Environment.from_config(spec.env)                    # doctest: +SKIP
    >>> with env.create_child(spec.name) as exp_env:               # doctest: +SKIP
    ...     exp_env.save_config(spec.to_container())
    ...     trial_env = exp_env.create_child(spec.trials[0].name)
    ...     run_env = trial_env.create_child("run_1")
    ...     run_env.logger.info("training")
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config._util import to_plain
from .enums import Level
from .logfiles import LOG_FILES, close_logger, open_logger
from .masking import mask_secrets

if TYPE_CHECKING:
    from .tracking.base import TrackerManager

__all__ = ["LOG_FILES", "Environment", "safe_name", "with_default_db"]

_UNSAFE = re.compile(r"[^A-Za-z0-9._,+=@-]+")
_MAX_NAME = 120
_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10))}


def safe_name(name: Any) -> str:
    """The folder name for an experiment/trial/run name.

    Rule: a name made only of letters, digits and ``. _ , + = @ -`` that does not start with
    ``.``, is at most 120 characters and is not a Windows device name (``con``, ``nul``...) is
    used as is. Any other name (``../x``, ``/abs``, ``a/b``, ``""``, spaces, unicode) has each
    run of other characters replaced by ``_``, leading dots/underscores stripped, is cut to 120
    characters, and gets ``-`` plus the first 8 hex digits of the SHA-1 of the original name
    appended, so two different names never share a folder silently (``a/b`` and ``a_b`` differ).
    An empty result becomes ``unnamed-<hash>``.

    Example:
        >>> safe_name("mlp-lr=0.1-hidden=32")
        'mlp-lr=0.1-hidden=32'
        >>> safe_name("../etc")  # doctest: +ELLIPSIS
        'etc-...'
    """
    text = str(name)
    if (
        text
        and len(text) <= _MAX_NAME
        and not _UNSAFE.search(text)
        and not text.startswith(".")
        and text.split(".")[0].lower() not in _RESERVED
    ):
        return text
    digest = hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    cleaned = _UNSAFE.sub("_", text).lstrip("._-")[:_MAX_NAME].rstrip(".")
    return f"{cleaned or 'unnamed'}-{digest}"


def with_default_db(trackers: Any, workspace: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Tracker specs completed as :func:`lightning_expman.config.load` completes env.yaml's: a
    ``{type: db}`` tracker at ``sqlite:///<workspace>/expman.db`` unless one is listed, and that URL
    for a listed ``db`` tracker without ``url``."""
    default_url = "sqlite:///" + os.path.join(os.path.abspath(workspace), "expman.db")
    specs = [dict(t) for t in (to_plain(trackers) or [])]
    dbs = [t for t in specs if str(t.get("type", "")).strip().lower() == "db"]
    if not dbs:
        specs.append({"type": "db", "url": default_url})
    for t in dbs:
        t["url"] = t.get("url") or default_url
    return specs


def _child_level(level: Level | None) -> Level:
    if level is None:
        return Level.EXPERIMENT
    if level is Level.EXPERIMENT:
        return Level.TRIAL
    if level is Level.TRIAL:
        return Level.TRIAL_RUN
    raise ValueError(f"a {level.name} environment has no child environments (runs are the innermost folders)")


class Environment:
    """Directories, log file and trackers of one level of the hierarchy.

    The root environment (``level is None``) is the workspace itself; :meth:`create_child`
    makes the EXPERIMENT, then TRIAL, then TRIAL_RUN environments below it, creating their
    folders. Log files are opened on the first use of :attr:`logger` (``create_child`` logs one
    line, so every level's log file exists once the child is created); call :meth:`close` (or
    use the environment as a context manager) to release them.

    Attributes:
        name: the name given (not sanitised); the folder is ``safe_name(name)``.
        level: None for the workspace root, else EXPERIMENT / TRIAL / TRIAL_RUN.
        workdir: this level's folder.
        config_dir: ``workdir/configs`` (the run folder itself for TRIAL_RUN).
        log_dir: ``workdir/logs``.
        artifact_dir: ``workdir/artifacts``.
        workspace: the root workspace folder.
        verbose: log to the console (stderr) as well.
        debug: log DEBUG lines (INFO otherwise).
        config: the env config this root was built from (a plain dict), shared by children.
        parent: the parent environment, None for the root.
    """

    def __init__(
        self,
        workdir: str | os.PathLike[str] | None = None,
        *,
        workspace: str | os.PathLike[str] | None = None,
        name: str | None = None,
        level: Level | None = None,
        verbose: bool | None = None,
        debug: bool | None = None,
        config: Any = None,
        parent: Environment | None = None,
        tracker_manager: TrackerManager | None = None,
        create: bool = True,
    ) -> None:
        data: dict[str, Any] = dict(to_plain(config) or {})
        if workdir is None:
            # The seed's ``Environment(workspace="outputs", config=env_config)``.
            workdir = workspace if workspace is not None else data.get("workspace")
            if workdir is None:
                raise TypeError("Environment needs a folder: Environment(workspace='outputs') or workdir")
        elif workspace is not None:
            raise TypeError("Environment: give workdir or workspace=, not both")
        self.workdir = Path(os.path.abspath(os.path.expanduser(os.fspath(workdir))))
        self.name = name if name is not None else self.workdir.name
        self.level = level
        # Flags not given explicitly come from the config (env.yaml's keys), as from_config reads them.
        self.verbose = bool(data.get("verbose", False)) if verbose is None else verbose
        self.debug = bool(data.get("debug", False)) if debug is None else debug
        self.config: dict[str, Any] = data
        self.parent = parent
        self.workspace: Path = parent.workspace if parent is not None else self.workdir
        self._tracker_manager = tracker_manager
        self._logger: logging.Logger | None = None
        self._release: weakref.finalize | None = None
        self.config_dir = self.workdir if level is Level.TRIAL_RUN else self.workdir / "configs"
        self.log_dir = self.workdir / "logs"
        self.artifact_dir = self.workdir / "artifacts"
        if create:
            self.workdir.mkdir(parents=True, exist_ok=True)
            if level is not None:
                for d in (self.config_dir, self.log_dir, self.artifact_dir):
                    d.mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_config(cls, config: Any, *, create: bool = True) -> Environment:
        """The root environment of ``spec.env`` (or any mapping with the env.yaml keys).

        Args:
            config: a ``DictConfig`` or mapping with ``workspace`` (relative paths are resolved
                against the current directory), ``verbose``, ``debug`` and ``trackers``.
                The ``trackers`` it lists are built on the first use of :attr:`tracker_manager`
                (unless one is set first, as the experiment runner does).
            create: create the workspace folder now.

        Example:
            >>> env = Environment.from_config({"workspace": "outputs", "verbose": True})  # doctest: +SKIP
        """
        data = to_plain(config)
        workspace = data.get("workspace") or "outputs"
        return cls(
            str(workspace),
            name=None,
            level=None,
            verbose=bool(data.get("verbose", False)),
            debug=bool(data.get("debug", False)),
            config=data,
            create=create,
        )

    def create_child(self, name: str) -> Environment:
        """Create the environment one level down and its folders.

        Root -> ``<workspace>/<name>`` (EXPERIMENT); EXPERIMENT -> ``trials/<name>`` (TRIAL);
        TRIAL -> ``<name>`` (TRIAL_RUN, conventionally ``run_<k>``). ``name`` passes through
        :func:`safe_name`. The child inherits verbosity, config and the tracker manager.

        Raises:
            ValueError: called on a TRIAL_RUN environment.
        """
        level = _child_level(self.level)
        folder = safe_name(name)
        workdir = self.workdir / "trials" / folder if level is Level.TRIAL else self.workdir / folder
        # safe_name already rules out separators and dot names; this guards the invariant.
        if os.path.commonpath([os.path.abspath(workdir), str(self.workspace)]) != str(self.workspace):
            raise ValueError(f"name {name!r} would leave the workspace {self.workspace}")
        child = Environment(
            workdir,
            name=str(name),
            level=level,
            verbose=self.verbose,
            debug=self.debug,
            config=self.config,
            parent=self,
        )
        child.logger.info("%s %r in %s", level.name, str(name), child.workdir)
        return child

    # ------------------------------------------------------------------ trackers

    @property
    def tracker_manager(self) -> TrackerManager | None:
        """This environment's tracker manager; a child without its own uses its parent's.

        A root environment whose config has a ``trackers`` key (env.yaml's, or the seed's
        ``Environment.from_config(env_config)``) builds them on first use, with this workspace as
        their default folder and, as env.yaml does, a ``db`` tracker at ``<workspace>/expman.db``
        unless one is listed; without the key it has none (``None``).
        """
        if self._tracker_manager is not None:
            return self._tracker_manager
        if self.parent is not None:
            return self.parent.tracker_manager
        if "trackers" in self.config:
            from .tracking.base import TrackerManager

            specs = with_default_db(self.config.get("trackers"), self.workdir)
            self._tracker_manager = TrackerManager.from_config(specs, workspace=str(self.workdir))
        return self._tracker_manager

    @tracker_manager.setter
    def tracker_manager(self, manager: TrackerManager | None) -> None:
        self._tracker_manager = manager

    def setup_environment(self) -> Environment:
        """Create this environment's folders (the seed's call after ``Environment(...)``); idempotent.

        The root gets ``configs/``, ``logs/`` and ``artifacts/`` beside the experiments, as in the
        seed; returns ``self``.
        """
        self.workdir.mkdir(parents=True, exist_ok=True)
        for d in (self.config_dir, self.log_dir, self.artifact_dir):
            d.mkdir(parents=True, exist_ok=True)
        return self

    # ------------------------------------------------------------------ logging

    @property
    def log_file(self) -> Path | None:
        """``log_dir/experiment.log`` / ``trial.log`` / ``run.log``; None for the root."""
        return self.log_dir / LOG_FILES[self.level] if self.level is not None else None

    @property
    def logger(self) -> logging.Logger:
        """A logger writing to :attr:`log_file` (and to stderr when ``verbose``).

        Made by :func:`lightning_expman.logfiles.open_logger`: it shares the file's one handler with
        the ``log`` tracker, so their lines are in order and in one format. It does not propagate to
        the root logger, so a run's lines are not repeated in the trial's log. The root environment
        logs to the console only (when verbose). An environment dropped without :meth:`close`
        releases its file when it is garbage collected.
        """
        if self._logger is None:
            label = "workspace" if self.level is None else self.name
            if self.level is Level.TRIAL_RUN and self.parent is not None:
                label = f"{self.parent.name}/{self.name}"
            self._logger = open_logger(
                label,
                self.log_file,
                level=logging.DEBUG if self.debug else logging.INFO,
                console=self.verbose,
            )
            self._release = weakref.finalize(self, close_logger, self._logger)
        return self._logger

    def close(self) -> None:
        """Flush and release this environment's log handlers (the logger reopens on next use)."""
        if self._release is not None:
            self._release()  # close_logger, once
        self._release = None
        self._logger = None

    def __enter__(self) -> Environment:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ files

    def save_config(self, config: Any, name: str = "config.yaml") -> Path:
        """Write ``config`` as YAML into :attr:`config_dir`, resolved, secrets masked, atomically.

        Args:
            config: a ``DictConfig``/``ListConfig``, a mapping, or an object with
                ``to_container()`` (``ExperimentSpec``, ``TrialSpec``).
            name: a plain file name (no folders).

        Returns:
            The written file.

        Raises:
            ValueError: ``name`` contains a path separator or is a dot name.
        """
        if (
            not name
            or name in (".", "..")
            or os.sep in name
            or "/" in name
            or (os.altsep and os.altsep in name)
        ):
            raise ValueError(f"config file name must be a plain file name, got {name!r}")
        from .config._yaml import dump_yaml

        data = mask_secrets(to_plain(config))
        self.config_dir.mkdir(parents=True, exist_ok=True)
        target = self.config_dir / name
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=self.config_dir)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                dump_yaml(data, f)
            os.replace(tmp, target)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        return target

    # ------------------------------------------------------------------ pickling (worker processes)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_logger"] = None
        state["_release"] = None
        return state

    def __repr__(self) -> str:
        level = self.level.name if self.level is not None else "WORKSPACE"
        return f"Environment({level}, name={self.name!r}, workdir={str(self.workdir)!r})"
