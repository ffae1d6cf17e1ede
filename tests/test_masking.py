"""One masking rule (lightning_expman.masking): keys, URL passwords, remembered secrets as whole
words; saved configs and stored rows, the console stream and the log-file filter that apply it."""

from __future__ import annotations

import io
import logging

import pytest

from lightning_expman.db import DatabaseManager
from lightning_expman.db import models as m
from lightning_expman.masking import (
    MaskingFilter,
    MaskingStream,
    is_secret_key,
    mask_secrets,
    mask_text,
    mask_url,
    remember_secrets,
)


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


def test_remembered_secrets_are_masked_as_whole_words_anywhere():
    remember_secrets({"service": {"token": "tok3n-value-9"}, "url": "mysql://me:s3cr3tpw@h/db", "pwd": "ab"})
    assert mask_text("error: key tok3n-value-9 refused") == "error: key *** refused"
    assert mask_text("login s3cr3tpw failed") == "login *** failed"  # a URL's password, alone
    assert mask_text("tok3n-value-9x tok3n-value-9_loss") == "tok3n-value-9x tok3n-value-9_loss"
    assert mask_text("ab abc") == "ab abc"  # too short to search for (masked by key only)
    assert mask_secrets({"pwd": "ab", "note": "s3cr3tpw"}) == {"pwd": "***", "note": "***"}
    remember_secrets({"token": "${oc.env:TOKEN}"})  # an interpolation is not the secret
    assert mask_text("${oc.env:TOKEN}") == "${oc.env:TOKEN}"


def test_masking_stream_finds_a_secret_split_across_writes():
    remember_secrets({"api_key": "splitsecret42"})
    out = io.StringIO()
    stream = MaskingStream(out)
    stream.write("key=split")
    stream.write("secret42 and more\nnext ")
    assert out.getvalue() == "key=*** and more\n"
    stream.write("splitsecret42")
    stream.flush()  # a partial line is written (masked) on flush
    assert out.getvalue() == "key=*** and more\nnext ***"


def test_masking_filter_masks_messages_arguments_and_tracebacks():
    remember_secrets({"password": "filterpw99"})
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(MaskingFilter())
    log = logging.getLogger("tests.masking")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("connect %s", "postgresql://me:filterpw99@h/db")
        try:
            raise RuntimeError("refused filterpw99")
        except RuntimeError:
            log.exception("failed")
    finally:
        log.removeHandler(handler)
    text = out.getvalue()
    assert "filterpw99" not in text
    assert "postgresql://me:***@h/db" in text and "RuntimeError: refused ***" in text
