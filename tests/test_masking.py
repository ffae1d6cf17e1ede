"""One masking rule for saved configs and stored rows (lightning_expman.masking)."""

from __future__ import annotations

import pytest

from lightning_expman.db import DatabaseManager
from lightning_expman.db import models as m
from lightning_expman.masking import is_secret_key, mask_secrets, mask_url


@pytest.mark.parametrize(
    "key",
    ["password", "db_password", "DB-PASSWORD", "api_key", "apikey", "token", "aws.secret_key", "access_key"],
)
def test_secret_keys(key):
    assert is_secret_key(key)


@pytest.mark.parametrize("key", ["tokenizer", "max_tokens", "passwords_file", "keyboard", "lr"])
def test_ordinary_keys(key):
    assert not is_secret_key(key)


def test_url_passwords_are_masked_even_inside_text():
    assert mask_url("mysql://root:p@ss@h:3306/db") == "mysql://root:***@h:3306/db"
    assert mask_url("cannot reach postgresql://me:hunter2@db/x: timeout") == (
        "cannot reach postgresql://me:***@db/x: timeout"
    )
    assert mask_url("sqlite:///runs.db") == "sqlite:///runs.db"


def test_nested_configs_are_masked_without_touching_the_input():
    config = {"trackers": [{"url": "mysql://u:pw@h/d", "password": "pw"}], "token": "", "tokenizer": "bpe"}
    assert mask_secrets(config) == {
        "trackers": [{"url": "mysql://u:***@h/d", "password": "***"}],
        "token": "",
        "tokenizer": "bpe",
    }
    assert config["trackers"][0]["password"] == "pw"


def test_stored_params_and_configs_use_the_same_rule(sqlite_url):
    with DatabaseManager(sqlite_url) as db:
        experiment = db.create_experiment("e")
        trial = db.get_or_create_trial(experiment.id, "t", config={"aws": {"secret_key": "abc"}})
        run = db.create_trial_run(trial.id)
        db.log_params(run.id, {"aws": {"secret_key": "abc", "region": "eu"}, "url": "mysql://u:pw@h/d"})
        params = {p.key: p.value for p in m.RunParam.select().where(m.RunParam.trial_run == run.id)}
        stored_trial = m.Trial.get_by_id(trial.id)
    assert params == {"aws.secret_key": "***", "aws.region": "eu", "url": "mysql://u:***@h/d"}
    assert stored_trial.config == {"aws": {"secret_key": "***"}}
