"""class_path checks from source: nothing is imported, re-exports are followed, __init__ args read."""

from __future__ import annotations

import os
import sys
import textwrap

import pytest

from lightning_expman.config.classpath import _index, resolve_target


@pytest.fixture
def pkg(tmp_path, monkeypatch):
    """A package ``cp_pkg`` whose __init__ would fail if it were executed."""
    root = tmp_path / "cp_pkg"
    (root / "sub").mkdir(parents=True)
    (root / "__init__.py").write_text(
        "raise RuntimeError('package code must not run')\nfrom .models import Net\n"
    )
    (root / "models.py").write_text(
        textwrap.dedent(
            """
            raise RuntimeError('module code must not run')
            import dataclasses

            class Net:
                def __init__(self, hidden: int = 8, lr: float = 0.1, *, dropout: float = 0.0) -> None:
                    pass

            class Flexible(Net):
                def __init__(self, a, **kwargs):
                    pass

            class Inherits(Net):
                pass

            @dataclasses.dataclass
            class Cfg:
                width: int = 3
                depth: int = 2

            def make_net(size, act="relu"):
                pass

            ALIAS = Net
            """
        )
    )
    (root / "sub" / "__init__.py").write_text("from ..models import *\n")
    (root / "lazy.py").write_text("def __getattr__(name):\n    return name\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    _index.cache_clear()
    resolve_target.cache_clear()
    yield "cp_pkg"
    _index.cache_clear()
    resolve_target.cache_clear()


def test_resolves_without_running_package_code(pkg):
    target = resolve_target("cp_pkg.models.Net")
    assert target.error is None
    assert target.params == ("hidden", "lr", "dropout")
    assert "cp_pkg" not in sys.modules and "cp_pkg.models" not in sys.modules


def test_signatures(pkg):
    assert resolve_target("cp_pkg.models.Flexible").params is None  # **kwargs: anything goes
    assert resolve_target("cp_pkg.models.Inherits").params is None  # inherited: unknown
    assert resolve_target("cp_pkg.models.Cfg").params == ("width", "depth")
    assert resolve_target("cp_pkg.models.make_net").params == ("size", "act")
    assert resolve_target("cp_pkg.models.ALIAS").error is None


def test_re_exports_are_followed(pkg):
    assert resolve_target("cp_pkg.Net").params == ("hidden", "lr", "dropout")  # from .models import Net
    assert resolve_target("cp_pkg.sub.Net").params == ("hidden", "lr", "dropout")  # from ..models import *
    assert resolve_target("cp_pkg.lazy.Anything").error is None  # module __getattr__


def test_errors_name_the_closest(pkg):
    assert "did you mean 'Net'" in resolve_target("cp_pkg.models.Nett").error
    assert "did you mean 'models'" in resolve_target("cp_pkg.modles.Net").error
    assert "not found" in resolve_target("cp_pkg_missing.models.Net").error
    assert "dotted path" in resolve_target("Net").error
    assert "dotted path" in resolve_target("cp_pkg..Net").error


def test_compiled_module_falls_back_to_import():
    target = resolve_target("math.nope")
    assert target.error is not None and "has no attribute 'nope'" in target.error
    assert resolve_target("math.sqrt").error is None


def test_a_fresh_process_reads_the_index_from_the_disk_cache_until_the_file_changes(pkg, tmp_path):
    assert resolve_target(f"{pkg}.models.Net").params == ("hidden", "lr", "dropout")
    assert list((tmp_path / "cache" / "lightning_expman" / "classpath").glob("*.pickle"))
    models = tmp_path / "cp_pkg" / "models.py"
    before = os.stat(models)
    # Same size and modification time, another parameter name: only the cache can still say "hidden".
    models.write_text(models.read_text().replace("hidden: int", "hidxen: int"))
    os.utime(models, ns=(before.st_atime_ns, before.st_mtime_ns))
    _index.cache_clear()  # as in a fresh process
    resolve_target.cache_clear()
    assert resolve_target(f"{pkg}.models.Net").params == ("hidden", "lr", "dropout")
    os.utime(models, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000))  # a changed file: parsed again
    _index.cache_clear()
    resolve_target.cache_clear()
    assert resolve_target(f"{pkg}.models.Net").params == ("hidxen", "lr", "dropout")
