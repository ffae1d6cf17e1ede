"""``expman ls / show / compare / diff / export / report``: output, --json, widths and errors.

Commands run in-process through ``lightning_expman.cli.main`` (stdout/stderr captured), plus one
real ``expman ls`` subprocess. The SQLite demo database is shared by the module (read-only);
``compare`` also runs against MariaDB.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lightning_expman.cli import main
from tests.query_data import build_demo


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return build_demo(f"sqlite:///{tmp_path_factory.mktemp('cli') / 'expman.db'}")


@pytest.fixture
def expman(demo, capsys, monkeypatch):
    """Run ``expman ARGS --db DEMO`` in-process; returns (exit code, stdout, stderr)."""
    monkeypatch.setenv("COLUMNS", "100")

    def run(*args: str, db: str | None = demo.url):
        argv = [*map(str, args), *(["--db", db] if db else [])]
        code = main(argv)
        out, err = capsys.readouterr()
        return code, out, err

    return run


def assert_fits(text: str, width: int) -> None:
    too_long = [line for line in text.splitlines() if len(line) > width]
    assert not too_long, f"lines wider than {width}: {too_long}"


# --------------------------------------------------------------------------- ls


def test_ls_lists_experiments_with_counts_and_statuses(expman, demo):
    code, out, err = expman("ls")
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0].split() == ["ID", "EXPERIMENT", "TRIALS", "RUNS", "STATUS", "STARTED", "TAGS"]
    row = next(line for line in lines if line.split()[0] == str(demo.experiment_id))
    assert row.split()[1:4] == ["digits", "3", "9"]
    assert "8 completed, 1 failed" in row and "project=demo" in row
    assert "mnist <b>small</b>" in out
    assert_fits(out, 100)


def test_ls_tag_filter_and_json(expman, demo):
    code, out, _ = expman("ls", "--tag", "team=vision", "--json")
    data = json.loads(out)
    assert code == 0 and [d["id"] for d in data] == [demo.experiment_id]
    assert data[0]["statuses"] == {"COMPLETED": 8, "FAILED": 1} and data[0]["trials"] == 3
    code, out, _ = expman("ls", "--tag", "team=nobody")
    assert code == 0 and out.startswith("no experiments with tags team=nobody")


def test_ls_fits_80_columns(expman, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    _, out, _ = expman("ls")
    assert_fits(out, 80)
    assert "…" in out  # the tags column was elided rather than wrapped


# --------------------------------------------------------------------------- show


def test_show_experiment(expman, demo):
    code, out, _ = expman("show", "digits")
    assert code == 0
    assert out.startswith(f"Experiment digits (id {demo.experiment_id})")
    assert "RUNS (9)" in out and "VAL_LOSS" in out and "trainer.max_epochs = 6" in out
    for rid in demo.runs["lr-0.01"]:
        assert any(line.split()[:2] == [str(rid), "lr-0.01"] for line in out.splitlines())
    code, out, _ = expman("show", f"exp:{demo.old_experiment_id}")
    assert code == 0 and f"(id {demo.old_experiment_id})" in out
    code, out, _ = expman("show", "digits", "--json")
    assert json.loads(out)["experiment"]["id"] == demo.experiment_id


def test_show_run_config_metrics_artifacts(expman, demo):
    rid = demo.runs["lr-0.01"][0]
    code, out, _ = expman("show", str(rid))
    assert code == 0
    assert out.startswith(f"Run {rid}  digits / lr-0.01  repeat 1")
    for expected in (
        "CONFIG",
        "model.lr",
        "METRICS",
        "val_acc",
        "0:0.",
        "ARTIFACTS",
        "best.ckpt",
        "ENVIRONMENT",
    ):
        assert expected in out
    val_loss = next(line for line in out.splitlines() if line.startswith("val_loss "))
    assert val_loss.split()[2:4] == [f"{demo.best_values[rid]:.4g}", "min"]  # BEST, MODE
    code, out, _ = expman("show", f"run:{demo.failed_run}", "--json")
    data = json.loads(out)
    assert data["status"] == "FAILED" and "out of memory" in data["error"]


def test_show_run_per_label_values_of_result_metrics(expman, tmp_path):
    from lightning_expman.db import DatabaseManager

    url = f"sqlite:///{tmp_path / 'labels.db'}"
    with DatabaseManager(url) as db:
        trial = db.create_trial(db.create_experiment("labels").id, "t")
        rid = db.create_trial_run(trial.id, "running", repeat_idx=1, seed=1).id
        db.record_epoch_metrics(rid, 0, [("val_f1_per_class", 0.5, {"cat": 0.6, "dog": 0.4})])
        # trainer.test() run twice: the FINAL column shows the first value, so do its labels
        db.record_results_metrics(rid, [("test_f1_per_class", 0.8, {"cat": 0.9, "dog": 0.7})])
        db.record_results_metrics(rid, [("test_f1_per_class", 0.6, {"cat": 0.5, "dog": 0.7})])
        db.record_results_metrics(rid, [("test_acc", 0.75, None)])
        db.finish_trial_run(rid, "COMPLETED")
    code, out, _ = expman("show", str(rid), db=url)
    assert code == 0
    rows = {line.split()[0]: line for line in out.splitlines() if line.startswith(("test_", "val_"))}
    assert rows["test_f1_per_class"].split()[1] == "0.8"
    assert rows["test_f1_per_class"].endswith("cat:0.9 dog:0.7")
    assert rows["val_f1_per_class"].endswith("cat:0.6 dog:0.4")
    assert rows["test_acc"].endswith(" -")  # no per-label values: a dash
    code, out, _ = expman("show", str(rid), "--json", db=url)
    metrics = json.loads(out)["metrics"]
    assert metrics["test_f1_per_class"]["per_label"] == {"cat": 0.9, "dog": 0.7}
    assert metrics["test_acc"].get("per_label") is None


def test_show_errors(expman):
    code, out, err = expman("show", "nope")
    assert code == 1 and out == ""  # a runtime error: the database has no such experiment
    assert err.startswith("expman: error: unknown experiment 'nope'") and "digits (id" in err
    assert err.count("\n") == 1
    code, _, err = expman("show", "424242")
    assert code == 1 and "unknown run id '424242'" in err


# --------------------------------------------------------------------------- compare


def _compare_rows(out: str) -> dict[str, str]:
    return {
        line.split()[1] if line.startswith("*") else line.split()[0]: line for line in out.splitlines()[2:-1]
    }


def test_compare_marks_best_with_mean_std_n(expman, demo):
    code, out, err = expman("compare", "digits", "--metric", "val_loss", "--mode", "min")
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0].startswith(f"digits (id {demo.experiment_id}): val_loss, best value per run (min)")
    assert lines[1].split()[:3] == ["TRIAL", "HIDDEN", "LR"]  # only the params that differ; no seed
    rows = _compare_rows(out)
    assert rows["lr-0.01"].startswith("*") and not rows["lr-0.1"].startswith("*")
    assert "± " in rows["lr-0.01"] and "(3)" in rows["lr-0.01"]
    assert "(2)" in rows["lr-0.001"]  # the failed repeat is left out
    assert lines[-1] == f"* best trial: lr-0.01 (min mean val_loss = {_mean(demo, 'lr-0.01'):.4g})"
    assert_fits(out, 100)


def _mean(demo, trial):
    vals = [demo.best_values[r] for r in demo.runs[trial] if r != demo.failed_run]
    return sum(vals) / len(vals)


def test_compare_json_and_options(expman, demo):
    _, out, _ = expman("compare", "digits", "--metric", "val_acc", "--json")
    data = json.loads(out)
    assert data["meta"]["mode"] == "max" and data["meta"]["differing_params"] == ["model.hidden", "model.lr"]
    assert [t["trial"] for t in data["trials"] if t["is_best"]] == ["lr-0.01"]
    _, out, _ = expman("compare", "digits", "--metric", "val_loss", "--all", "--json")
    assert {t["trial"]: t["n"] for t in json.loads(out)["trials"]}["lr-0.001"] == 3
    _, out, _ = expman("compare", "digits", "--metric", "val_loss", "--value", "final")
    assert "final value per run" in out.splitlines()[0]


def test_compare_errors(expman):
    code, out, err = expman("compare", "digits", "--metric", "val_los")
    assert code == 1 and out == ""
    assert err == (
        "expman: error: unknown metric 'val_los' in experiment 'digits'; recorded: "
        "lr, test_acc, test_loss, train_loss, train_loss_step, val_acc, val_loss\n"
    )
    code, _, err = expman("compare", "nope", "--metric", "val_loss")
    assert code == 1 and "unknown experiment 'nope'" in err
    with pytest.raises(SystemExit) as e:  # argparse: a missing --metric is a usage error too
        expman("compare", "digits")
    assert e.value.code == 2


def test_compare_while_runs_are_in_progress(sqlite_url, capsys, monkeypatch):
    from lightning_expman.db import DatabaseManager

    monkeypatch.setenv("COLUMNS", "120")  # the notice is elided to the terminal's width

    with DatabaseManager(sqlite_url) as db:
        trial = db.create_trial(db.create_experiment("live").id, "a")
        run = db.create_trial_run(trial.id, repeat_idx=1, seed=1)  # RUNNING
        db.record_epoch_metrics(run.id, 0, [("val_loss", 0.5, None)])
    assert main(["compare", "live", "--metric", "val_loss", "--db", sqlite_url]) == 0
    out = capsys.readouterr().out
    assert (
        out.splitlines()[-1]
        == "no completed/stopped run recorded val_loss yet (--all counts running and failed runs)"
    )
    assert main(["compare", "live", "--metric", "val_loss", "--all", "--db", sqlite_url]) == 0
    assert "0.5 (n=1)" in capsys.readouterr().out


def test_compare_on_mariadb(mysql_url, capsys):
    build_demo(mysql_url)
    assert main(["compare", "digits", "--metric", "val_loss", "--mode", "min", "--db", mysql_url]) == 0
    out = capsys.readouterr().out
    assert _compare_rows(out)["lr-0.01"].startswith("*")


# --------------------------------------------------------------------------- diff


def test_diff_text_and_json(expman, demo):
    a, b = demo.runs["lr-0.01"][0], demo.runs["lr-0.1"][0]
    code, out, _ = expman("diff", str(a), str(b))
    assert code == 0
    assert out.startswith(f"A = run {a} (digits / lr-0.01 #1)\nB = run {b} (digits / lr-0.1 #1)")
    lr = next(line for line in out.splitlines() if line.startswith("model.lr"))
    assert lr.split() == ["model.lr", "0.01", "0.1"]
    best = next(line for line in out.splitlines() if line.startswith("val_loss (best)"))
    assert best.split()[-1].startswith("+")  # b is worse by this much
    _, out, _ = expman("diff", str(a), str(a))
    assert "CONFIG: identical" in out and "METRICS: identical" in out
    _, out, _ = expman("diff", str(a), str(b), "--json")
    assert ["model.lr", 0.01, 0.1] in json.loads(out)["config"]
    code, _, err = expman("diff", str(a), "999999")
    assert code == 1 and "unknown run id '999999'" in err


# --------------------------------------------------------------------------- export


@pytest.mark.parametrize(
    ("fmt", "table", "rows"),
    [("csv", "runs", 9), ("jsonl", "epochs", None), ("parquet", "trials", 3), ("csv", "steps", None)],
)
def test_export(expman, tmp_path, fmt, table, rows):
    import pandas as pd

    out_file = tmp_path / f"out.{fmt}"
    extra = ["--metric", "val_loss"] if table in ("trials", "epochs") else []
    code, out, err = expman(
        "export", "digits", "--format", fmt, "-o", str(out_file), "--table", table, *extra
    )
    assert code == 0, err
    df = {"csv": pd.read_csv, "jsonl": lambda p: pd.read_json(p, lines=True), "parquet": pd.read_parquet}[
        fmt
    ](out_file)
    if rows is not None:
        assert len(df) == rows
    if table == "epochs":
        assert set(df["metric"]) == {"val_loss"} and len(df) == 8 * 6 + 2
    if table == "steps":
        assert set(df["metric"]) == {"train_loss_step"}
    assert out.startswith(f"wrote {len(df)} rows ({table}) of digits to ")


def test_export_errors(expman, tmp_path):
    code, _, err = expman("export", "digits", "-o", str(tmp_path / "x.csv"), "--table", "trials")
    assert code == 2 and "--table trials needs --metric NAME" in err
    code, _, err = expman("export", "digits", "-o", str(tmp_path / "x.xlsx"))
    assert code == 2 and "unknown export format 'xlsx'; valid: csv, jsonl, parquet" in err


# --------------------------------------------------------------------------- report, --db


def test_report_commands_write_html(expman, demo, tmp_path):
    for args in (
        ["digits"],
        ["--run", str(demo.runs["lr-0.1"][0])],
        ["--runs", *map(str, demo.runs["lr-0.1"])],
    ):
        path = tmp_path / "r.html"
        code, out, err = expman("report", *args, "-o", str(path))
        assert code == 0, err
        assert out == f"wrote {path}\n" and path.read_text().startswith("<!DOCTYPE html>")
    code, _, err = expman("report", "-o", str(tmp_path / "x.html"))
    assert code == 2 and "expman report needs an EXPERIMENT, --run RUN_ID or --runs" in err
    code, _, err = expman("report", "digits", "--metric", "nope", "-o", str(tmp_path / "x.html"))
    assert code == 1 and "unknown metric 'nope'" in err


def test_db_errors_are_one_line(expman, tmp_path):
    code, _, err = expman("ls", db=f"sqlite:///{tmp_path / 'missing.db'}")
    assert code == 1 and err.startswith("expman: error: no expman database at ") and err.count("\n") == 1
    code, _, err = expman("ls", db="oracle://x/y")  # a malformed URL: usage
    assert code == 2 and "--db: unsupported database URL" in err
    code, _, err = expman("ls", db="mysql://root:s3cret@127.0.0.1:1/nothing")  # unreachable: runtime
    assert code == 1 and "s3cret" not in err and err.count("\n") == 1


def test_db_default_comes_from_environment(expman, demo, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("EXPMAN_DB", demo.url)
    code, out, _ = expman("ls", db=None)
    assert code == 0 and "digits" in out


def test_real_subprocess_expman_ls(demo, tmp_path):
    exe = Path(sys.executable).with_name("expman")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "lightning_expman.cli"]
    env = {**os.environ, "COLUMNS": "120", "EXPMAN_DB": demo.url}
    proc = subprocess.run([*cmd, "ls"], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "digits" in proc.stdout and "8 completed, 1 failed" in proc.stdout
    proc = subprocess.run(
        [*cmd, "compare", "nope", "--metric", "val_loss"], capture_output=True, text=True, env=env, timeout=60
    )
    assert proc.returncode == 1 and proc.stderr.startswith("expman: error: unknown experiment 'nope'")
    assert "Traceback" not in proc.stderr
