"""Search blocks (``search:`` / the guide's ``hpo:``) are validated at load: one line naming the
file, key and bad value, nothing written. No Lightning import here (fast)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lightning_expman.config import load
from lightning_expman.errors import ConfigError
from tests.experiment_support import write_config

SPACE = {"model.init_args.lr": {"low": 0.001, "high": 0.1, "log": True}}

BAD = [
    # (block, key fragment the error names, text it contains)
    ("not a mapping", "[0].search", "must be a mapping"),
    ({"space": SPACE}, "[0].search.num_trials", "is required"),
    ({"num_trials": 0, "space": SPACE}, "[0].search.num_trials", ">= 1"),
    ({"num_trials": 2, "space": SPACE, "samplr": "tpe"}, "[0].search.samplr", "did you mean"),
    ({"num_trials": 2, "space": SPACE, "sampler": "bayes"}, "[0].search.sampler", "valid: tpe"),
    ({"num_trials": 2, "space": SPACE, "pruner": "early"}, "[0].search.pruner", "valid: median"),
    ({"num_trials": 2, "space": SPACE, "direction": "up"}, "[0].search.direction", "minimize"),
    ({"num_trials": 2, "space": SPACE, "direction": "min", "mode": "max"}, "[0].search.mode", "not both"),
    ({"num_trials": 2, "space": SPACE, "objective": "mean"}, "[0].search.objective", "best, last"),
    ({"num_trials": 2, "space": {}}, "[0].search.space", "non-empty"),
    (
        {"num_trials": 2, "space": {"model.init_args.lrr": [1, 2]}},
        "model.init_args.lrr",
        "unknown settings key",
    ),
    ({"num_trials": 2, "space": {"model.init_args.lr": {"low": 1, "high": 0.1}}}, "lr", "above high"),
    ({"num_trials": 2, "space": {"model.init_args.lr": {"low": 0, "high": 1, "log": True}}}, "lr", "low > 0"),
    (
        {"num_trials": 2, "space": {"model.init_args.lr": {"low": 0.1, "high": 1, "log": True, "step": 0.1}}},
        "lr",
        "cannot be combined",
    ),
    ({"num_trials": 2, "space": {"model.init_args.lr": {"low": 0.1}}}, "lr", "both low and high"),
    ({"num_trials": 2, "space": {"model.init_args.lr": []}}, "lr", "non-empty list"),
    ({"num_trials": 2, "space": {"model.init_args.lr": {"choices": [1, 1]}}}, "lr", "listed twice"),
    ({"num_trials": 2, "space": {"model.init_args.lr": {"lo": 1, "high": 2}}}, "lr", "did you mean"),
    ({"num_trials": 2, "space": {"model.init_args.lr": {"low": "a", "high": 2}}}, "lr", "must be numbers"),
    ({"num_trials": 2, "space": SPACE, "sampler": "grid"}, "lr", "finite choices"),
    (
        {"num_trials": 2, "space": SPACE, "metric": ["val_loss", "val_acc"], "pruner": "median"},
        "pruner",
        "single metric",
    ),
    ({"num_trials": 2, "space": SPACE, "metric": 3}, "[0].search.metric", "metric name"),
    ({"num_trials": 2, "space": SPACE, "sampler": {"n_startup_trials": 3}}, "sampler", "needs 'type'"),
    ({"num_trials": 2, "space": SPACE, "param_space": SPACE}, "param_space", "not both"),
]


@pytest.mark.parametrize(("block", "key", "text"), BAD, ids=[f"bad{i}" for i in range(len(BAD))])
def test_bad_search_block_refused_with_one_line(tmp_path: Path, block, key, text) -> None:
    cfg = write_config(tmp_path, [{"name": "s", "search": block}])
    with pytest.raises(ConfigError) as e:
        load(cfg)
    message = str(e.value)
    assert "\n" not in message
    assert "trials.yaml" in message and key in message and text in message, message
    assert not (tmp_path / "ws").exists() and not (tmp_path / "expman.db").exists()


def test_grid_and_search_of_one_key_refused(tmp_path: Path) -> None:
    cfg = write_config(
        tmp_path,
        [
            {
                "name": "s",
                "grid": {"model.init_args.lr": [0.1, 0.2]},
                "search": {"num_trials": 2, "space": SPACE},
            }
        ],
    )
    with pytest.raises(ConfigError, match="varied by the trial's grid"):
        load(cfg)


def test_search_and_hpo_both_refused(tmp_path: Path) -> None:
    block = {"num_trials": 2, "space": SPACE}
    cfg = write_config(tmp_path, [{"name": "s", "search": block, "hpo": block}])
    with pytest.raises(ConfigError, match="not both"):
        load(cfg)


def test_guide_hpo_form_resolves_bare_names(tmp_path: Path) -> None:
    settings = {
        "seed": 1,
        "training": {"batch_size": 32, "learning_rate": 0.001},
        "model": {
            "class_path": "tests.tiny.TinyClassifier",
            "init_args": {"lr": "${training.learning_rate}"},
        },
        "data": {
            "class_path": "tests.tiny.TinyDataModule",
            "init_args": {"batch_size": "${training.batch_size}"},
        },
    }
    hpo = {
        "param_space": {"learning_rate": [0.0001, 0.001, 0.01], "batch_size": [16, 32, 64]},
        "num_trials": 10,
    }
    cfg = write_config(tmp_path, [{"name": "guide", "hpo": hpo}], settings=settings)
    spec = load(cfg)
    assert spec.trials == []
    ((template, search),) = spec.searches
    assert template.name == "guide" and search.form == "hpo" and search.num_trials == 10
    assert search.space == {
        "training.learning_rate": {"type": "categorical", "choices": [0.0001, 0.001, 0.01]},
        "training.batch_size": {"type": "categorical", "choices": [16, 32, 64]},
    }
    assert search.metrics == ("val_loss",) and search.directions == ("minimize",)


def test_full_form_distributions_and_config_hash(tmp_path: Path) -> None:
    block = {
        "num_trials": 5,
        "metric": "val_acc",
        "mode": "max",
        "sampler": {"type": "tpe", "n_startup_trials": 2},
        "pruner": {"type": "median", "n_warmup_steps": 1},
        "space": {
            "model.init_args.lr": {"low": 0.001, "high": 0.1, "log": True},
            "model.init_args.hidden": {"low": 4, "high": 16, "step": 4},
            "data.init_args.batch_size": {"choices": [8, 16]},
        },
    }
    spec = load(write_config(tmp_path, [{"name": "s", "search": block}]))
    ((_, search),) = spec.searches
    assert search.directions == ("maximize",)
    assert search.space["model.init_args.hidden"] == {
        "type": "int",
        "low": 4,
        "high": 16,
        "log": False,
        "step": 4,
    }
    assert search.space["model.init_args.lr"]["type"] == "float"
    assert search.sampler == ("tpe", {"n_startup_trials": 2}) and search.pruner == (
        "median",
        {"n_warmup_steps": 1},
    )
    block["num_trials"] = 6
    other = load(write_config(tmp_path / "b", [{"name": "s", "search": block}]))
    assert other.config_hash != spec.config_hash  # a changed search is a changed config


def test_dry_run_shows_space_and_budget(tmp_path: Path) -> None:
    from tests.experiment_support import expman

    cfg = write_config(tmp_path, [{"name": "s", "repeat": 2, "search": {"num_trials": 7, "space": SPACE}}])
    code, out, err = expman("run", str(cfg), "--dry-run", cwd=tmp_path)
    assert code == 0, err
    assert "search s: 2 repeat(s) per trial" in out
    assert "budget: 7 trials" in out and "model.init_args.lr: float in [0.001, 0.1] log" in out
    assert not (tmp_path / "expman.db").exists()


def test_search_beside_a_grid_gives_one_template_per_combination(tmp_path: Path) -> None:
    trials = [
        {"name": "plain", "settings": {"trainer": {"max_epochs": 1}}},
        {
            "name": "s",
            "grid": {"model.init_args.hidden": [4, 8]},
            "search": {"num_trials": 3, "space": SPACE},
        },
    ]
    spec = load(write_config(tmp_path, trials))
    assert [(t.name, t.index) for t in spec.trials] == [("plain", 0)]
    assert [(t.name, t.index, t.params) for t, _ in spec.searches] == [
        ("s-hidden=4", 0, {"model.init_args.hidden": 4}),
        ("s-hidden=8", 1, {"model.init_args.hidden": 8}),
    ]
    assert "searches" in spec.to_container()


def test_guide_hpo_block_in_experiment_yaml_searches_every_trial(tmp_path: Path) -> None:
    hpo = {"param_space": {"lr": [0.01, 0.1], "batch_size": [16, 32]}, "num_trials": 4}
    trials = [{"name": "a"}, {"name": "b", "search": {"num_trials": 2, "space": SPACE}}]
    spec = load(write_config(tmp_path, trials, experiment={"hpo": hpo}))
    (a, sa), (b, sb) = spec.searches
    assert (a.name, sa.form, sa.num_trials) == ("a", "hpo", 4)
    assert set(sa.space) == {"model.init_args.lr", "data.init_args.batch_size"}
    assert (b.name, sb.num_trials) == ("b", 2)  # a trial's own block wins
    bad = write_config(tmp_path / "bad", [{"name": "a"}], experiment={"hpo": {"param_space": {"lr": []}}})
    with pytest.raises(ConfigError, match=r"experiment\.yaml: hpo\.num_trials: is required"):
        load(bad)
