"""Searches run for real: Optuna studies in the experiment database, tiny Lightning fits, the
budget counted exactly across workers and processes on every backend, pruning, resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

optuna = pytest.importorskip("optuna")

from lightning_expman import Experiment, RunStatus  # noqa: E402
from lightning_expman.search.planner import optuna_url  # noqa: E402
from tests.experiment_support import write_config  # noqa: E402

REPO = Path(__file__).resolve().parents[1]

GUIDE_SETTINGS = {
    "seed": 7,
    "training": {"epochs": 2, "batch_size": 32, "learning_rate": 0.001},
    "model": {
        "class_path": "tests.tiny.TinyClassifier",
        "init_args": {"hidden": 4, "lr": "${training.learning_rate}"},
    },
    "data": {
        "class_path": "tests.tiny.TinyDataModule",
        "init_args": {"n": 32, "batch_size": "${training.batch_size}"},
    },
    "trainer": {"max_epochs": "${training.epochs}", "log_every_n_steps": 1},
}
# The guide's block, as written.
GUIDE_HPO = {
    "param_space": {"learning_rate": [0.0001, 0.001, 0.01], "batch_size": [16, 32, 64]},
    "num_trials": 10,
}


def _use_db(cfg: Path, url: str) -> None:
    env = yaml.safe_load((cfg / "env.yaml").read_text())
    env["trackers"] = [{"type": "db", "url": url}]
    (cfg / "env.yaml").write_text(yaml.safe_dump(env))


def _study(url: str, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=optuna_url(url))


def _runs(url: str) -> list[dict]:
    from lightning_expman.db import DatabaseManager
    from lightning_expman.db import models as m

    manager = DatabaseManager(url)
    try:
        with manager.database.bind_ctx(m.ALL_MODELS):
            q = (
                m.TrialRun.select(m.TrialRun, m.Trial, m.Experiment)
                .join(m.Trial)
                .join(m.Experiment)
                .order_by(m.TrialRun.id)
            )
            return [
                {
                    "id": r.id,
                    "trial": r.trial.name,
                    "experiment": r.trial.experiment.title,
                    "repeat_idx": r.repeat_idx,
                    "status": r.status,
                    "epochs": m.Epoch.select().where(m.Epoch.trial_run == r.id).count(),
                }
                for r in q
            ]
    finally:
        manager.close()


def _search_trials(num_trials: int, repeat: int = 1, **extra) -> list[dict]:
    block = {
        "num_trials": num_trials,
        "sampler": "random",
        "space": {"model.init_args.lr": {"low": 0.01, "high": 0.5, "log": True}},
    }
    block.update(extra)
    return [{"name": "s", "repeat": repeat, "search": block}]


def test_guide_hpo_config_runs_as_written_and_optuna_holds_the_repeats_mean(tmp_path: Path) -> None:
    hpo = {**GUIDE_HPO, "num_trials": 3}  # the guide's 10, cut to keep the test short
    cfg = write_config(tmp_path, [{"name": "guide", "repeat": 2, "hpo": hpo}], settings=GUIDE_SETTINGS)
    url = f"sqlite:///{tmp_path / 'expman.db'}"
    summary = Experiment.create(cfg).run()
    assert summary.exit_code == 0
    assert [r.trial for r in summary.results] == [
        "guide-t000",
        "guide-t000",
        "guide-t001",
        "guide-t001",
        "guide-t002",
        "guide-t002",
    ]
    study = _study(url, "exp/guide")
    assert len(study.trials) == 3 and all(t.state.name == "COMPLETE" for t in study.trials)
    from lightning_expman.query import Query

    q = Query(url)
    for t in study.trials:
        assert set(t.params) == {"training.learning_rate", "training.batch_size"}
        run_ids = [r.run_id for r in summary.results if r.trial == f"guide-t{t.number:03d}"]
        hist = q.history(run_ids, "val_loss").rows
        best = [min(h["value"] for h in hist if h["run_id"] == rid) for rid in run_ids]
        assert t.value == pytest.approx(sum(best) / 2)
        # the sampled values are the runs' settings (and the interpolations follow them)
        run_cfg = yaml.safe_load(
            (tmp_path / "ws/exp/trials" / f"guide-t{t.number:03d}/run_2/config.yaml").read_text()
        )
        assert run_cfg["training"]["learning_rate"] == t.params["training.learning_rate"]
        assert run_cfg["model"]["init_args"]["lr"] == t.params["training.learning_rate"]
        assert run_cfg["data"]["init_args"]["batch_size"] == t.params["training.batch_size"]
        assert run_cfg["seed"] == 8
    trial0 = next(r for r in summary.results if r.trial == "guide-t000")
    assert trial0.params == study.trials[0].params


def test_second_run_resumes_the_study_untouched(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, _search_trials(2))
    url = f"sqlite:///{tmp_path / 'expman.db'}"
    Experiment.create(cfg).run()
    before = [(t.number, t.value) for t in _study(url, "exp/s").trials]
    summary = Experiment.create(cfg).run()
    assert summary.results == [] and summary.exit_code == 0
    assert [(t.number, t.value) for t in _study(url, "exp/s").trials] == before
    assert len(_runs(url)) == 2


def test_pruned_runs_are_pruned_with_their_epochs(tmp_path: Path) -> None:
    settings = {
        "seed": 3,
        "model": {"class_path": "tests.tiny.TinyClassifier", "init_args": {"hidden": 4, "lr": 0.1}},
        "data": {"class_path": "tests.tiny.TinyDataModule", "init_args": {"n": 32, "batch_size": 16}},
        "trainer": {"max_epochs": 4, "log_every_n_steps": 1},
    }
    trials = [
        {
            "name": "p",
            "repeat": 2,
            "search": {
                "num_trials": 4,
                "sampler": "grid",
                "pruner": {"type": "median", "n_startup_trials": 1, "n_warmup_steps": 0},
                "space": {"model.init_args.lr": [0.5, 0.0], "model.init_args.hidden": [4, 6]},
            },
        }
    ]
    cfg = write_config(tmp_path, trials, settings=settings)
    url = f"sqlite:///{tmp_path / 'expman.db'}"
    summary = Experiment.create(cfg).run()
    study = _study(url, "exp/p")
    pruned = [t for t in study.trials if t.state.name == "PRUNED"]
    assert pruned, [(t.params, t.state) for t in study.trials]
    runs = _runs(url)
    for t in pruned:
        mine = [r for r in runs if r["trial"] == f"p-t{t.number:03d}"]
        assert [r["repeat_idx"] for r in mine] == [1]  # repeat 2 of a pruned trial is not run
        assert mine[0]["status"] == RunStatus.PRUNED.value
        assert 1 <= mine[0]["epochs"] < 4  # stopped early, its epochs kept
        assert t.params["model.init_args.lr"] == 0.0
    assert summary.exit_code == 0
    assert summary.count(RunStatus.PRUNED) == len(pruned)


def _expman(cfg: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-m", "lightning_expman.cli", "run", str(cfg), *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.mark.slow
def test_num_trials_exact_in_process_with_two_workers_and_two_processes(db_url: str, tmp_path: Path) -> None:
    """One process (workers=1), then two `expman run` processes at once on one study, one of them
    with --workers 2: three planners race for the last slots; the study ends with exactly
    num_trials trials, every TRIAL ran once."""
    alone = write_config(tmp_path / "alone", _search_trials(2), name="alone")
    _use_db(alone, db_url)
    assert Experiment.create(alone).run(workers=1).exit_code == 0
    cfg = write_config(tmp_path, _search_trials(6))
    _use_db(cfg, db_url)
    procs = [_expman(cfg, "--workers", "2"), _expman(cfg)]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    for name, n in (("alone/s", 2), ("exp/s", 6)):
        trials = _study(db_url, name).trials
        assert sum(t.state.name == "COMPLETE" for t in trials) == n, [(t.number, t.state) for t in trials]
        over = [t for t in trials if t.state.name != "COMPLETE"]
        assert all(t.user_attrs.get("expman_over_budget") for t in over)
    runs = _runs(db_url)
    assert len(runs) == 8 and len({(r["experiment"], r["trial"]) for r in runs}) == 8
    assert all(r["status"] == "COMPLETED" for r in runs)


@pytest.mark.slow
def test_kill_and_resume_reaches_exactly_num_trials(tmp_path: Path) -> None:
    settings = {
        "seed": 1,
        "model": {"class_path": "tests.tiny.TinyClassifier", "init_args": {"hidden": 8, "lr": 0.1}},
        "data": {"class_path": "tests.tiny.TinyDataModule", "init_args": {"n": 256, "batch_size": 8}},
        "trainer": {"max_epochs": 6, "log_every_n_steps": 1},
    }
    cfg = write_config(tmp_path, _search_trials(4), settings=settings)
    url = f"sqlite:///{tmp_path / 'expman.db'}"
    proc = _expman(cfg, "--stale-after", "2")
    deadline = time.monotonic() + 240
    done: list = []
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.3)
        try:
            trials = _study(url, "exp/s").trials
        except Exception:
            continue
        done = [t for t in trials if t.state.name == "COMPLETE"]
        names = {f"s-t{t.number:03d}" for t in trials if t.state.name == "RUNNING"}
        if done and any(r["status"] == "RUNNING" and r["trial"] in names for r in _runs(url)):
            break  # a trial's fit is under way
    assert proc.poll() is None and done, "the first run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished = {t.number: t.value for t in _study(url, "exp/s").trials if t.state.name == "COMPLETE"}
    time.sleep(3)  # past Optuna's grace period (2 s with --stale-after 2)
    rerun = _expman(cfg, "--stale-after", "2")
    out = rerun.communicate(timeout=300)[0]
    assert rerun.returncode == 0, out
    trials = _study(url, "exp/s").trials
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    assert len(complete) == 4
    assert {t.number: t.value for t in complete if t.number in finished} == finished  # untouched
    stale = [t for t in trials if t.state.name == "FAIL"]
    assert stale and not any(t.user_attrs.get("expman_counted") for t in stale)
    runs = _runs(url)
    assert sum(r["status"] == "COMPLETED" for r in runs) == 4
    assert {r["status"] for r in runs} <= {"COMPLETED", "LOST"}


def test_bad_sampler_option_refused_before_anything_is_written(tmp_path: Path) -> None:
    from lightning_expman.errors import ConfigError

    cfg = write_config(tmp_path, _search_trials(2, sampler={"type": "tpe", "n_startup": 3}))
    with pytest.raises(
        ConfigError, match=r"sampler tpe has no option 'n_startup'.*did you mean 'n_startup_trials'"
    ):
        Experiment.create(cfg).run()
    assert not (tmp_path / "expman.db").exists() and not (tmp_path / "ws").exists()


def test_failing_trials_count_towards_the_budget(tmp_path: Path) -> None:
    settings = {
        "seed": 0,
        "model": {
            "class_path": "tests.tiny.TinyClassifier",
            "init_args": {"hidden": 4, "lr": 0.1, "fail_at_step": 0},
        },
        "data": {"class_path": "tests.tiny.TinyDataModule", "init_args": {"n": 32, "batch_size": 16}},
        "trainer": {"max_epochs": 1},
    }
    cfg = write_config(tmp_path, _search_trials(2, repeat=2), settings=settings)
    url = f"sqlite:///{tmp_path / 'expman.db'}"
    summary = Experiment.create(cfg).run()
    assert summary.exit_code == 1
    trials = _study(url, "exp/s").trials
    assert len(trials) == 2 and all(t.state.name == "FAIL" and t.user_attrs["expman_counted"] for t in trials)
    assert [r["status"] for r in _runs(url)] == ["FAILED", "FAILED"]  # repeat 2 of a failed trial is not run


def test_several_metrics_with_nsga2(tmp_path: Path) -> None:
    cfg = write_config(
        tmp_path,
        _search_trials(
            2, repeat=2, sampler="nsga2", metric=["val_loss", "val_acc"], direction=["min", "max"]
        ),
    )
    url = f"sqlite:///{tmp_path / 'expman.db'}"
    assert Experiment.create(cfg).run().exit_code == 0
    study = _study(url, "exp/s")
    assert [d.name for d in study.directions] == ["MINIMIZE", "MAXIMIZE"]
    for t in study.trials:
        per_repeat = t.user_attrs["expman_repeat_values"]
        assert len(per_repeat) == 2
        assert t.values == pytest.approx([sum(v[i] for v in per_repeat) / 2 for i in range(2)])


@pytest.mark.slow
def test_mlflow_shows_the_search_trials_and_their_repeats(tmp_path: Path) -> None:
    mlflow = pytest.importorskip("mlflow")
    cfg = write_config(tmp_path, _search_trials(2, repeat=2))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = yaml.safe_load((cfg / "env.yaml").read_text())
    env["trackers"].append({"type": "mlflow", "tracking_uri": uri})
    (cfg / "env.yaml").write_text(yaml.safe_dump(env))
    assert Experiment.create(cfg).run().exit_code == 0
    client = mlflow.MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("exp").experiment_id])
    parents = {r.info.run_id: r for r in runs if "mlflow.parentRunId" not in r.data.tags}
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert sorted(p.data.tags["expman.trial"] for p in parents.values()) == ["s-t000", "s-t001"]
    assert len(children) == 4 and {c.data.tags["mlflow.parentRunId"] for c in children} == set(parents)


KILL_AFTER_ASK = """
import os, signal, sys
sys.path.insert(0, {repo!r})
from lightning_expman import Experiment
from lightning_expman.search.execute import _db_url
from lightning_expman.search.planner import Planner

spec = Experiment.create({cfg!r}).spec
template, search = spec.searches[0]
planner = Planner(spec, template, search, _db_url(spec), 2.0)
planner.study.ask(planner.distributions)  # Optuna's ask, then killed before the first heartbeat
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_process_killed_between_ask_and_its_first_heartbeat_is_replaced(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, _search_trials(3))
    url = f"sqlite:///{tmp_path / 'expman.db'}"
    code = KILL_AFTER_ASK.format(repo=str(REPO), cfg=str(cfg))
    killed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    (orphan,) = _study(url, "exp/s").trials
    assert orphan.state.name == "RUNNING"
    time.sleep(2.5)  # past the grace period (2 s with stale_after 2)
    assert Experiment.create(cfg).run(stale_after=2).exit_code == 0
    trials = _study(url, "exp/s").trials
    assert [t.state.name for t in trials if t.number != orphan.number].count("COMPLETE") == 3
    assert trials[orphan.number].state.name == "FAIL" and not trials[orphan.number].user_attrs
    assert len(_runs(url)) == 3
