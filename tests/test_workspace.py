"""Environment: the workspace tree, per-level log files, saved configs, name sanitising."""

from __future__ import annotations

import gc
import logging
import os
import pickle

import pytest
import yaml

from lightning_expman.config import load
from lightning_expman.enums import Level
from lightning_expman.tracking.base import TrackerManager
from lightning_expman.workspace import Environment, safe_name
from tests.bad_config_cases import write_config


@pytest.fixture
def root(tmp_path):
    env = Environment.from_config({"workspace": str(tmp_path / "ws"), "verbose": False})
    yield env
    env.close()


def _tree(path):
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


def test_tree_for_spec(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = load(write_config(tmp_path / "cfg", {"env.yaml": "workspace: runs\n"}))
    env = Environment.from_config(spec.env)
    assert env.workdir == tmp_path / "runs" and env.level is None
    envs = []
    with env.create_child(spec.name) as exp_env:
        exp_env.save_config(spec)
        for trial in spec.trials:
            trial_env = exp_env.create_child(trial.name)
            trial_env.save_config(trial.settings)
            envs.append(trial_env)
            for run in trial.runs():
                run_env = trial_env.create_child(run.name)
                run_env.save_config({"seed": run.seed, **trial.to_container()})
                run_env.logger.info("seed %d", run.seed)
                run_env.close()
    for e in envs:
        e.close()
    assert _tree(tmp_path / "runs") == [
        "corpus",
        "corpus/artifacts",
        "corpus/configs",
        "corpus/configs/config.yaml",
        "corpus/logs",
        "corpus/logs/experiment.log",
        "corpus/trials",
        "corpus/trials/a",
        "corpus/trials/a/artifacts",
        "corpus/trials/a/configs",
        "corpus/trials/a/configs/config.yaml",
        "corpus/trials/a/logs",
        "corpus/trials/a/logs/trial.log",
        "corpus/trials/a/run_1",
        "corpus/trials/a/run_1/artifacts",
        "corpus/trials/a/run_1/config.yaml",
        "corpus/trials/a/run_1/logs",
        "corpus/trials/a/run_1/logs/run.log",
        "corpus/trials/a/run_2",
        "corpus/trials/a/run_2/artifacts",
        "corpus/trials/a/run_2/config.yaml",
        "corpus/trials/a/run_2/logs",
        "corpus/trials/a/run_2/logs/run.log",
        "corpus/trials/b",
        "corpus/trials/b/artifacts",
        "corpus/trials/b/configs",
        "corpus/trials/b/configs/config.yaml",
        "corpus/trials/b/logs",
        "corpus/trials/b/logs/trial.log",
        "corpus/trials/b/run_1",
        "corpus/trials/b/run_1/artifacts",
        "corpus/trials/b/run_1/config.yaml",
        "corpus/trials/b/run_1/logs",
        "corpus/trials/b/run_1/logs/run.log",
    ]
    run_log = (tmp_path / "runs/corpus/trials/a/run_2/logs/run.log").read_text()
    assert "seed 2" in run_log and "seed 1" not in run_log  # loggers do not propagate
    saved = yaml.safe_load((tmp_path / "runs/corpus/trials/b/configs/config.yaml").read_text())
    assert saved["model"]["init_args"] == {"hidden": 8, "lr": 0.1}
    saved_exp = yaml.safe_load((tmp_path / "runs/corpus/configs/config.yaml").read_text())
    assert saved_exp["name"] == "corpus" and len(saved_exp["trials"]) == 2


def test_levels_and_dirs(root):
    exp = root.create_child("exp")
    trial = exp.create_child("t1")
    run = trial.create_child("run_1")
    assert [e.level for e in (exp, trial, run)] == [Level.EXPERIMENT, Level.TRIAL, Level.TRIAL_RUN]
    assert trial.workdir == exp.workdir / "trials" / "t1"
    assert (trial.config_dir, trial.log_dir, trial.artifact_dir) == (
        trial.workdir / "configs",
        trial.workdir / "logs",
        trial.workdir / "artifacts",
    )
    assert run.config_dir == run.workdir
    assert [e.log_file.name for e in (exp, trial, run)] == ["experiment.log", "trial.log", "run.log"]
    assert run.workspace == root.workdir
    with pytest.raises(ValueError, match="TRIAL_RUN environment has no child"):
        run.create_child("deeper")
    for e in (exp, trial, run):
        e.close()


def test_logger_files_console_and_close(tmp_path, capfd):
    env = Environment.from_config({"workspace": str(tmp_path), "verbose": True, "debug": True})
    exp = env.create_child("exp")
    exp.logger.debug("debug line")
    exp.close()
    exp.logger.info("after reopen")
    exp.close()
    text = (exp.log_dir / "experiment.log").read_text()
    assert "debug line" in text and "after reopen" in text
    assert "debug line" in capfd.readouterr().err
    quiet = Environment.from_config({"workspace": str(tmp_path), "verbose": False}).create_child("q")
    quiet.logger.debug("hidden")
    quiet.logger.info("shown")
    quiet.close()
    text = (quiet.log_dir / "experiment.log").read_text()
    assert "shown" in text and "hidden" not in text
    assert "shown" not in capfd.readouterr().err


def test_close_releases_handlers(root):
    exp = root.create_child("exp")
    logger = exp.logger
    assert any(isinstance(h, logging.FileHandler) for h in logger.handlers)
    exp.close()
    assert not logger.handlers


def test_save_config_masks_and_is_atomic(root):
    exp = root.create_child("exp")
    path = exp.save_config(
        {"db": {"url": "mysql://me:s3cret@host/db", "password": "s3cret"}, "lr": 0.1}, name="resolved.yaml"
    )
    assert path == exp.config_dir / "resolved.yaml"
    text = path.read_text()
    assert "s3cret" not in text
    assert yaml.safe_load(text) == {"db": {"url": "mysql://me:***@host/db", "password": "***"}, "lr": 0.1}
    assert sorted(p.name for p in exp.config_dir.iterdir()) == ["resolved.yaml"]  # no temp file left
    with pytest.raises(ValueError, match="plain file name"):
        exp.save_config({}, name="../escape.yaml")
    exp.close()


def test_save_config_resolves_dictconfig(root):
    from omegaconf import OmegaConf

    exp = root.create_child("exp")
    path = exp.save_config(OmegaConf.create({"a": 2, "b": "${a}"}))
    assert yaml.safe_load(path.read_text()) == {"a": 2, "b": 2}
    exp.close()


def test_saved_configs_read_back_as_written(root, tmp_path):
    """A string our loader (YAML 1.2 floats) or PyYAML/OmegaConf (YAML 1.1) would take for another
    type is quoted, so a saved config (``configs/`` of a run, ``expman reproduce``) reads back
    as written by either; numbers and order are kept."""
    from omegaconf import OmegaConf

    from lightning_expman.config._yaml import read_yaml

    data = {
        "lr_text": "1e-3",
        "lr": 1e-3,
        "big": 1e20,
        "date": "2024-01-01",
        "flag_text": "yes",
        "none_text": "null",
        "n": None,
        "nested": [1, "a", {"inf": float("inf"), "ok": True}],
        "unicode": "héllo",
    }
    exp = root.create_child("exp")
    path = exp.save_config(data, name="settings.yaml")
    assert read_yaml(path, "settings.yaml") == data
    assert yaml.safe_load(path.read_text()) == data
    assert OmegaConf.to_container(OmegaConf.load(path)) == data
    assert list(yaml.safe_load(path.read_text())) == list(data)
    exp.close()


@pytest.mark.parametrize(
    "name", ["../x", "../../etc", "/abs/path", "a/b", "a\\b", "", ".", "..", ".hidden", "con"]
)
def test_names_cannot_escape(root, name):
    exp = root.create_child(name)
    assert exp.workdir.parent == root.workdir
    assert exp.workdir.name not in ("", ".", "..")
    trial = exp.create_child(name)
    assert trial.workdir.parent == exp.workdir / "trials"
    run = trial.create_child(name)
    assert run.workdir.parent == trial.workdir
    for e in (exp, trial, run):
        e.close()


def test_safe_name_rule():
    assert safe_name("mlp-lr=0.1-hidden=32") == "mlp-lr=0.1-hidden=32"
    assert safe_name("run_1") == "run_1"
    unsafe = ["a/b", "a_b", "a b", "a:b", "../a_b", ""]
    mapped = [safe_name(n) for n in unsafe]
    assert len(set(mapped)) == len(unsafe)  # no silent collision
    assert mapped[1] == "a_b" and mapped[0].startswith("a_b-")
    assert safe_name("../x").startswith("x-")
    assert safe_name("").startswith("unnamed-")
    assert len(safe_name("x" * 500)) <= 130
    assert safe_name("a/b") == safe_name("a/b")  # deterministic


def test_tracker_manager_inherited(root):
    manager = TrackerManager([])
    assert root.tracker_manager is None
    root.tracker_manager = manager
    exp = root.create_child("exp")
    run = exp.create_child("t").create_child("run_1")
    assert exp.tracker_manager is manager and run.tracker_manager is manager
    own = TrackerManager([])
    run.tracker_manager = own
    assert run.tracker_manager is own and exp.tracker_manager is manager


def test_pickle_roundtrip(root):
    run = root.create_child("exp").create_child("t").create_child("run_1")
    run.logger.info("before")
    clone = pickle.loads(pickle.dumps(run))
    assert clone.workdir == run.workdir and clone.level is Level.TRIAL_RUN
    clone.logger.info("from clone")
    clone.close()
    run.close()
    assert "from clone" in (run.log_dir / "run.log").read_text()


def test_seed_constructor_setup_and_trackers_from_the_config(tmp_path):
    """``Environment(workspace=..., config=...)`` (seed 002): flags from the config, folders made by
    ``setup_environment``, trackers built on first use with a db tracker added as for env.yaml."""
    from lightning_expman.tracking.db import DBTracker
    from lightning_expman.tracking.log import LogTracker

    env = Environment(
        workspace=tmp_path / "ws", config={"verbose": False, "debug": True, "trackers": [{"type": "log"}]}
    )
    assert env.workdir == tmp_path / "ws" and env.debug and not env.verbose
    assert not (tmp_path / "ws" / "logs").exists()
    assert env.setup_environment() is env
    assert all((tmp_path / "ws" / d).is_dir() for d in ("configs", "logs", "artifacts"))
    manager = env.tracker_manager
    assert [type(t) for t in manager.trackers] == [LogTracker, DBTracker]
    assert manager.get(DBTracker).url == f"sqlite:///{tmp_path / 'ws' / 'expman.db'}"
    assert env.tracker_manager is manager and env.create_child("exp").tracker_manager is manager
    assert Environment(workspace=tmp_path / "bare").tracker_manager is None  # no trackers key: none
    with pytest.raises(TypeError, match="not both"):
        Environment(tmp_path / "a", workspace=tmp_path / "b")
    with pytest.raises(TypeError, match="needs a folder"):
        Environment()
    env.close()


def _open_files(folder) -> list[str]:
    """The files under ``folder`` this process holds open (Linux: /proc/self/fd)."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(folder)):
            found.append(os.path.relpath(target, folder))
    return sorted(found)


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts open files through /proc")
def test_a_process_running_100_runs_holds_no_file_of_a_finished_run(tmp_path):
    """Each file has one handle shared by the workspace logger and the log tracker, and it is let go
    when its level ends -- also for a run environment dropped without close()."""
    from lightning_expman.tracking import TrackScope
    from lightning_expman.tracking.log import LogTracker

    root = Environment.from_config({"workspace": str(tmp_path)})
    exp = root.create_child("exp")
    trial = exp.create_child("t")
    manager = TrackerManager([LogTracker(workspace=tmp_path)])
    held = ["exp/logs/experiment.log", "exp/trials/t/logs/trial.log"]
    # gc.collect() below scans only what the loop allocates, not the ~10^6 objects the session's
    # imports hold (a full collection each run made this test take over a minute).
    gc.freeze()
    with (
        TrackScope(manager, Level.EXPERIMENT, name="exp", workdir=exp.workdir),
        TrackScope(manager, Level.TRIAL, name="t", workdir=trial.workdir),
    ):
        for i in range(100):
            run = trial.create_child(f"run_{i}")
            with TrackScope(manager, Level.TRIAL_RUN, repeat_idx=i, seed=i, workdir=run.workdir):
                run.logger.info("training")
                assert _open_files(tmp_path) == sorted([*held, f"exp/trials/t/run_{i}/logs/run.log"])
            if i % 2:
                run.close()
            del run  # the even ones are dropped unclosed, as by a caller that crashed
            gc.collect()
            assert _open_files(tmp_path) == held
    gc.unfreeze()
    manager.close()
    for env in (trial, exp, root):
        env.close()
    assert _open_files(tmp_path) == []
    from lightning_expman.logfiles import open_log_files

    assert open_log_files() == []
    assert "training" in (trial.workdir / "run_99" / "logs" / "run.log").read_text()
