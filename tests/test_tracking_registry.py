"""Tracker registry: third-party trackers from specs, defaults, errors; the package imports nothing heavy."""

from __future__ import annotations

import subprocess
import sys

import pytest

from lightning_expman import Level
from lightning_expman.errors import ConfigError
from lightning_expman.tracking import (
    Tracker,
    TrackerManager,
    TrackScope,
    build_tracker,
    register_tracker,
    registry,
)
from lightning_expman.tracking.log import LogTracker


class ListTracker(Tracker):
    """A third-party tracker: records events in a list."""

    def __init__(self, prefix: str = "", workspace=None) -> None:
        self.prefix = prefix
        self.workspace = workspace
        self.events: list[tuple] = []

    def on_start(self, level, **kwargs):
        self.events.append(("start", level))

    def on_end(self, level, **kwargs):
        self.events.append(("end", level, kwargs["status"].value))

    def track(self, metric, value, step=None, **kwargs):
        self.events.append((self.prefix + metric, value, kwargs.get("per_label")))


class NoWorkspace(Tracker):
    def __init__(self, verbose: bool = False) -> None:
        self.verbose = verbose


@pytest.fixture
def clean_registry():
    saved = dict(registry._REGISTRY)
    yield
    registry._REGISTRY.clear()
    registry._REGISTRY.update(saved)


def test_third_party_tracker_from_a_spec(clean_registry, tmp_path):
    register_tracker("List", ListTracker)
    register_tracker("no_ws", f"{__name__}:NoWorkspace")  # a lazy "module:Class" string
    manager = TrackerManager.from_config(
        [{"type": "list", "prefix": "x."}, {"type": "no_ws", "verbose": True}], workspace=tmp_path
    )
    first, second = manager.trackers
    assert isinstance(first, ListTracker) and first.workspace == tmp_path  # default passed: accepted
    assert isinstance(second, NoWorkspace) and second.verbose  # default withheld: not accepted
    with TrackScope(manager, Level.TRIAL_RUN):
        manager.track("acc", {"cat": 1.0, "dog": 0.5})
    assert first.events == [
        ("start", Level.TRIAL_RUN),
        ("x.acc", 0.75, {"cat": 1.0, "dog": 0.5}),
        ("end", Level.TRIAL_RUN, "COMPLETED"),
    ]
    assert "list" in registry.registered_trackers()


def test_instances_pass_through_and_spec_keys_win_over_defaults(tmp_path):
    tracker = ListTracker()
    assert build_tracker(tracker, workspace=tmp_path) is tracker
    built = build_tracker({"type": "log", "workspace": tmp_path / "own"}, workspace=tmp_path)
    assert isinstance(built, LogTracker) and built.workspace == tmp_path / "own"


def test_unknown_type_names_the_closest_and_the_valid_ones():
    with pytest.raises(ConfigError) as info:
        build_tracker({"type": "mlfow", "tracking_uri": "sqlite:///x.db"})
    message = str(info.value)
    assert "'mlfow'" in message and "did you mean 'mlflow'" in message
    assert "valid types: db, log, mlflow, system, tensorboard" in message and "\n" not in message
    with pytest.raises(ConfigError) as info:
        build_tracker({"type": "wandb"})
    assert "did you mean" not in str(info.value)  # 'db' is not close to 'wandb'


def test_bad_specs():
    with pytest.raises(
        ConfigError, match=r"tracker 'db' does not accept parameter 'uri'.*valid parameters:.*url"
    ):
        build_tracker({"type": "db", "uri": "sqlite:///x.db"})
    with pytest.raises(ConfigError, match="has no 'type'"):
        build_tracker({"url": "sqlite:///x.db"})
    with pytest.raises(ConfigError, match="must be a mapping"):
        build_tracker(["db"])  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="module:Class"):
        register_tracker("bad", "no_colon_here")
    with pytest.raises(ConfigError, match="must be callable"):
        register_tracker("bad", 42)  # type: ignore[arg-type]


def test_broken_lazy_factory(clean_registry):
    register_tracker("ghost", "lightning_expman.does_not_exist:Ghost")
    with pytest.raises(
        ConfigError, match=r"tracker type 'ghost'.*cannot import module 'lightning_expman\.does_not"
    ):
        build_tracker({"type": "ghost"})
    register_tracker("notatracker", "builtins:dict")
    with pytest.raises(ConfigError, match="built a dict, not a Tracker"):
        build_tracker({"type": "notatracker"})


def test_importing_tracking_is_light():
    code = (
        "import sys, lightning_expman.tracking as t\n"
        "import lightning_expman.tracking.db, lightning_expman.tracking.mlflow\n"
        "import lightning_expman.tracking.log, lightning_expman.tracking.tensorboard\n"
        "heavy = [m for m in ('mlflow', 'torch', 'lightning', 'tensorboard') if m in sys.modules]\n"
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
