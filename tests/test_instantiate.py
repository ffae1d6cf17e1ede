"""``lightning_expman.instantiate``: the one builder of ``{class_path, init_args}`` specs (recursive)."""

from __future__ import annotations

import collections
import subprocess
import sys
import types

import pytest

from lightning_expman.errors import ConfigError
from lightning_expman.instantiate import import_object, instantiate, instantiate_all, instantiate_class


def test_nested_specs_in_dicts_and_lists_are_built_first():
    spec = {
        "class_path": "types.SimpleNamespace",
        "init_args": {
            "func": {"class_path": "collections.OrderedDict"},
            "items": [{"class_path": "collections.Counter", "init_args": {"a": 2}}, 3],
            "deep": {"plain": {"class_path": "collections.deque", "init_args": {"maxlen": 2}}},
        },
    }
    built = instantiate(spec, key="model")
    assert isinstance(built, types.SimpleNamespace) and built.func == collections.OrderedDict()
    counter, three = built.items
    assert counter == collections.Counter(a=2) and three == 3
    assert built.deep["plain"].maxlen == 2
    assert instantiate_all([{"class_path": "collections.OrderedDict"}, {"x": 1}]) == [
        collections.OrderedDict(),
        {"x": 1},
    ]


def test_errors_name_the_nested_key_and_the_value():
    bad_path = {
        "class_path": "functools.partial",
        "init_args": {"func": {"class_path": "collections.OrderedDic"}},
    }
    with pytest.raises(ConfigError) as info:
        instantiate(bad_path, key="model")
    message = str(info.value)
    assert message.startswith("model.init_args.func.class_path: 'collections.OrderedDic'")
    assert "did you mean 'OrderedDict'" in message and "\n" not in message
    bad_kwarg = {"class_path": "logging.Formatter", "init_args": {"fmt": "%(message)s", "datefm": "%H"}}
    with pytest.raises(
        ConfigError, match=r"^data\.init_args\.x\[1\]\.init_args\.datefm: .*did you mean 'datefmt'"
    ):
        instantiate({"class_path": "builtins.dict", "init_args": {"x": [1, bad_kwarg]}}, key="data")
    with pytest.raises(
        ConfigError, match=r"^model\.init_arg: unknown key 'init_arg'; did you mean 'init_args'"
    ):
        instantiate({"class_path": "collections.Counter", "init_arg": {}}, key="model")
    with pytest.raises(ConfigError, match=r"^trackers: tracker 'x': .*'nope'"):
        instantiate_class(collections.deque, {"nope": 1}, key="trackers", label="tracker 'x'")


def test_import_object_forms():
    assert import_object("collections.OrderedDict") is collections.OrderedDict
    assert import_object("collections:OrderedDict") is collections.OrderedDict
    with pytest.raises(ConfigError, match=r"^pipeline: 'Nope' must look like"):
        import_object("Nope", key="pipeline")
    with pytest.raises(ConfigError, match=r"^x: 'no_such_pkg\.A': cannot import module 'no_such_pkg'"):
        import_object("no_such_pkg.A", key="x")


def test_importing_it_is_light():
    code = (
        "import sys, lightning_expman.instantiate\nprint(sorted({'torch', 'lightning'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
