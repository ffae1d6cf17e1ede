"""A reusable corpus of bad configuration folders, each with the one-line error it must give.

Used by ``tests/test_config_bad.py`` (``config.load`` raises ``ConfigError``) and meant for the
CLI tests too (``expman run DIR --set ...`` exits 2, prints the line, writes nothing).

Each :class:`BadConfig` starts from :data:`GOOD_FILES` (a valid folder: ``load`` succeeds on it)
and replaces (or, with ``None``, deletes) some files; ``overrides`` are ``--set`` values.
Every string of ``expected`` must appear in the error line. The classes used live in
``tests/tiny.py``: run with the repository root on ``sys.path`` / ``PYTHONPATH``.

Example:
    >>> from tests.bad_config_cases import BAD_CONFIGS, write_config
    >>> case = BAD_CONFIGS[0]
    >>> folder = write_config(tmp_path / case.name, case.files)  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["BAD_CONFIGS", "GOOD_FILES", "BadConfig", "write_config"]

GOOD_FILES: dict[str, str] = {
    "env.yaml": "workspace: outputs\nverbose: false\n",
    "experiment.yaml": "name: corpus\nid: 1\ndesc: a valid experiment\n"
    "settings:\n  trainer: {max_epochs: 1}\n",
    "base.yaml": """settings:
  seed: 1
  model:
    class_path: tests.tiny.TinyClassifier
    init_args: {hidden: 4, lr: 0.1}
  data:
    class_path: tests.tiny.TinyDataModule
    init_args: {n: 32, batch_size: 8}
  trainer: {enable_progress_bar: false}
  callbacks:
    - {type: early_stopping, monitor: val_loss, patience: 2}
    - {type: checkpoint, interval: 1}
    - {type: metrics_tracker}
""",
    "trials.yaml": """- name: a
  id: 1
  repeat: 2
- name: b
  id: 2
  settings:
    model: {init_args: {hidden: 8}}
""",
}


@dataclass(frozen=True)
class BadConfig:
    """One bad configuration.

    Attributes:
        name: a short identifier (also a good folder name).
        files: file name -> new text, or None to delete that file from :data:`GOOD_FILES`.
        expected: substrings the one-line error must contain (file name, key, bad value...).
        overrides: ``KEY=VALUE`` overrides (``--set``) to pass.
    """

    name: str
    files: dict[str, str | None]
    expected: tuple[str, ...]
    overrides: tuple[str, ...] = field(default=())


def write_config(folder: Path, files: dict[str, str | None]) -> Path:
    """Write :data:`GOOD_FILES` updated with ``files`` into ``folder`` (created); return it."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in {**GOOD_FILES, **files}.items():
        if text is not None:
            (folder / name).write_text(text, encoding="utf-8")
    return folder


_BASE = GOOD_FILES["base.yaml"]


# "Billion laughs": 9 levels of 10 aliases each expand to 10^9 values.
_ALIAS_BOMB = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"] + [
    f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)
]


def _base(old: str, new: str) -> dict[str, str | None]:
    assert old in _BASE, old
    return {"base.yaml": _BASE.replace(old, new)}


BAD_CONFIGS: list[BadConfig] = [
    # --- files and YAML
    BadConfig(
        "yaml_syntax",
        {"trials.yaml": "- name: a\n  id: 1\n  settings: {model: [\n"},
        ("trials.yaml", "line 4"),
    ),
    BadConfig(
        "yaml_duplicate_key",
        _base("  seed: 1\n", "  seed: 1\n  seed: 2\n"),
        ("base.yaml", "duplicate key 'seed'"),
    ),
    BadConfig("missing_experiment", {"experiment.yaml": None}, ("experiment.yaml", "file not found")),
    BadConfig("missing_trials", {"trials.yaml": None}, ("trials.yaml", "file not found")),
    BadConfig("empty_experiment", {"experiment.yaml": ""}, ("experiment.yaml", "empty")),
    BadConfig(
        "experiment_not_mapping", {"experiment.yaml": "- name: x\n"}, ("experiment.yaml", "must be a mapping")
    ),
    BadConfig("empty_trials", {"trials.yaml": "[]\n"}, ("trials.yaml", "no trials")),
    BadConfig("trials_not_list", {"trials.yaml": "name: a\nid: 1\n"}, ("trials.yaml", "must be a list")),
    # --- experiment.yaml
    BadConfig(
        "experiment_missing_name", {"experiment.yaml": "id: 1\n"}, ("experiment.yaml", "name", "is required")
    ),
    BadConfig(
        "experiment_missing_id", {"experiment.yaml": "name: x\n"}, ("experiment.yaml", ": id:", "is required")
    ),
    BadConfig(
        "experiment_id_not_int", {"experiment.yaml": "name: x\nid: one\n"}, ("experiment.yaml", "id", "'one'")
    ),
    BadConfig(
        "experiment_unknown_key",
        {"experiment.yaml": "name: x\nid: 1\ndescr: typo\n"},
        ("experiment.yaml", "descr", "did you mean 'desc'"),
    ),
    BadConfig(
        "pipeline_not_string",
        {"experiment.yaml": "name: x\nid: 1\npipeline: 5\n"},
        ("experiment.yaml", "pipeline", "5"),
    ),
    # --- trials.yaml
    BadConfig(
        "trial_missing_name",
        {"trials.yaml": "- name: a\n- id: 2\n"},
        ("trials.yaml", "[1].name", "is required"),
    ),
    BadConfig(
        "trial_duplicate_name",
        {"trials.yaml": "- {name: a, id: 1}\n- {name: a, id: 2}\n"},
        ("trials.yaml", "duplicate trial name 'a'"),
    ),
    BadConfig(
        "trial_duplicate_id",
        {"trials.yaml": "- {name: a, id: 1}\n- {name: b, id: 1}\n"},
        ("trials.yaml", "[1].id", "duplicate trial id 1"),
    ),
    BadConfig(
        "trial_names_differ_in_case_only",
        {"trials.yaml": "- {name: MLP, id: 1}\n- {name: mlp, id: 2}\n"},
        ("trials.yaml", "[1].name", "'mlp'", "case-insensitive"),
    ),
    BadConfig(
        "trial_repeat_zero",
        {"trials.yaml": "- {name: a, repeat: 0}\n"},
        ("trials.yaml", "[0].repeat", "got 0"),
    ),
    BadConfig(
        "trial_repeat_float",
        {"trials.yaml": "- {name: a, repeat: 2.5}\n"},
        ("trials.yaml", "[0].repeat", "2.5"),
    ),
    BadConfig(
        "trial_unknown_key",
        {"trials.yaml": "- {name: a, repeats: 3}\n"},
        ("trials.yaml", "[0].repeats", "did you mean 'repeat'"),
    ),
    BadConfig(
        "trial_tags_not_mapping",
        {"trials.yaml": "- {name: a, tags: [x, y]}\n"},
        ("trials.yaml", "[0].tags", "must be a mapping"),
    ),
    BadConfig(
        "grid_values_not_list",
        {"trials.yaml": "- name: a\n  grid: {model.init_args.lr: 0.1}\n"},
        ("trials.yaml", "[0].grid.model.init_args.lr", "non-empty list", "0.1"),
    ),
    BadConfig(
        "grid_unknown_key",
        {"trials.yaml": "- name: a\n  grid: {model.init_arg.lr: [0.1, 0.2]}\n"},
        ("trials.yaml", "[0].grid.model.init_arg.lr", "did you mean"),
    ),
    BadConfig(
        "grid_duplicate_value",
        {"trials.yaml": "- name: a\n  grid: {model.init_args.lr: [0.1, 0.1]}\n"},
        ("trials.yaml", "[0].grid.model.init_args.lr", "listed twice"),
    ),
    BadConfig(
        "grid_id_collision",
        {
            "trials.yaml": "- name: a\n  id: 1\n  grid: {model.init_args.lr: [0.1, 0.2, 0.3]}\n"
            "- {name: b, id: 12}\n"
        },
        ("trials.yaml", "[1].id", "12"),
    ),
    # --- base.yaml / settings of the standard pipeline
    BadConfig(
        "base_settings_and_other_keys", {"base.yaml": _BASE + "seed: 3\n"}, ("base.yaml", "settings", "seed")
    ),
    BadConfig(
        "model_missing",
        _base(
            "  model:\n    class_path: tests.tiny.TinyClassifier\n    init_args: {hidden: 4, lr: 0.1}\n", ""
        ),
        ("model", "is required"),
    ),
    BadConfig(
        "model_not_mapping",
        _base(
            "  model:\n    class_path: tests.tiny.TinyClassifier\n    init_args: {hidden: 4, lr: 0.1}\n",
            "  model: tests.tiny.TinyClassifier\n",
        ),
        ("base.yaml", "settings.model", "must be a mapping"),
    ),
    BadConfig(
        "model_class_path_missing",
        _base("    class_path: tests.tiny.TinyClassifier\n", ""),
        ("base.yaml", "model.class_path", "is required"),
    ),
    BadConfig(
        "model_module_not_found",
        _base("tests.tiny.TinyClassifier", "tests.tinyy.TinyClassifier"),
        ("base.yaml", "settings.model.class_path", "tests.tinyy", "did you mean 'tiny'"),
    ),
    BadConfig(
        "model_class_not_found",
        _base("tests.tiny.TinyClassifier", "tests.tiny.TinyClasifier"),
        ("base.yaml", "settings.model.class_path", "did you mean 'TinyClassifier'"),
    ),
    BadConfig(
        "model_class_path_not_dotted",
        _base("tests.tiny.TinyClassifier", "TinyClassifier"),
        ("base.yaml", "settings.model.class_path", "'TinyClassifier'", "dotted path"),
    ),
    BadConfig(
        "model_unknown_key",
        _base("    init_args: {hidden: 4, lr: 0.1}\n", "    init_arg: {hidden: 4, lr: 0.1}\n"),
        ("base.yaml", "settings.model.init_arg", "did you mean 'init_args'"),
    ),
    BadConfig(
        "init_args_typo_in_trial",
        {"trials.yaml": "- name: a\n  settings:\n    model: {init_args: {hiden: 8}}\n"},
        ("trials.yaml", "[0].settings.model.init_args.hiden", "did you mean 'hidden'", "trial 'a'"),
    ),
    BadConfig(
        "data_init_args_not_mapping",
        _base("    init_args: {n: 32, batch_size: 8}\n", "    init_args: [32, 8]\n"),
        ("base.yaml", "settings.data.init_args", "must be a mapping"),
    ),
    BadConfig(
        "trainer_key_typo",
        {"experiment.yaml": "name: x\nid: 1\nsettings:\n  trainer: {max_epoch: 3}\n"},
        ("experiment.yaml", "settings.trainer.max_epoch", "did you mean 'max_epochs'", "3"),
    ),
    BadConfig(
        "trainer_value_type",
        {"experiment.yaml": "name: x\nid: 1\nsettings:\n  trainer: {max_epochs: ten}\n"},
        ("experiment.yaml", "settings.trainer.max_epochs", "'ten'"),
    ),
    BadConfig(
        "trainer_callbacks",
        _base("  trainer: {enable_progress_bar: false}\n", "  trainer: {callbacks: []}\n"),
        ("base.yaml", "settings.trainer.callbacks", "top-level 'callbacks:'"),
    ),
    BadConfig(
        "trainer_logger_not_a_spec",
        _base("  trainer: {enable_progress_bar: false}\n", "  trainer: {logger: csv}\n"),
        ("base.yaml", "settings.trainer.logger", "must be a Lightning logger", "'csv'"),
    ),
    BadConfig(
        "trainer_logger_class_typo",
        _base(
            "  trainer: {enable_progress_bar: false}\n",
            "  trainer: {logger: {class_path: lightning.pytorch.loggers.CSVLoger}}\n",
        ),
        ("base.yaml", "settings.trainer.logger.class_path", "did you mean 'CSVLogger'"),
    ),
    BadConfig(
        "trainer_logger_list_kwarg_typo",
        _base(
            "  trainer: {enable_progress_bar: false}\n",
            "  trainer:\n    logger:\n      - {class_path: lightning.pytorch.loggers.CSVLogger,"
            " init_args: {save_dir: logs, flush_logs_every_n_step: 5}}\n",
        ),
        ("base.yaml", "settings.trainer.logger[0].init_args.flush_logs_every_n_step", "did you mean"),
    ),
    BadConfig(
        "trainer_logger_kwarg_wrong_type",
        _base(
            "  trainer: {enable_progress_bar: false}\n",
            "  trainer: {logger: [{class_path: lightning.pytorch.loggers.CSVLogger,"
            " init_args: {save_dir: logs, flush_logs_every_n_steps: often}}]}\n",
        ),
        (
            "base.yaml",
            "settings.trainer.logger[0].init_args.flush_logs_every_n_steps",
            "must be int",
            "'often'",
        ),
    ),
    BadConfig(
        "nested_class_path_typo",
        _base(
            "class_path: tests.tiny.TinyClassifier\n    init_args: {hidden: 4, lr: 0.1}",
            "class_path: tests.tiny_nested.ActClassifier\n"
            "    init_args: {hidden: 4, lr: 0.1, act: {class_path: torch.nn.GELUU}}",
        ),
        ("base.yaml", "settings.model.init_args.act.class_path", "did you mean 'GELU'"),
    ),
    BadConfig(
        "nested_init_arg_wrong_type",
        _base(
            "class_path: tests.tiny.TinyClassifier\n    init_args: {hidden: 4, lr: 0.1}",
            "class_path: tests.tiny_nested.ActClassifier\n"
            "    init_args: {act: {class_path: torch.nn.GELU, init_args: {approximate: 3}}}",
        ),
        ("base.yaml", "settings.model.init_args.act.init_args.approximate", "must be str", "3"),
    ),
    BadConfig(
        "nested_init_arg_unknown",
        _base(
            "class_path: tests.tiny.TinyClassifier\n    init_args: {hidden: 4, lr: 0.1}",
            "class_path: tests.tiny_nested.ActClassifier\n"
            "    init_args: {act: {class_path: torch.nn.GELU, init_args: {aproximate: tanh}}}",
        ),
        ("base.yaml", "settings.model.init_args.act.init_args.aproximate", "did you mean 'approximate'"),
    ),
    BadConfig(
        "nested_spec_unknown_key",
        _base(
            "class_path: tests.tiny.TinyClassifier\n    init_args: {hidden: 4, lr: 0.1}",
            "class_path: tests.tiny_nested.ActClassifier\n"
            "    init_args: {act: {class_path: torch.nn.GELU, init_arg: {approximate: tanh}}}",
        ),
        ("base.yaml", "settings.model.init_args.act.init_arg", "did you mean 'init_args'"),
    ),
    BadConfig(
        "nested_spec_for_a_float",
        _base("hidden: 4, lr: 0.1", "hidden: 4, lr: {class_path: torch.nn.GELU}"),
        ("base.yaml", "settings.model.init_args.lr", "must be float"),
    ),
    BadConfig(
        "override_nested_init_arg_wrong_type",
        _base("class_path: tests.tiny.TinyClassifier", "class_path: tests.tiny_nested.ActClassifier"),
        ("--set", "model.init_args.act.init_args.approximate", "must be str"),
        ("model.init_args.act={class_path: torch.nn.GELU, init_args: {approximate: 1.5}}",),
    ),
    BadConfig(
        "trainer_argument_not_in_installed_lightning",
        {
            "experiment.yaml": "name: x\nid: 1\nsettings:\n"
            "  trainer: {max_epochs: 1, enable_autolog_hparam: false}\n"
        },
        ("experiment.yaml", "settings.trainer.enable_autolog_hparam", "installed lightning.Trainer"),
    ),
    BadConfig(
        "trainer_several_devices",
        _base(
            "  trainer: {enable_progress_bar: false}\n",
            "  trainer: {enable_progress_bar: false, accelerator: cpu, devices: 2, strategy: ddp}\n",
        ),
        ("base.yaml", "settings.trainer.devices", "cannot follow a fit across several", "ExpmanLogger"),
    ),
    BadConfig(
        "trainer_all_devices_as_text",
        _base("  trainer: {enable_progress_bar: false}\n", "  trainer: {devices: '0,1'}\n"),
        ("base.yaml", "settings.trainer.devices", "'0,1'", "cannot follow a fit across several"),
    ),
    BadConfig(
        "trainer_several_nodes",
        _base("  trainer: {enable_progress_bar: false}\n", "  trainer: {num_nodes: 2}\n"),
        ("base.yaml", "settings.trainer.num_nodes", "cannot follow a fit across several"),
    ),
    BadConfig(
        "test_mode",
        _base("  seed: 1\n", "  seed: 1\n  test: sometimes\n"),
        ("base.yaml", "settings.test", "auto, true or false", "sometimes"),
    ),
    BadConfig(
        "pipeline_path_not_found",
        {"experiment.yaml": "name: x\nid: 1\npipeline: tests.tiny.NoSuchPipeline\n"},
        ("experiment.yaml", "pipeline", "'NoSuchPipeline' is not defined"),
    ),
    BadConfig(
        "top_level_typo",
        _base("  trainer: {enable_progress_bar: false}\n", "  trainr: {enable_progress_bar: false}\n"),
        ("base.yaml", "settings.trainr", "did you mean 'trainer'"),
    ),
    BadConfig(
        "callbacks_not_list",
        _base("  callbacks:\n", "  callbacks: {type: checkpoint}\n  unused:\n"),
        ("base.yaml", "settings.callbacks", "must be a list"),
    ),
    BadConfig(
        "callback_unknown_type",
        _base("{type: early_stopping,", "{type: early_stop,"),
        ("base.yaml", "settings.callbacks[0].type", "'early_stop'", "did you mean 'early_stopping'"),
    ),
    BadConfig(
        "callback_without_type",
        _base("    - {type: metrics_tracker}\n", "    - {monitor: val_loss}\n"),
        ("base.yaml", "settings.callbacks[2]", "needs 'type'"),
    ),
    BadConfig("seed_negative", _base("  seed: 1\n", "  seed: -1\n"), ("base.yaml", "settings.seed", "-1")),
    BadConfig("seed_not_int", _base("  seed: 1\n", "  seed: abc\n"), ("base.yaml", "settings.seed", "'abc'")),
    BadConfig(
        "interpolation_missing_key",
        _base(
            "init_args: {n: 32, batch_size: 8}", "init_args: {n: 32, batch_size: '${model.init_args.batch}'}"
        ),
        ("base.yaml", "settings.data.init_args.batch_size", "${model.init_args.batch}"),
    ),
    BadConfig(
        "mandatory_value_missing",
        _base("hidden: 4, lr: 0.1", "hidden: 4, lr: '???'"),
        ("base.yaml", "settings.model.init_args.lr", "'???'"),
    ),
    # --- env.yaml
    BadConfig(
        "env_unknown_key",
        {"env.yaml": "workspce: out\n"},
        ("env.yaml", "workspce", "did you mean 'workspace'"),
    ),
    BadConfig("env_verbose_not_bool", {"env.yaml": "verbose: loud\n"}, ("env.yaml", "verbose", "'loud'")),
    BadConfig(
        "env_tracker_unknown_type",
        {"env.yaml": "trackers:\n  - {type: mlfow}\n"},
        ("env.yaml", "trackers[0].type", "did you mean 'mlflow'"),
    ),
    BadConfig(
        "env_trackers_not_list",
        {"env.yaml": "trackers: {type: db}\n"},
        ("env.yaml", "trackers", "must be a list"),
    ),
    # --- command-line overrides
    BadConfig(
        "override_without_equals", {}, ("--set", "KEY=VALUE", "trainer.max_epochs"), ("trainer.max_epochs",)
    ),
    BadConfig(
        "override_unknown_key",
        {},
        ("--set", "modle.init_args.lr", "did you mean 'model.init_args.lr'"),
        ("modle.init_args.lr=0.1",),
    ),
    BadConfig(
        "override_trainer_typo",
        {},
        ("--set", "trainer.max_epoch", "did you mean 'max_epochs'"),
        ("trainer.max_epoch=2",),
    ),
    BadConfig(
        "override_bad_value", {}, ("--set", "trainer.max_epochs", "'two'"), ("trainer.max_epochs=two",)
    ),
    BadConfig(
        "override_settings_prefix",
        {},
        ("--set", "relative to settings", "trainer.max_epochs"),
        ("settings.trainer.max_epochs=2",),
    ),
    BadConfig(
        "override_grid_key",
        {"trials.yaml": "- name: a\n  grid: {model.init_args.lr: [0.1, 0.2]}\n"},
        ("--set", "model.init_args.lr", "grid"),
        ("model.init_args.lr=0.5",),
    ),
    # --- issue 13: values checked against annotations before anything runs
    BadConfig(
        "callback_kwarg_misspelled",
        _base("patience: 2}", "patience: 2, monitr: val_loss}"),
        ("base.yaml", "settings.callbacks[0].monitr", "did you mean 'monitor'"),
    ),
    BadConfig(
        "callback_kwarg_wrong_type",
        _base("patience: 2}", "patience: two}"),
        ("base.yaml", "settings.callbacks[0].patience", "must be int", "'two'"),
    ),
    BadConfig(
        "callback_forwarded_kwarg_wrong_type",
        _base("interval: 1}", "interval: 1, save_top_k: many}"),
        ("base.yaml", "settings.callbacks[1].save_top_k", "'many'"),
    ),
    BadConfig(
        "callback_interval_wrong_type",
        _base("interval: 1}", "interval: abc}"),
        ("base.yaml", "settings.callbacks[1].interval", "'abc'"),
    ),
    BadConfig(
        "callback_class_path_kwarg_wrong_type",
        _base(
            "    - {type: metrics_tracker}\n",
            "    - {class_path: lightning.pytorch.callbacks.EarlyStopping,"
            " init_args: {monitor: val_loss, patience: [1]}}\n",
        ),
        ("base.yaml", "settings.callbacks[2].init_args.patience", "[1]"),
    ),
    BadConfig(
        "callback_class_path_is_function",
        _base("    - {type: metrics_tracker}\n", "    - {class_path: tests.tiny.fast_trainer_kwargs}\n"),
        ("base.yaml", "settings.callbacks[2].class_path", "is a function, not a class"),
    ),
    BadConfig(
        "model_class_path_is_function",
        _base("class_path: tests.tiny.TinyClassifier", "class_path: tests.tiny.fast_trainer_kwargs"),
        ("base.yaml", "settings.model.class_path", "'tests.tiny.fast_trainer_kwargs' is a function"),
    ),
    BadConfig(
        "model_init_arg_wrong_type",
        _base("hidden: 4, lr: 0.1", "hidden: four, lr: 0.1"),
        ("base.yaml", "settings.model.init_args.hidden", "must be int", "'four'"),
    ),
    BadConfig(
        "model_init_arg_bool_for_float",
        _base("hidden: 4, lr: 0.1", "hidden: 4, lr: true"),
        ("base.yaml", "settings.model.init_args.lr", "must be float", "True"),
    ),
    BadConfig(
        "data_init_arg_wrong_type",
        _base("n: 32, batch_size: 8", "n: 32, batch_size: eight"),
        ("base.yaml", "settings.data.init_args.batch_size", "'eight'"),
    ),
    BadConfig(
        "override_init_arg_wrong_type",
        {},
        ("--set", "model.init_args.hidden", "must be int", "'abc'"),
        ("model.init_args.hidden=abc",),
    ),
    BadConfig(
        "trial_init_arg_wrong_type",
        {"trials.yaml": "- name: a\n  settings: {model: {init_args: {hidden: [4]}}}\n"},
        ("trials.yaml", "[0].settings.model.init_args.hidden", "[4]"),
    ),
    # --- issue 13: sizes
    BadConfig(
        "repeat_huge",
        {"trials.yaml": "- name: a\n  repeat: 1000000000000\n"},
        ("trials.yaml", "[0].repeat", "1,000,000,000,000", "at most 100,000"),
    ),
    BadConfig(
        "grid_million_trials",
        {
            "trials.yaml": "- name: a\n  grid:\n"
            + "".join(f"    +g{k}: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]\n" for k in range(6))
        },
        ("trials.yaml", "[0].grid", "1,000,000 runs", "at most 100,000"),
    ),
    BadConfig(
        "grid_times_repeat_over_limit",
        {"trials.yaml": "- name: a\n  repeat: 60000\n- name: b\n  repeat: 60000\n"},
        ("trials.yaml", "[1].repeat", "120,000 runs"),
    ),
    BadConfig(
        "yaml_alias_bomb",
        {"base.yaml": _BASE + "bomb:\n" + "".join(f"  {line}\n" for line in _ALIAS_BOMB)},
        ("base.yaml", "aliases expand to more than 1,000,000 values"),
    ),
    BadConfig(
        "override_alias_bomb",
        {},
        ("--set", "aliases expand to more than 1,000,000 values"),
        ("+bomb={" + ", ".join(_ALIAS_BOMB) + "}",),
    ),
    # --- issue 13: env.yaml trackers and workspace, named before anything is written
    BadConfig(
        "tracker_option_misspelled",
        {"env.yaml": "trackers: [{type: mlflow, trackin_uri: 'sqlite:///m.db'}]\n"},
        ("env.yaml", "trackers[0].trackin_uri", "did you mean 'tracking_uri'"),
    ),
    BadConfig(
        "tracker_option_wrong_type",
        {"env.yaml": "trackers: [{type: log, verbose: loud}]\n"},
        ("env.yaml", "trackers[0].verbose", "must be bool", "'loud'"),
    ),
    BadConfig(
        "tracker_option_bad_choice",
        {"env.yaml": "trackers: [{type: mlflow, log_checkpoints: maybe}]\n"},
        ("env.yaml", "trackers[0].log_checkpoints", "'maybe'"),
    ),
    BadConfig(
        "tracker_log_dir_not_a_path",
        {"env.yaml": "trackers: [{type: tensorboard, log_dir: 5}]\n"},
        ("env.yaml", "trackers[0].log_dir", "got 5"),
    ),
    BadConfig(
        "db_url_bad_scheme",
        {"env.yaml": "trackers: [{type: db, url: 'ftp://host/x'}]\n"},
        ("env.yaml", "trackers[0].url", "ftp://host/x"),
    ),
    BadConfig(
        "db_url_not_a_string",
        {"env.yaml": "trackers: [{type: db, url: 5}]\n"},
        ("env.yaml", "trackers[0].url", "got 5"),
    ),
    BadConfig(
        "db_url_no_database",
        {"env.yaml": "trackers: [{type: db, url: 'mysql://me:pw@localhost'}]\n"},
        ("env.yaml", "trackers[0].url", "names no database", "me:***@"),
    ),
    BadConfig(
        "workspace_is_a_file",
        {"env.yaml": "workspace: cfg/base.yaml\n"},
        ("env.yaml", "workspace", "is a file, not a folder"),
    ),
    BadConfig(
        "workspace_under_a_file",
        {"env.yaml": "workspace: cfg/base.yaml/runs\n"},
        ("env.yaml", "workspace", "which is a file"),
    ),
]
