"""Conventions every ``expman`` command follows: ``--help`` with a description and examples; exit
code 2 for usage/configuration errors and 1 for runtime errors; ``--format table|md|csv|json`` on
the table commands; a reader that stops early (``| head -1``) does not change the exit code; a
missing optional dependency is one line naming the extra.

The read commands run in-process on the tests' demo database (SQLite); the pipe and the missing
extra run real ``expman`` subprocesses.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lightning_expman.cli import build_parser, main
from tests.experiment_support import write_config
from tests.query_data import build_demo

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return build_demo(f"sqlite:///{tmp_path_factory.mktemp('conventions') / 'expman.db'}")


@pytest.fixture
def expman(demo, capsys, monkeypatch):
    """``expman ARGS`` in-process (``--db`` the demo unless given); returns (code, stdout, stderr);
    argparse's usage errors give their SystemExit code."""
    monkeypatch.setenv("COLUMNS", "100")

    def run(*args: str, db: str | None = demo.url):
        argv = [*map(str, args), *(["--db", db] if db else [])]
        try:
            code = main(argv)
        except SystemExit as e:
            code = int(e.code or 0)
        out, err = capsys.readouterr()
        return code, out, err

    return run


# --------------------------------------------------------------------------- --help


def _commands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return {"": parser, **action.choices}


@pytest.mark.parametrize("name", list(_commands()))
def test_every_help_has_a_description_and_examples(name, capsys):
    parser = _commands()[name]
    assert parser.description and len(parser.description) > 40, name
    assert parser.epilog and parser.epilog.startswith("Examples:\n"), name
    examples = parser.epilog.splitlines()[1:]
    assert examples and all(line.startswith(f"  expman {name}".rstrip()) for line in examples), examples
    with pytest.raises(SystemExit) as e:
        main([name, "--help"] if name else ["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert parser.epilog in out  # shown as written, not re-wrapped


# --------------------------------------------------------------------------- exit codes


USAGE = [  # malformed: exit 2, whatever the database holds
    ("ls", "--no-such-flag"),
    ("ls", "--format", "xlsx"),
    ("ls", "--tag", "=x"),
    ("compare", "digits"),  # --metric missing
    ("compare", "digits", "--metric", "val_loss", "--mode", "lowest"),
    ("diff", "1", "abc"),
    ("show", "1", "--db", "ftp://host/x"),
    ("ls", "--db", "mysql://me@127.0.0.1"),  # names no database
    ("export", "digits", "-o", "out.xlsx"),
    ("export", "digits", "-o", "out.csv", "--table", "trials"),
    ("report", "-o", "r.html"),
    ("rm", "--db", "sqlite:///x.db"),  # names nothing to delete
]
RUNTIME = [  # well-formed, but the database says no: exit 1
    ("show", "nosuchexperiment"),
    ("show", "424242"),
    ("diff", "2", "424242"),
    ("compare", "nosuchexperiment", "--metric", "val_loss"),
    ("compare", "digits", "--metric", "nosuchmetric"),
    ("export", "nosuchexperiment", "-o", "out.csv"),
    ("rm", "nosuchexperiment", "--yes"),
    ("ls", "--db", "sqlite:///missing.db"),
    ("ls", "--db", "mysql://me@127.0.0.1:1/x"),  # unreachable
]


CASES = [(a, 2) for a in USAGE] + [(a, 1) for a in RUNTIME]


@pytest.mark.parametrize(("args", "code"), CASES, ids=[f"{c}: {' '.join(a)}" for a, c in CASES])
def test_exit_codes(expman, tmp_path, monkeypatch, args, code):
    monkeypatch.chdir(tmp_path)
    got, out, err = expman(*args, db=None) if "--db" in args else expman(*args)
    assert got == code, (out, err)
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].split(": ")[1] == "error", err  # argparse's or ours, one line


# --------------------------------------------------------------------------- --format


def _md(out: str) -> list[list[str]]:
    """The first Markdown table of ``out``: header and rows as cell lists (the alignment row checked)."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| "))
    table = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        table.append([c.strip() for c in line.strip("|").split(" | ")])
    assert all(c in ("---", "---:") for c in table[1]), table[1]
    return [table[0], *table[2:]]


def test_ls_formats(expman, demo):
    _, out, _ = expman("ls", "--format", "csv")
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0] == ["ID", "EXPERIMENT", "TRIALS", "RUNS", "STATUS", "STARTED", "TAGS"]
    digits = next(r for r in rows if r[0] == str(demo.experiment_id))
    assert digits[1:5] == ["digits", "3", "9", "8 completed, 1 failed"]
    _, out, _ = expman("ls", "--format", "md")
    table = _md(out)
    assert table[0][:2] == ["ID", "EXPERIMENT"] and "mnist &lt;b&gt;small&lt;/b&gt;" in out  # text, not HTML
    assert len(table) == len(rows)
    _, out, _ = expman("ls", "--format", "json")
    assert json.loads(out) == json.loads(expman("ls", "--json")[1])


def test_compare_csv_has_raw_numbers(expman, demo):
    from lightning_expman.query import Query

    with Query(demo.url) as q:
        expected = {r["trial"]: r for r in q.trial_summary("digits", "val_loss", "min")}
    code, out, _ = expman("compare", "digits", "--metric", "val_loss", "--format", "csv")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert list(rows[0]) == ["TRIAL", "HIDDEN", "LR", "VAL_LOSS MEAN", "STD", "N", "BEST RUN", "BEST"]
    for row in rows:
        assert float(row["VAL_LOSS MEAN"]) == expected[row["TRIAL"]]["mean"]  # full precision
        assert int(row["N"]) == expected[row["TRIAL"]]["n"]
    _, out, _ = expman("compare", "digits", "--metric", "val_loss", "--format", "md")
    assert out.startswith("digits (id") and _md(out)[0][1] == "TRIAL"
    assert "\n\n* best trial: lr-0.01" in out  # a blank line ends the table


def test_show_formats(expman, demo):
    rid = demo.runs["lr-0.01"][0]
    _, out, _ = expman("show", "digits", "--format", "csv")  # the runs table only
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 9 and rows[0]["RUN"].isdigit() and float(rows[0]["VAL_LOSS"]) > 0
    _, out, _ = expman("show", str(rid), "--format", "csv")  # the metrics table only
    rows = {r["METRIC"]: r for r in csv.DictReader(io.StringIO(out))}
    assert float(rows["val_loss"]["BEST"]) == demo.best_values[rid] and rows["val_loss"]["MODE"] == "min"
    _, out, _ = expman("show", str(rid), "--format", "md")
    assert "### METRICS" in out and "### ENVIRONMENT" in out
    assert "| versions | python 3.11.2, torch 2.5.0, lightning 2.4.0 |" in out
    _, out, _ = expman("show", str(rid), "--format", "json")
    assert json.loads(out)["run_id"] == rid


def test_show_run_environment_is_readable(expman, demo):
    code, out, _ = expman("show", str(demo.runs["lr-0.1"][0]))
    assert code == 0
    env = out[out.index("\nENVIRONMENT\n") :].splitlines()[3:]  # after the KEY VALUE header
    assert env[:4] == [
        "git commit  not recorded",
        "versions    python 3.11.2, torch 2.5.0, lightning 2.4.0",
        "platform    Linux",
        "host        node-1",
    ]


def test_diff_formats(expman, demo):
    a, b = demo.runs["lr-0.01"][0], demo.runs["lr-0.1"][0]
    _, out, _ = expman("diff", str(a), str(b), "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert {r["SECTION"] for r in rows} == {"config", "metric"}
    lr = next(r for r in rows if r["KEY"] == "model.lr")
    assert (lr["A"], lr["B"]) == ("0.01", "0.1")
    best = next(r for r in rows if r["KEY"] == "val_loss (best)")
    assert float(best["B - A"]) == pytest.approx(float(best["B"]) - float(best["A"]))
    _, out, _ = expman("diff", str(a), str(b), "--format", "md")
    assert "### CONFIG (" in out and "### METRICS" in out


def test_ls_keeps_the_status_column_whole(expman, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    _, out, _ = expman("ls")
    row = next(line for line in out.splitlines() if "completed, 1" in line)
    assert len(row) <= 80 and "8 completed, 1 failed" in row  # the title and the tags gave way


# --------------------------------------------------------------------------- pipes, extras


def _expman_cmd() -> list[str]:
    return [sys.executable, "-m", "lightning_expman.cli"]


def test_failing_run_piped_into_head_keeps_exit_code_1(tmp_path):
    """``expman run CFG | head -1``: the reader goes away after the first line; the grid goes on,
    and the exit code is still the failed runs' 1 (not 0, not a BrokenPipeError traceback)."""
    settings = {
        "seed": 1,
        "model": {"class_path": "tests.tiny.TinyClassifier", "init_args": {"fail_at_step": 0}},
        "data": {"class_path": "tests.tiny.TinyDataModule", "init_args": {"n": 32}},
        "trainer": {"max_epochs": 1},
    }
    cfg = write_config(tmp_path, [{"name": "a", "id": 1, "repeat": 3}], settings=settings)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with open(tmp_path / "stderr.txt", "w+") as err:
        proc = subprocess.Popen(
            [*_expman_cmd(), "run", str(cfg)],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )
        first = proc.stdout.readline()
        proc.stdout.close()  # what `head -1` does after its line
        code = proc.wait(timeout=300)
        err.seek(0)
        stderr = err.read()
    assert first.startswith("[1/3] a run 1/3 seed") and "FAILED" in first
    assert code == 1, stderr
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr and "Exception ignored" not in stderr
    from tests.experiment_support import runs_of

    assert [r["status"] for r in runs_of(tmp_path)] == ["FAILED"] * 3  # the grid went on


def test_read_command_piped_into_head_exits_0(demo, tmp_path):
    """``expman show EXPERIMENT --format csv | head -1`` on a reader that has gone: exit 0, silent."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "EXPMAN_DB": demo.url}
    proc = subprocess.Popen(
        [*_expman_cmd(), "show", "digits", "--format", "md"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    proc.stdout.close()  # gone before the first line
    stderr = proc.stderr.read()
    assert proc.wait(timeout=120) == 0, stderr
    assert stderr == ""


def test_report_without_the_report_extra_names_it(demo, tmp_path):
    """The quickstart's install (``pip install -e ".[examples]"``) has no plotly: ``expman report``
    says which extra to add, in one line, exit 1."""
    code = (
        "import sys; sys.modules['plotly'] = None;"  # what an environment without plotly gives
        "from lightning_expman.cli import main;"
        f"sys.exit(main(['report', 'digits', '-o', 'r.html', '--db', {demo.url!r}]))"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.count("\n") == 1 and "pip install 'lightning-expman[report]'" in proc.stderr
    assert not (tmp_path / "r.html").exists()
