"""Bad command-line arguments and environment for the read side and ``expman run`` (the config
file corpus is ``tests/bad_config_cases.py``): each case exits 1 (runtime: a database that cannot
be read, an unknown experiment or run, a file that cannot be written) or 2 (usage/config: a
malformed flag, URL or path)
with one line naming the culprit, and leaves the folder and the database byte for byte as they were.

Read commands open databases read-only: an empty file, a foreign SQLite file or a text file
given as ``--db`` is reported and never modified, and no ``-wal``/``-shm`` file appears.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from tests.experiment_support import expman, write_config
from tests.query_data import build_demo


def snapshot(root: Path) -> dict[str, str]:
    """Every file below ``root`` with its SHA-1 (folders as ``<dir>``)."""
    return {
        p.relative_to(root).as_posix(): hashlib.sha1(p.read_bytes()).hexdigest() if p.is_file() else "<dir>"
        for p in root.rglob("*")
    }


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory) -> Path:
    """A real expman database (SQLite, checkpointed: no -wal file), built once."""
    path = tmp_path_factory.mktemp("demo") / "demo.db"
    build_demo(f"sqlite:///{path}")
    return path


@pytest.fixture
def folder(tmp_path, demo_db) -> Path:
    """A working folder holding a copy of the demo database, an empty file, a foreign SQLite
    database, a text file and a sub-folder."""
    import sqlite3

    shutil.copy(demo_db, tmp_path / "runs.db")
    (tmp_path / "empty.db").write_bytes(b"")
    conn = sqlite3.connect(tmp_path / "foreign.db")
    conn.execute("CREATE TABLE customers (id INTEGER, name TEXT)")
    conn.commit()
    conn.close()
    (tmp_path / "notes.txt").write_text("not a database\n")
    (tmp_path / "out").mkdir()
    return tmp_path


def check(folder: Path, args: tuple[str, ...], code: int, expected: tuple[str, ...]) -> None:
    before = snapshot(folder)
    got, out, err = expman(*args, cwd=folder)
    assert got == code, (args, out, err)
    assert err.startswith("expman: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for part in expected:
        assert part in err, (part, err)
    assert snapshot(folder) == before  # nothing created, nothing altered


DB = "sqlite:///runs.db"

READ_CASES = [
    # --db: files that are not (our) databases, read-only (runtime errors)
    (("ls", "--db", "sqlite:///empty.db"), 1, ("empty.db", "no expman tables")),
    (("ls", "--db", "sqlite:///foreign.db"), 1, ("foreign.db", "no expman tables")),
    (("show", "digits", "--db", "sqlite:///foreign.db"), 1, ("foreign.db",)),
    (("ls", "--db", "sqlite:///notes.txt"), 1, ("notes.txt",)),
    (("ls", "--db", "sqlite:///missing.db"), 1, ("missing.db",)),
    (("ls", "--db", "sqlite:///out"), 1, ("out",)),
    (("ls", "--db", "mysql://me:hunter22@127.0.0.1:1/x"), 1, ("me:***@", "127.0.0.1:1")),
    # --db: malformed URLs (usage errors)
    (("ls", "--db", "ftp://host/x"), 2, ("--db", "ftp://host/x", "expected one of")),
    (("show", "1", "--db", "mysql://me:hunter22@127.0.0.1"), 2, ("--db", "names no database", "me:***@")),
    # unknown references (runtime errors)
    (("show", "nosuchexperiment", "--db", DB), 1, ("nosuchexperiment",)),
    (("show", "99999", "--db", DB), 1, ("99999",)),
    (("diff", "1", "99999", "--db", DB), 1, ("99999",)),
    (("report", "--run", "99999", "-o", "r.html", "--db", DB), 1, ("99999",)),
    (("export", "nosuchexperiment", "-o", "x.csv", "--db", DB), 1, ("nosuchexperiment",)),
    (("compare", "digits", "--metric", "nosuchmetric", "--db", DB), 1, ("nosuchmetric",)),
    # malformed arguments (usage errors)
    (
        ("export", "digits", "-o", "x.csv", "--table", "trials", "--db", DB),
        2,
        ("--table trials needs --metric",),
    ),
    (("report", "-o", "r.html", "--db", DB), 2, ("needs an EXPERIMENT",)),
    # -o: usage errors (exit 2)
    (("export", "digits", "-o", "", "--db", DB), 2, ("--output", "must name a file")),
    (("export", "digits", "-o", "out", "--db", DB), 2, ("--output", "'out' is a folder")),
    (("export", "digits", "-o", ".", "--db", DB), 2, ("--output", "'.' is a folder")),
    (("export", "digits", "-o", "notes.txt/x.csv", "--db", DB), 2, ("notes.txt", "is a file, not a folder")),
    (("export", "digits", "-o", "x.xlsx", "--db", DB), 2, ("unknown export format 'xlsx'",)),
    (("report", "digits", "-o", "", "--db", DB), 2, ("--output", "must name a file")),
    (("report", "digits", "-o", "out", "--db", DB), 2, ("'out' is a folder", "report.html")),
    # -o: runtime errors (exit 1)
    (("export", "digits", "-o", "/dev/full", "--db", DB), 1, ("/dev/full", "No space left on device")),
    (("report", "digits", "-o", "/dev/full", "--db", DB), 1, ("/dev/full", "No space left on device")),
    (("export", "digits", "-o", "/proc/expman.csv", "--db", DB), 1, ("/proc/expman.csv", "cannot write")),
    (("report", "digits", "-o", "/proc/self/status", "--db", DB), 1, ("/proc/self/status", "cannot write")),
]


@pytest.mark.parametrize(("args", "code", "expected"), READ_CASES, ids=[" ".join(c[0]) for c in READ_CASES])
def test_read_command_bad_input(folder, args, code, expected):
    check(folder, args, code, expected)


def test_read_commands_leave_the_database_file_untouched(folder):
    before = snapshot(folder)
    for args in (("ls",), ("show", "digits"), ("show", "1"), ("compare", "digits", "--metric", "val_loss")):
        code, _, err = expman(*args, "--db", DB, cwd=folder)
        assert code == 0, err
    assert snapshot(folder) == before  # no -wal/-shm, not a byte changed


def test_bad_db_in_environment_is_named(folder, monkeypatch):
    monkeypatch.setenv("EXPMAN_DB", "sqlite:///foreign.db")
    check(folder, ("ls",), 1, ("foreign.db",))
    monkeypatch.setenv("EXPMAN_DB", "nonsense")
    check(folder, ("ls",), 2, ("EXPMAN_DB", "nonsense"))


RUN_CASES = [
    (("--db", "ftp://host/x"), 2, ("--db", "ftp://host/x")),
    (("--db", "mysql://me:hunter22@127.0.0.1"), 2, ("--db", "names no database", "me:***@")),
    (("--db", ""), 2, ("--db",)),
    (("--db", "mysql://me:hunter22@127.0.0.1:1/x"), 1, ("cannot open", "127.0.0.1:1")),  # unreachable
    (("--set", "+x=" + "[" * 300 + "]" * 300), 2, ("--set", "nested more than 200 levels")),
    (("--workers", "-3"), 2, ("--workers", "-3")),
    (("--stale-after", "soon"), 2, ("--stale-after", "soon")),
]


@pytest.mark.parametrize(("args", "code", "expected"), RUN_CASES, ids=[" ".join(c[0]) for c in RUN_CASES])
def test_run_bad_arguments(tmp_path, args, code, expected):
    cfg = write_config(tmp_path, [{"name": "a", "id": 1}])
    before = snapshot(tmp_path)
    got, out, err = expman("run", str(cfg), *args, cwd=tmp_path)
    assert got == code, err
    assert err.count("\n") >= 1 and "Traceback" not in err
    last = err.strip().splitlines()[-1]  # argparse prints its usage line first
    for part in expected:
        assert part in last, (part, err)
    assert "hunter22" not in out + err
    assert snapshot(tmp_path) == before


def test_missing_environment_variable_is_named(tmp_path, monkeypatch):
    monkeypatch.delenv("EXPMAN_SURELY_UNSET", raising=False)
    cfg = write_config(
        tmp_path, [{"name": "a", "id": 1, "settings": {"tag": "${oc.env:EXPMAN_SURELY_UNSET}"}}]
    )
    before = snapshot(tmp_path)
    code, _, err = expman("run", str(cfg), cwd=tmp_path)
    assert code == 2 and err.count("\n") == 1 and "EXPMAN_SURELY_UNSET" in err and "trials.yaml" in err
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("value", ["soon", "-1", "nan"])
def test_a_bad_db_retry_bound_is_named_and_nothing_is_written(tmp_path, monkeypatch, value):
    monkeypatch.setenv("EXPMAN_DB_RETRY_FOR", value)
    cfg = write_config(tmp_path, [{"name": "a", "id": 1}])
    before = snapshot(tmp_path)
    code, out, err = expman("run", str(cfg), cwd=tmp_path)
    assert (code, out) == (2, "")
    assert err == f"expman: error: $EXPMAN_DB_RETRY_FOR must be a number of seconds >= 0, got {value!r}\n"
    assert snapshot(tmp_path) == before


def test_huge_grid_dry_run_is_refused_at_once(tmp_path):
    grid = {f"+g{k}": list(range(10)) for k in range(6)}
    cfg = write_config(tmp_path, [{"name": "a", "id": 1, "grid": grid}])
    code, out, err = expman("run", str(cfg), "--dry-run", cwd=tmp_path)
    assert code == 2 and out == "" and "1,000,000 runs" in err and "trials.yaml" in err


@pytest.fixture
def full_disk(tmp_path):
    """A 600 KiB tmpfs (needs root; skipped elsewhere): the database and workspace fill it up."""
    import subprocess

    mount = tmp_path / "full"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=600k", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)  # lazy: a log handler may still hold a file


def test_full_disk_gives_one_line_errors_not_tracebacks(tmp_path, full_disk):
    cfg = write_config(tmp_path, [{"name": "a", "id": 1, "repeat": 3}])
    env = cfg / "env.yaml"
    env.write_text(
        f"workspace: {full_disk}/ws\ntrackers: [{{type: db, url: 'sqlite:///{full_disk}/e.db'}}]\n",
        encoding="utf-8",
    )
    code, out, err = expman("run", str(cfg), cwd=tmp_path)
    assert code == 1  # runs failed: a runtime error, not a configuration error
    assert "Traceback" not in err and "Logging error" not in err
    # (Lightning's "INFO: GPU available..." lines reach stderr here because pytest configured
    # logging before lightning was imported; a real console does not show them.)
    lines = [line for line in err.splitlines() if not line.startswith("INFO: ")]
    assert lines and all(line.startswith("expman: error: ") for line in lines), err
    assert "FAILED" in out


def test_read_only_workspace_is_a_config_error(tmp_path):
    import subprocess

    mount = tmp_path / "ro"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a read-only tmpfs here: {done.stderr.decode().strip()}")
    try:
        cfg = write_config(tmp_path, [{"name": "a", "id": 1}])
        (cfg / "env.yaml").write_text(f"workspace: {mount}/ws\n", encoding="utf-8")
        before = snapshot(tmp_path)
        code, out, err = expman("run", str(cfg), cwd=tmp_path)
        assert code == 2 and out == "" and err.count("\n") == 1, err
        assert "env.yaml: workspace: cannot write in" in err and str(mount) in err
        assert snapshot(tmp_path) == before
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)  # lazy: a log handler may still hold a file
