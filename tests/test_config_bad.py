"""The bad-configuration corpus: every case gives its one-line ConfigError naming file and key."""

from __future__ import annotations

import pytest

from lightning_expman.config import load
from lightning_expman.errors import ConfigError
from tests.bad_config_cases import BAD_CONFIGS, GOOD_FILES, write_config


def test_corpus_is_large_and_distinct():
    names = [c.name for c in BAD_CONFIGS]
    assert len(names) >= 60
    assert len(set(names)) == len(names)
    assert len({(tuple(sorted(c.files.items(), key=str)), c.overrides) for c in BAD_CONFIGS}) == len(names)


def test_good_files_load(tmp_path):
    spec = load(write_config(tmp_path / "good", {}))
    assert [t.name for t in spec.trials] == ["a", "b"]


@pytest.mark.parametrize("case", BAD_CONFIGS, ids=[c.name for c in BAD_CONFIGS])
def test_bad_config(case, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = write_config(tmp_path / "cfg", case.files)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    with pytest.raises(ConfigError) as info:
        load(folder, overrides=list(case.overrides))
    message = str(info.value)
    assert "\n" not in message and "\r" not in message
    for part in case.expected:
        assert part in message, f"{part!r} not in {message!r}"
    # load writes nothing
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
    assert not (tmp_path / "outputs").exists()


def test_every_case_changes_something():
    for case in BAD_CONFIGS:
        changed = any(GOOD_FILES.get(k) != v for k, v in case.files.items())
        assert changed or case.overrides, case.name
