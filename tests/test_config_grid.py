"""Grids: insert_value, multiply, and the declarative ``grid:`` of trials.yaml."""

from __future__ import annotations

import pytest
from omegaconf import DictConfig, OmegaConf

from lightning_expman.config import ConfigError, expand_grid, insert_value, load, multiply
from lightning_expman.config.grid import format_grid_value, grid_trial_id, grid_trial_name, short_grid_keys
from lightning_expman.workspace import safe_name
from tests.bad_config_cases import write_config


def test_insert_value_dictconfig():
    base = OmegaConf.create({"learning_rate": "?", "batch_size": 32, "opt": {"betas": ["?", 0.9]}})
    out = insert_value(base, 0.001)
    assert isinstance(out, DictConfig)
    assert out == {"learning_rate": 0.001, "batch_size": 32, "opt": {"betas": [0.001, 0.9]}}
    assert base.learning_rate == "?"  # not modified


def test_insert_value_plain_and_custom_placeholder():
    assert insert_value({"a": "?", "b": "??", "c": "x?"}, [1, 2]) == {"a": [1, 2], "b": "??", "c": "x?"}
    assert insert_value({"a": "<v>"}, 3, placeholder="<v>") == {"a": 3}


def test_multiply_cartesian_product_deep_merged():
    models = [{"model": "mlp", "layers": [64, 32]}, {"model": "cnn", "filters": [32, 64]}]
    lrs = [{"learning_rate": 0.1}, {"learning_rate": 0.01}]
    out = multiply(models, lrs)
    assert len(out) == 4
    assert out[0] == {"model": "mlp", "layers": [64, 32], "learning_rate": 0.1}
    assert out[3] == {"model": "cnn", "filters": [32, 64], "learning_rate": 0.01}
    nested = multiply(
        [{"settings": {"lr": lr}} for lr in (0.1, 0.01)],
        [{"settings": {"hidden": h}} for h in (32, 64, 128)],
        [OmegaConf.create({"repeat": 3})],
    )
    assert len(nested) == 6
    assert nested[5] == {"settings": {"lr": 0.01, "hidden": 128}, "repeat": 3}
    out[0]["layers"].append(1)
    assert models[0]["layers"] == [64, 32]  # results are copies


def test_multiply_edge_cases():
    assert multiply() == [{}]
    assert multiply([{"a": 1}], []) == []
    with pytest.raises(TypeError):
        multiply([1, 2])


def test_expand_grid_order():
    combos = expand_grid({"a": [1, 2], "b": ["x", "y", "z"]})
    assert combos == [
        {"a": 1, "b": "x"},
        {"a": 1, "b": "y"},
        {"a": 1, "b": "z"},
        {"a": 2, "b": "x"},
        {"a": 2, "b": "y"},
        {"a": 2, "b": "z"},
    ]


def test_grid_naming_rules():
    assert short_grid_keys(["model.init_args.lr", "model.init_args.hidden"]) == {
        "model.init_args.lr": "lr",
        "model.init_args.hidden": "hidden",
    }
    assert short_grid_keys(["model.init_args.lr", "optim.lr"]) == {
        "model.init_args.lr": "init_args.lr",
        "optim.lr": "optim.lr",
    }
    assert [format_grid_value(v) for v in (0.1, 1e-05, 3, True, None, "adam", [64, 32], "a/b c")] == [
        "0.1",
        "1e-05",
        "3",
        "true",
        "null",
        "adam",
        "64,32",
        "a_b_c",
    ]
    name = grid_trial_name("mlp", {"model.init_args.lr": 0.1, "model.init_args.hidden": 32})
    assert name == "mlp-lr=0.1-hidden=32"
    assert safe_name(name) == name  # already a safe folder name
    assert [grid_trial_id(3, i, 4) for i in range(4)] == [31, 32, 33, 34]
    assert grid_trial_id(3, 11, 12) == 312
    assert grid_trial_id(1, 999, 1000) == 11000


def test_declarative_grid_expansion(tmp_path):
    folder = write_config(
        tmp_path / "cfg",
        {
            "trials.yaml": "- {name: plain, id: 1}\n"
            "- name: mlp\n  id: 2\n  repeat: 2\n  tags: {kind: grid}\n"
            "  settings: {trainer: {max_epochs: 4}}\n"
            "  grid:\n    model.init_args.lr: [0.1, 0.01]\n    model.init_args.hidden: [32, 64]\n"
            "    trainer.max_epochs: [1]\n"
        },
    )
    spec = load(folder)
    names = [t.name for t in spec.trials]
    assert names == [
        "plain",
        "mlp-lr=0.1-hidden=32-max_epochs=1",
        "mlp-lr=0.1-hidden=64-max_epochs=1",
        "mlp-lr=0.01-hidden=32-max_epochs=1",
        "mlp-lr=0.01-hidden=64-max_epochs=1",
    ]
    assert [t.id for t in spec.trials] == [1, 21, 22, 23, 24]
    t = spec.trials[2]
    assert t.params == {"model.init_args.lr": 0.1, "model.init_args.hidden": 64, "trainer.max_epochs": 1}
    assert t.settings.model.init_args == {"hidden": 64, "lr": 0.1}
    assert t.settings.trainer.max_epochs == 1  # grid beats the trial's settings
    assert t.repeat == 2 and t.tags == {"kind": "grid"}
    assert spec.trials[0].params == {}
    assert len(spec.runs()) == 1 + 4 * 2
    # deterministic: same names and ids on every load
    again = load(folder)
    assert [(x.name, x.id) for x in again.trials] == [(x.name, x.id) for x in spec.trials]


def test_grid_with_list_values_and_interpolation(tmp_path):
    folder = write_config(
        tmp_path / "cfg",
        {
            "trials.yaml": "- name: g\n"
            "  settings: {width: 4, layers: [8], model: {init_args: {hidden: '${width}'}}}\n"
            "  grid: {width: [2, 3], layers: [[8], [8, 4]]}\n"
        },
    )
    spec = load(folder)
    assert [t.name for t in spec.trials] == [
        "g-width=2-layers=8",
        "g-width=2-layers=8,4",
        "g-width=3-layers=8",
        "g-width=3-layers=8,4",
    ]
    assert [list(t.settings.layers) for t in spec.trials] == [[8], [8, 4], [8], [8, 4]]
    # interpolations see the grid values
    assert [t.settings.model.init_args.hidden for t in spec.trials] == [2, 2, 3, 3]


def test_grid_plus_key_adds_a_new_setting(tmp_path):
    folder = write_config(tmp_path / "cfg", {"trials.yaml": "- name: g\n  grid: {+note: [x, y]}\n"})
    spec = load(folder)
    assert [(t.name, t.params, t.settings.note) for t in spec.trials] == [
        ("g-note=x", {"note": "x"}, "x"),
        ("g-note=y", {"note": "y"}, "y"),
    ]
    folder = write_config(tmp_path / "cfg2", {"trials.yaml": "- name: g\n  grid: {note: [x, y]}\n"})
    with pytest.raises(ConfigError, match=r"\[0\]\.grid\.note: unknown key 'note'"):
        load(folder)


def test_grid_name_collision_is_reported(tmp_path):
    folder = write_config(
        tmp_path / "cfg",
        {"trials.yaml": "- name: g\n  grid: {+note: ['a/b', 'a b']}\n"},
    )
    with pytest.raises(ConfigError, match="duplicate trial name 'g-note=a_b'"):
        load(folder)
    folder = write_config(
        tmp_path / "cfg2",
        {"trials.yaml": "- name: g\n  settings: {note: x}\n  grid: {note: ['a/b', 'a b']}\n"},
    )
    with pytest.raises(ConfigError, match="duplicate trial name 'g-note=a_b'"):
        load(folder)
