"""config.load: files, merge order, interpolation, overrides, seeds, hashes, masking."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import DictConfig

from lightning_expman.config import ExperimentSpec, RunSpec, TrialSpec, load
from lightning_expman.errors import ConfigError
from tests.bad_config_cases import GOOD_FILES, write_config

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "tests" / "data" / "configs" / "tiny"


@pytest.fixture
def cfg(tmp_path, monkeypatch):
    """Write GOOD_FILES updated with ``files`` and return the folder (cwd = tmp_path)."""
    monkeypatch.chdir(tmp_path)
    counter = iter(range(1000))

    def make(files: dict[str, str | None] | None = None) -> Path:
        return write_config(tmp_path / f"cfg{next(counter)}", files or {})

    return make


def test_tiny_folder_loads(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = load(TINY)
    assert isinstance(spec, ExperimentSpec)
    assert (spec.name, spec.id, spec.desc) == ("tiny", 1, "A tiny grid on a synthetic 2-class problem")
    assert spec.tags == {"owner": "tests"}
    assert spec.source_dir == TINY.resolve()
    assert spec.pipeline is None
    assert [t.name for t in spec.trials] == [
        "small",
        "grid-lr=0.1-hidden=8",
        "grid-lr=0.1-hidden=16",
        "grid-lr=0.01-hidden=8",
        "grid-lr=0.01-hidden=16",
    ]
    assert all(isinstance(t, TrialSpec) for t in spec.trials)
    assert all(isinstance(t.settings, DictConfig) for t in spec.trials)
    assert spec.env.workspace == str(tmp_path / "outputs" / "tiny")  # relative to the current directory


def test_merge_order_base_experiment_trial_override(cfg):
    folder = cfg(
        {
            "experiment.yaml": "name: x\nid: 1\nsettings:\n"
            "  trainer: {max_epochs: 5, enable_progress_bar: true}\n",
            "trials.yaml": "- name: a\n  settings:\n    trainer: {max_epochs: 7}\n"
            "    model: {init_args: {lr: 0.5}}\n"
            "- name: b\n",
        }
    )
    spec = load(folder, overrides=["model.init_args.hidden=16"])
    a, b = spec.trials
    # trial beats experiment beats base; mappings merge key by key
    assert a.settings.trainer == {"enable_progress_bar": True, "max_epochs": 7}
    assert b.settings.trainer.max_epochs == 5
    assert a.settings.model.init_args == {"hidden": 16, "lr": 0.5}
    assert b.settings.model.init_args == {"hidden": 16, "lr": 0.1}
    assert a.settings.data.init_args.n == 32  # from base only
    # experiment-level settings: base -> experiment -> overrides
    assert spec.settings.trainer.max_epochs == 5
    assert spec.settings.model.init_args.hidden == 16


def test_override_beats_trial_settings_and_parses_yaml(cfg):
    folder = cfg({"trials.yaml": "- name: a\n  settings:\n    trainer: {max_epochs: 7}\n"})
    spec = load(
        folder,
        overrides=[
            "trainer.max_epochs=2",
            "trainer.limit_train_batches=0.5",
            "trainer.enable_model_summary=false",
            "callbacks[0].patience=9",
            "model.init_args.lr=1e-3",
        ],
    )
    s = spec.trials[0].settings
    assert s.trainer.max_epochs == 2
    assert s.trainer.limit_train_batches == 0.5
    assert s.trainer.enable_model_summary is False
    assert s.callbacks[0].patience == 9
    assert s.model.init_args.lr == 0.001  # YAML 1.2 float, not the string "1e-3"
    assert spec.overrides == (
        "trainer.max_epochs=2",
        "trainer.limit_train_batches=0.5",
        "trainer.enable_model_summary=false",
        "callbacks[0].patience=9",
        "model.init_args.lr=1e-3",
    )


def test_override_new_keys(cfg):
    folder = cfg()
    spec = load(folder, overrides=["+note=hello world", "seed=5", "model.init_args.fail_at_step=3"])
    s = spec.trials[0].settings
    assert s.note == "hello world"
    assert s.seed == 5
    assert s.model.init_args.fail_at_step == 3
    with pytest.raises(ConfigError, match=r"--set: note: unknown key 'note'.*prefix it with '\+'"):
        load(folder, overrides=["note=1"])


def test_floats_in_files_follow_yaml_1_2(cfg):
    folder = cfg({"trials.yaml": "- name: a\n  settings: {model: {init_args: {lr: 1e-4}}}\n"})
    assert load(folder).trials[0].settings.model.init_args.lr == pytest.approx(1e-4)


def test_interpolation_resolved_per_trial(cfg):
    base = GOOD_FILES["base.yaml"].replace(
        "init_args: {n: 32, batch_size: 8}", "init_args: {n: '${hidden2}', batch_size: 8}"
    )
    base += "  hidden2: ${model.init_args.hidden}\n  tag: run-${seed}-${model.init_args.lr}\n"
    folder = cfg({"base.yaml": base})
    spec = load(folder)
    a, b = spec.trials
    assert a.settings.data.init_args.n == 4 and b.settings.data.init_args.n == 8  # fast path, typed
    assert a.settings.tag == "run-1-0.1"  # text interpolation: OmegaConf path
    assert "${" not in str(spec.to_container())


def test_interpolation_oc_env(cfg, monkeypatch):
    monkeypatch.setenv("EXPMAN_TEST_WS", "from_env")
    folder = cfg({"env.yaml": "workspace: ${oc.env:EXPMAN_TEST_WS}/ws\n"})
    spec = load(folder)
    assert spec.env.workspace.endswith("from_env/ws")


def test_base_yaml_bare_mapping_and_trials_mapping_form(cfg):
    bare = "\n".join(line[2:] for line in GOOD_FILES["base.yaml"].splitlines()[1:]) + "\n"
    folder = cfg({"base.yaml": bare, "trials.yaml": "trials:\n  - {name: only, repeat: 3}\n"})
    spec = load(folder)
    assert spec.trials[0].settings.model.class_path == "tests.tiny.TinyClassifier"
    assert [t.name for t in spec.trials] == ["only"]
    assert spec.trials[0].id == 1  # default: position in the list, 1-based


def test_optional_files(cfg):
    folder = cfg({"env.yaml": None})
    (folder / "base.yaml").unlink()
    (folder / "experiment.yaml").write_text(
        "name: x\nid: 3\nsettings:\n  model: {class_path: tests.tiny.TinyClassifier}\n"
    )
    spec = load(folder)
    assert spec.env.workspace == str(Path.cwd() / "outputs")
    assert spec.env.verbose is False and spec.env.debug is False
    assert list(spec.env.trackers) == [
        {"type": "db", "url": f"sqlite:///{Path.cwd() / 'outputs' / 'expman.db'}"}
    ]
    assert spec.trials[0].seed == 0  # settings.seed defaults to 0
    assert "data" not in spec.trials[0].settings


def test_trackers_and_db_url(cfg):
    folder = cfg({"env.yaml": "trackers:\n  - {type: log}\n  - {type: db, url: 'sqlite:///mine.db'}\n"})
    spec = load(folder)
    assert [dict(t) for t in spec.env.trackers] == [
        {"type": "log"},
        {"type": "db", "url": "sqlite:///mine.db"},
    ]
    spec = load(folder, db_url="sqlite:///other.db")
    assert spec.env.trackers[1].url == "sqlite:///other.db"
    folder = cfg({"env.yaml": "trackers:\n  - {type: log}\n"})
    spec = load(folder, db_url="postgresql://u@h/db")
    assert [t.type for t in spec.env.trackers] == ["log", "db"]
    assert spec.env.trackers[1].url == "postgresql://u@h/db"
    with pytest.raises(ConfigError, match="--db: must be a database URL"):
        load(folder, db_url="runs.db")


def test_runs_and_seeds(cfg):
    folder = cfg({"trials.yaml": "- {name: a, repeat: 3}\n- {name: b, repeat: 2, settings: {seed: 100}}\n"})
    spec = load(folder)
    runs = spec.runs()
    assert all(isinstance(r, RunSpec) for r in runs)
    assert [(r.trial.name, r.repeat_idx, r.seed) for r in runs] == [
        ("a", 1, 1),
        ("a", 2, 2),
        ("a", 3, 3),
        ("b", 1, 100),
        ("b", 2, 101),
    ]
    assert [r.name for r in runs[:2]] == ["run_1", "run_2"]


def test_run_settings_see_the_run_seed(cfg):
    base = GOOD_FILES["base.yaml"].replace(
        "init_args: {n: 32, batch_size: 8}", "init_args: {n: 32, batch_size: 8, seed: '${seed}'}"
    )
    base += "  tag: run-${seed}\n"  # text interpolation: OmegaConf's path, not the fast one
    trials = "- {name: a, repeat: 3, settings: {seed: 10}}\n- {name: b, repeat: 2}\n"
    folder = cfg({"base.yaml": base, "trials.yaml": trials})
    spec = load(folder)
    runs = spec.runs()
    got = [
        (r.trial.name, r.seed, r.settings.seed, r.settings.data.init_args.seed, r.settings.tag) for r in runs
    ]
    assert got == [
        ("a", 10, 10, 10, "run-10"),
        ("a", 11, 11, 11, "run-11"),
        ("a", 12, 12, 12, "run-12"),
        ("b", 1, 1, 1, "run-1"),
        ("b", 2, 2, 2, "run-2"),
    ]
    # The trial's own settings (and its hash) stay those of its base seed.
    assert spec.trials[0].settings.data.init_args.seed == 10
    assert runs[1].settings is runs[1].settings  # cached per run...
    fresh = spec.trials[0].run_settings(runs[1].seed)  # ...and a fresh copy to mutate
    fresh.data.init_args.seed = -1
    assert runs[1].settings.data.init_args.seed == 11 and spec.trials[0].run_settings(11) is not fresh
    assert spec.trials[0].run_settings().seed == 10  # default: the trial's seed
    assert "${" not in str(spec.trials[0].run_settings_data(11))


def test_run_settings_without_interpolation_carry_the_run_seed(cfg):
    spec = load(cfg({"trials.yaml": "- {name: a, repeat: 2}\n"}))
    first, second = spec.runs()
    assert (first.settings.seed, second.settings.seed) == (1, 2)
    assert second.settings.model.init_args.hidden == 4
    assert spec.trials[0].settings.seed == 1  # untouched
    clone = pickle.loads(pickle.dumps(second))
    assert clone.settings.seed == 2


def test_config_hash_stability(cfg):
    folder = cfg()
    h = load(folder).config_hash
    assert load(folder).config_hash == h
    # key order and formatting do not matter
    (folder / "trials.yaml").write_text(
        "- {repeat: 2, id: 1, name: a}\n- name: b\n  id: 2\n  settings: {model: {init_args: {hidden: 8}}}\n"
    )
    assert load(folder).config_hash == h
    # env: workspace, verbosity, trackers do not define results
    (folder / "env.yaml").write_text(
        "workspace: elsewhere\nverbose: true\ndebug: true\ntrackers: [{type: log}]\n"
    )
    assert load(folder).config_hash == h
    assert load(folder, db_url="sqlite:///x.db").config_hash == h
    # a changed learning rate does
    changed = load(folder, overrides=["model.init_args.lr=0.2"])
    assert changed.config_hash != h
    assert changed.trials[0].config_hash != load(folder).trials[0].config_hash
    # ... and so does a repeat count
    (folder / "trials.yaml").write_text(
        "- {repeat: 3, id: 1, name: a}\n- name: b\n  id: 2\n  settings: {model: {init_args: {hidden: 8}}}\n"
    )
    assert load(folder).config_hash != h


def test_config_hash_with_non_string_keys(cfg):
    folder = cfg({"trials.yaml": "- name: a\n  settings: {class_weights: {0: 1.0, 1: 2.5, other: 3}}\n"})
    spec = load(folder)
    assert spec.trials[0].settings.class_weights[1] == 2.5
    assert load(folder).config_hash == spec.config_hash


def test_secrets_masked(cfg):
    folder = cfg(
        {
            "env.yaml": "trackers:\n  - {type: db, url: 'mysql://root:hunter2@db:3306/exp'}\n"
            "  - {type: mlflow, tracking_uri: 'http://u:pw9@mlflow:5000'}\n",
            "trials.yaml": "- name: a\n"
            "  settings: {api: {password: hunter2, api_key: k3y, tokenizer: bert}}\n",
        }
    )
    spec = load(folder, overrides=["+api.token=t0k"])
    text = str(spec.to_container())
    for secret in ("hunter2", "pw9", "k3y", "t0k"):
        assert secret not in text
    out = spec.to_container()
    assert out["env"]["trackers"][0]["url"] == "mysql://root:***@db:3306/exp"
    assert out["trials"][0]["settings"]["api"] == {
        "password": "***",
        "api_key": "***",
        "tokenizer": "bert",
        "token": "***",
    }
    assert out["overrides"] == ["+api.token=***"]
    # the real values stay available to the runner
    assert spec.env.trackers[0].url == "mysql://root:hunter2@db:3306/exp"
    assert spec.trials[0].settings.api.password == "hunter2"


def test_spec_pickles_for_worker_processes(cfg):
    spec = load(cfg())
    _ = spec.trials[0].settings, spec.env  # cached DictConfigs travel too
    clone = pickle.loads(pickle.dumps(spec))
    assert clone.config_hash == spec.config_hash
    assert [(r.trial.name, r.repeat_idx, r.seed) for r in clone.runs()] == [
        (r.trial.name, r.repeat_idx, r.seed) for r in spec.runs()
    ]
    assert clone.trials[1].settings.model.init_args.hidden == 8
    run = pickle.loads(pickle.dumps(spec.runs()[1]))
    assert (run.trial.name, run.repeat_idx, run.seed) == ("a", 2, 2)


def test_to_container_shape(cfg):
    spec = load(cfg())
    out = spec.to_container()
    assert set(out) >= {"name", "id", "desc", "tags", "pipeline", "env", "settings", "trials", "config_hash"}
    assert out["trials"][0]["name"] == "a"
    out["trials"][0]["settings"]["seed"] = 999  # a copy
    assert spec.trials[0].settings.seed == 1


def test_custom_pipeline_skips_standard_validation(cfg):
    folder = cfg(
        {
            "experiment.yaml": "name: x\nid: 1\npipeline: my_pipeline\n",
            "base.yaml": "settings: {epochs: 3, learning_rate: 0.1, trainr: whatever}\n",
            "trials.yaml": "- {name: a, settings: {hidden_layers: [64, 32]}}\n",
        }
    )
    spec = load(folder, overrides=["epochs=1"])
    assert spec.pipeline == "my_pipeline"
    assert spec.trials[0].settings == {
        "epochs": 1,
        "learning_rate": 0.1,
        "trainr": "whatever",
        "hidden_layers": [64, 32],
    }
    with pytest.raises(ConfigError, match=r"--set: epoch: unknown key 'epoch'.*did you mean 'epochs'"):
        load(folder, overrides=["epoch=1"])


def test_pipeline_lightning_is_the_standard_pipeline(cfg):
    folder = cfg({"experiment.yaml": "name: x\nid: 1\npipeline: lightning\n"})
    assert load(folder).pipeline is None
    folder = cfg(
        {"experiment.yaml": "name: x\nid: 1\npipeline: lightning\n", "base.yaml": "settings: {seed: 1}\n"}
    )
    with pytest.raises(ConfigError, match=r"settings\.model: is required"):
        load(folder)  # still validated as the standard pipeline
    folder = cfg({"experiment.yaml": "name: x\nid: 1\npipeline: tests.tiny.TinyClassifier\n"})
    assert load(folder).pipeline == "tests.tiny.TinyClassifier"


def test_changed_class_path_drops_old_init_args(cfg):
    folder = cfg(
        {"trials.yaml": "- name: a\n  settings:\n    model: {class_path: collections.OrderedDict}\n"}
    )
    s = load(folder).trials[0].settings
    assert s.model == {"class_path": "collections.OrderedDict"}


def test_class_path_import_free_and_fast_start():
    code = (
        "import sys; from lightning_expman.config import load; "
        "from lightning_expman.workspace import Environment; "
        f"spec = load({str(TINY)!r}); spec.runs(); spec.to_container(); "
        "print(sorted(m for m in ('torch', 'lightning', 'pytorch_lightning') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip() == "[]"


def test_config_dir_problems(tmp_path):
    with pytest.raises(ConfigError, match="config folder not found"):
        load(tmp_path / "missing")
    (tmp_path / "file.yaml").write_text("x: 1\n")
    with pytest.raises(ConfigError, match="is not a folder"):
        load(tmp_path / "file.yaml")
