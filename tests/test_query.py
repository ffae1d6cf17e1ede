"""The query API on SQLite, MariaDB and PostgreSQL: runs tables, histories, aggregates, best runs,
tags, export, errors, and a fixed number of SQL queries whatever the number of runs."""

from __future__ import annotations

import json
import math
import statistics
import subprocess
import sys

import pytest

from lightning_expman.db import DatabaseManager
from lightning_expman.errors import ConnectionError, QueryError
from lightning_expman.query import Query, Table, default_mode, parse_tags, set_tags
from tests.conftest import _fresh_database
from tests.query_data import EPOCHS, LABELS, STEPS_PER_EPOCH, build_demo


@pytest.fixture(scope="module", params=["sqlite", "mysql", "postgres"])
def demo(request, tmp_path_factory, _server_admin):
    """The demo experiments, built once per backend for this module (read-only tests)."""
    if request.param == "sqlite":
        yield build_demo(f"sqlite:///{tmp_path_factory.mktemp('query') / 'expman.db'}")
        return
    databases = _fresh_database(request.param, _server_admin)
    url = next(databases)
    try:
        yield build_demo(url)
    finally:
        next(databases, None)  # drops the server database


@pytest.fixture
def q(demo):
    with Query(demo.url) as query:
        yield query


def completed(demo, trial):
    return [r for r in demo.runs[trial] if r != demo.failed_run]


# --------------------------------------------------------------------------- experiments


def test_experiments_counts_and_statuses(q, demo):
    table = q.experiments()
    by_id = {r["id"]: r for r in table}
    latest = by_id[demo.experiment_id]
    assert latest["title"] == "digits"
    assert (latest["trials"], latest["runs"]) == (3, 9)
    assert latest["statuses"] == {"COMPLETED": 8, "FAILED": 1}
    assert latest["tags"] == {"team": "vision", "project": "demo"}
    assert by_id[demo.old_experiment_id]["runs"] == 1
    assert by_id[demo.other_experiment_id]["title"] == "mnist <b>small</b>"


def test_experiments_tag_filter_counts_matching_runs(q, demo):
    assert [r["id"] for r in q.experiments(tags={"team": "vision"})] == [demo.experiment_id]
    flaky = q.experiments(tags=["flaky"]).rows  # a run-level tag
    assert [(r["id"], r["runs"], r["statuses"]) for r in flaky] == [(demo.experiment_id, 1, {"FAILED": 1})]
    big = q.experiments(tags=["size=big"]).rows  # a trial-level tag, inherited by its runs
    assert [(r["runs"], r["trials"]) for r in big] == [(3, 1)]
    assert q.experiments(tags=["team=nobody"]).rows == []


def test_experiment_by_title_uses_latest_and_by_id(q, demo):
    assert q.experiment("digits")["id"] == demo.experiment_id
    assert q.experiment(demo.old_experiment_id)["tags"] == {"team": "old"}
    assert q.experiment(str(demo.old_experiment_id))["id"] == demo.old_experiment_id


def test_unknown_experiment_lists_existing(q):
    with pytest.raises(QueryError) as e:
        q.experiment("digts")
    msg = str(e.value)
    assert "'digts'" in msg and "digits (id" in msg and "mnist <b>small</b>" in msg and "\n" not in msg


# --------------------------------------------------------------------------- runs table


def test_runs_table_params_final_and_best(q, demo):
    table = q.runs("digits")
    assert len(table) == 9
    for col in ("experiment", "trial", "run_id", "repeat", "seed", "status", "duration_s"):
        assert col in table.columns
    assert {"param.model.lr", "param.model.hidden", "param.seed"} <= set(table.columns)
    assert {"val_loss.final", "val_loss.best", "val_acc.best", "test_acc.final"} <= set(table.columns)
    rows = {r["run_id"]: r for r in table}
    for rid, best in demo.best_values.items():
        assert rows[rid]["val_loss.best"] == pytest.approx(best)  # min: val_loss is a loss
        assert rows[rid]["val_loss.final"] == pytest.approx(demo.final_values[rid])
        assert rows[rid]["val_acc.best"] == pytest.approx(1 - best)  # max: accuracy
    first = rows[demo.runs["lr-0.01"][0]]
    assert (first["trial"], first["repeat"], first["param.model.lr"], first["param.model.hidden"]) == (
        "lr-0.01",
        1,
        0.01,
        32,
    )
    assert first["test_acc.final"] == pytest.approx(1 - demo.best_values[first["run_id"]])
    assert rows[demo.failed_run]["status"] == "FAILED" and rows[demo.failed_run]["test_acc.final"] is None
    assert first["tags"] == {"team": "vision", "project": "demo", "size": "small"}


def test_runs_filters(q, demo):
    assert {r["run_id"] for r in q.runs("digits", tags=["flaky=yes"])} == {demo.failed_run}
    assert len(q.runs("digits", statuses=["completed"])) == 8
    only = q.runs("digits", metrics=["val_loss"])
    assert [c for c in only.columns if c.endswith((".final", ".best"))] == ["val_loss.final", "val_loss.best"]
    assert len(q.runs()) == 11  # every experiment


def test_runs_unknown_metric_lists_recorded(q):
    with pytest.raises(QueryError, match=r"unknown metric 'val_los'.*recorded: lr, test_acc.*val_loss"):
        q.runs("digits", metrics=["val_los"])


# --------------------------------------------------------------------------- histories


def test_history_by_epoch_and_step(q, demo):
    rid = demo.runs["lr-0.1"][1]
    hist = q.history(rid, "val_acc")
    assert [r["epoch"] for r in hist] == list(range(EPOCHS))
    assert set(hist.rows[-1]["per_label"]) == set(LABELS)
    both = q.history([rid, demo.runs["lr-0.01"][0]], ["val_loss", "train_loss"])
    assert len(both) == 2 * 2 * EPOCHS
    steps = q.history(rid, "train_loss_step", by="step")
    assert [r["step"] for r in steps] == list(range(EPOCHS * STEPS_PER_EPOCH))
    assert steps.rows[-1]["epoch"] == EPOCHS - 1
    with pytest.raises(QueryError, match=r"no step series for metric 'val_loss'.*recorded: train_loss_step"):
        q.history(rid, "val_loss", by="step")


# --------------------------------------------------------------------------- aggregates and best


def test_trial_summary_mean_std_over_completed_repeats(q, demo):
    table = q.trial_summary("digits", "val_loss", mode="min")
    assert table.meta["differing_params"] == ["model.hidden", "model.lr"]  # seed varies within trials
    rows = {r["trial"]: r for r in table}
    for trial in ("lr-0.1", "lr-0.01", "lr-0.001"):
        vals = [demo.best_values[r] for r in completed(demo, trial)]
        assert rows[trial]["n"] == len(vals)
        assert rows[trial]["mean"] == pytest.approx(statistics.mean(vals))
        assert rows[trial]["std"] == pytest.approx(statistics.stdev(vals))
        assert (rows[trial]["min"], rows[trial]["max"]) == (
            pytest.approx(min(vals)),
            pytest.approx(max(vals)),
        )
    assert rows["lr-0.001"]["n"] == 2  # the FAILED repeat is not counted
    assert [r["trial"] for r in table if r["is_best"]] == ["lr-0.01"]
    assert rows["lr-0.01"]["params"] == {"model.hidden": 32, "model.lr": 0.01}
    best_run = min(completed(demo, "lr-0.01"), key=demo.best_values.get)
    assert rows["lr-0.01"]["best_run_id"] == best_run


def test_trial_summary_final_values_all_statuses_and_max_mode(q, demo):
    final = {r["trial"]: r for r in q.trial_summary("digits", "val_loss", "min", value="final")}
    vals = [demo.final_values[r] for r in completed(demo, "lr-0.1")]
    assert final["lr-0.1"]["mean"] == pytest.approx(statistics.mean(vals))
    every = {r["trial"]: r for r in q.trial_summary("digits", "val_loss", "min", statuses=None)}
    assert every["lr-0.001"]["n"] == 3
    acc = q.trial_summary("digits", "val_acc")  # auto -> max
    assert acc.meta["mode"] == "max" and [r["trial"] for r in acc if r["is_best"]] == ["lr-0.01"]
    worst = q.trial_summary("digits", "val_loss", mode="max")  # the mode decides the winner
    assert [r["trial"] for r in worst if r["is_best"]] == ["lr-0.1"]


def test_best_trial_and_best_run(q, demo):
    assert q.best_trial("digits", "val_loss", "min")["trial"] == "lr-0.01"
    best = q.best_run("digits", "val_loss", "min")
    expected = min((r for r in demo.best_values if r != demo.failed_run), key=demo.best_values.get)
    assert best["run_id"] == expected and best["best"] == pytest.approx(demo.best_values[expected])
    assert q.best_run("digits", "test_acc", "max")["run_id"] == expected  # a results-only metric


def test_aggregate_errors(q):
    with pytest.raises(QueryError, match=r"unknown metric 'accuracy' in experiment 'digits'; recorded: "):
        q.trial_summary("digits", "accuracy")
    with pytest.raises(QueryError, match=r"unknown mode 'lowest'; valid: min, max, auto"):
        q.trial_summary("digits", "val_loss", mode="lowest")
    with pytest.raises(QueryError, match=r"unknown experiment 'nope'"):
        q.best_run("nope", "val_loss")


# --------------------------------------------------------------------------- a run, diff


def test_run_details(q, demo):
    rid = demo.runs["lr-0.01"][0]
    run = q.run(rid)
    assert run["config"]["model"] == {"lr": 0.01, "hidden": 32}
    assert run["context"]["lightning"] == "2.4.0"
    assert run["params"]["model.lr"] == 0.01
    assert set(run["metrics"]["val_acc"]["per_label"]) == set(LABELS)
    assert run["metrics"]["test_acc"]["source"] == "results"
    assert run["metrics"]["train_loss_step"]["source"] == "step"
    kinds = {(a["type"], a["scope"]) for a in run["artifacts"]}
    assert kinds == {("checkpoint", "run"), ("plot", "epoch")}
    failed = q.run(demo.failed_run)
    assert failed["status"] == "FAILED" and "CUDA out of memory" in failed["error"]
    with pytest.raises(QueryError, match=r"unknown run id 99999 .*existing: ids \d+\.\.\d+"):
        q.run(99999)
    with pytest.raises(QueryError, match=r"bad run id 'abc'"):
        q.run("abc")


def test_diff_runs(q, demo):
    a, b = demo.runs["lr-0.01"][0], demo.runs["lr-0.1"][0]
    d = q.diff(a, b)
    config = {k: (x, y) for k, x, y in d["config"]}
    assert config["model.lr"] == (0.01, 0.1)
    assert config["trial"] == ("lr-0.01", "lr-0.1")
    assert "model.hidden" not in config and "data.batch_size" not in config
    metrics = {(n, kind): (x, y) for n, kind, x, y in d["metrics"]}
    assert metrics[("val_loss", "best")] == (
        pytest.approx(demo.best_values[a]),
        pytest.approx(demo.best_values[b]),
    )
    assert q.diff(a, a)["config"] == [] and q.diff(a, a)["metrics"] == []


# --------------------------------------------------------------------------- export


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_export_round_trip(q, tmp_path, fmt):
    import pandas as pd

    table = q.runs("digits", metrics=["val_loss"])
    path = table.export(tmp_path / f"runs.{fmt}")
    df = {"csv": pd.read_csv, "jsonl": lambda p: pd.read_json(p, lines=True), "parquet": pd.read_parquet}[
        fmt
    ](path)
    assert list(df.columns) == table.columns and len(df) == 9
    assert sorted(df["val_loss.best"]) == pytest.approx(sorted(table.column("val_loss.best")))
    if fmt == "jsonl":
        first = json.loads(path.read_text().splitlines()[0])
        assert isinstance(first["tags"], dict) and first["start_time"][:4].isdigit()


def test_export_errors(tmp_path):
    with pytest.raises(QueryError, match=r"unknown export format 'xlsx'; valid: csv, jsonl, parquet"):
        Table(["a"], [{"a": 1}]).export(tmp_path / "t.xlsx")
    assert Table(["a"], [{"a": 1}]).export(tmp_path / "t.out", "csv").read_text().splitlines() == ["a", "1"]


# --------------------------------------------------------------------------- efficiency, opening, tags


def test_query_count_does_not_grow_with_runs(demo):
    """No N+1: the same number of SQL statements for an experiment of 1 run and one of 9."""
    if not demo.url.startswith("sqlite"):
        pytest.skip("counted once, on SQLite")
    with Query(demo.url) as q:
        statements: list[str] = []
        q.db.query_hooks.append(lambda event: statements.append(event.sql))
        counts = {}
        for exp in (demo.other_experiment_id, demo.experiment_id):
            for name, call in {
                "runs": lambda e=exp: q.runs(e),
                "summary": lambda e=exp: q.trial_summary(e, "val_loss"),
                "experiments": lambda: q.experiments(),
                "experiments_tags": lambda: q.experiments(tags=["team"]),
                "run_values": lambda e=exp: q.run_values(e, "val_acc", tags=["team"]),
            }.items():
                statements.clear()
                call()
                counts.setdefault(name, []).append(len(statements))
        q.db.query_hooks.clear()
    for name, (small, big) in counts.items():
        assert small == big, f"{name}: {small} statements for 1 run, {big} for 9"
        assert big <= 8, f"{name}: {big} statements"


def test_missing_sqlite_file_is_a_one_line_error(tmp_path):
    path = tmp_path / "nothing" / "here.db"
    with pytest.raises(ConnectionError, match=r"no expman database at .*here\.db"):
        Query(f"sqlite:///{path}")
    assert not path.parent.exists()  # reading never creates a database


def test_set_tags_merge_replace_and_errors(sqlite_url):
    demo = build_demo(sqlite_url)
    assert set_tags(sqlite_url, "experiment", demo.experiment_id, {"stage": "final"}) == {
        "team": "vision",
        "project": "demo",
        "stage": "final",
    }
    assert set_tags(sqlite_url, "experiment", demo.experiment_id, {"project": None})["stage"] == "final"
    run = demo.runs["lr-0.1"][0]
    assert set_tags(sqlite_url, "run", run, {"keep": True}, merge=False) == {"keep": True}
    with Query(sqlite_url) as q:
        assert [r["run_id"] for r in q.runs("digits", tags=["keep=True", "stage=final"])] == [run]
        assert q.set_tags("trial", q.runs("digits").rows[0]["trial_id"], {"x": 1})["x"] == 1
    with pytest.raises(QueryError, match=r"unknown tag level 'epoch'; valid: experiment, trial, run"):
        set_tags(sqlite_url, "epoch", 1, {})
    with pytest.raises(QueryError, match=r"unknown run id 12345"):
        set_tags(sqlite_url, "run", 12345, {"a": 1})


def test_query_accepts_a_database_manager(sqlite_url):
    build_demo(sqlite_url)
    with DatabaseManager(sqlite_url) as manager:
        assert len(Query(manager).runs("digits")) == 9


def test_helpers():
    assert (
        default_mode("val_loss") == "min"
        and default_mode("val_acc") == "max"
        and default_mode("mae") == "min"
    )
    assert parse_tags(["a=1", "b"]) == {"a": "1", "b": None}
    with pytest.raises(QueryError, match="bad tag filter '=x'"):
        parse_tags(["=x"])


def test_read_side_never_imports_torch_or_lightning():
    code = (
        "import sys, lightning_expman.query, lightning_expman.report, lightning_expman.cli_read;"
        "import lightning_expman.cli_show, lightning_expman.cli_output, lightning_expman.query.render;"
        "import lightning_expman.cli; lightning_expman.cli.build_parser();"
        "heavy = ('torch', 'lightning', 'pytorch_lightning', 'plotly', 'pandas');"
        "bad = [m for m in heavy if m in sys.modules];"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    # `expman --help` and usage errors do not even load the read side (peewee and the query API)
    code = (
        "import sys, lightning_expman.cli; lightning_expman.cli.build_parser();"
        "bad = [m for m in ('peewee', 'lightning_expman.query', 'lightning_expman.db') if m in sys.modules];"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_nan_values_do_not_break_aggregates(sqlite_url):
    with DatabaseManager(sqlite_url) as db:
        trial = db.create_trial(db.create_experiment("nan").id, "t")
        for seed, values in ((1, [1.0, float("nan")]), (2, [0.5, 0.25])):
            run = db.create_trial_run(trial.id, repeat_idx=seed, seed=seed)
            for e, v in enumerate(values):
                db.record_epoch_metrics(run.id, e, [("val_loss", v, None)])
            db.finish_trial_run(run.id, "completed")
    with Query(sqlite_url) as q:
        row = q.trial_summary("nan", "val_loss", "min").rows[0]
        assert row["n"] == 2 and row["mean"] == pytest.approx((1.0 + 0.25) / 2)
        finals = q.trial_summary("nan", "val_loss", "min", value="final").rows[0]
        assert finals["n"] == 1 and not math.isnan(finals["mean"])  # the diverged run's final is NULL


# --------------------------------------------------------------------------- Table in notebooks, the renderer


def test_table_repr_is_short_and_html_is_a_table():
    rows = [{"run_id": i, "trial": f"<t{i}>", "val_loss": 1 / (i + 1), "tags": {"a": i}} for i in range(60)]
    table = Table(["run_id", "trial", "val_loss", "tags", "b", "c", "d"], rows)
    assert repr(table) == "<Table: 60 rows x 7 columns (run_id, trial, val_loss, tags, b, c, … 1 more)>"
    html = table._repr_html_()
    assert html.startswith("<table><thead><tr><th>run_id</th>") and html.count("<tr>") == 1 + 50
    assert "<td>&lt;t3&gt;</td>" in html and "<td>0.25</td>" in html and "<td>{&quot;a&quot;:3}</td>" in html
    assert "… 10 more rows (60 in all)" in html
    assert str(table).splitlines()[0].split() == ["run_id", "trial", "val_loss", "tags", "b", "c", "d"]


def test_table_renders_every_format():
    import csv
    import io

    table = Table(["trial", "val_loss", "note"], [{"trial": "a|b", "val_loss": 0.123456789}, {"trial": "c"}])
    assert table.render("md").splitlines() == [
        "| trial | val_loss | note |",
        "| --- | ---: | --- |",
        "| a\\|b | 0.1235 | - |",
        "| c | - | - |",
    ]
    assert list(csv.reader(io.StringIO(table.render("csv")))) == [
        ["trial", "val_loss", "note"],
        ["a|b", "0.123456789", ""],  # raw value, None empty
        ["c", "", ""],
    ]
    assert json.loads(table.render("json"))[0] == {"trial": "a|b", "val_loss": 0.123456789, "note": None}
    with pytest.raises(QueryError, match="unknown table format 'xlsx'; valid: table, md, csv, json"):
        table.render("xlsx")


def test_renderer_fits_the_width_keeps_columns_and_agrees_with_the_cli():
    from lightning_expman.cli_output import FORMATS as CLI_FORMATS
    from lightning_expman.query.render import FORMATS, render

    assert CLI_FORMATS == FORMATS
    rows = [[1, "x" * 60, "8 completed, 1 failed, 2 running", float("nan")]]
    text = render(["ID", "TITLE", "STATUS", "LOSS"], rows, width=60, keep=(2,))
    assert all(len(line) <= 60 for line in text.splitlines())
    assert "8 completed, 1 failed, 2 running" in text and "…" in text and text.endswith("nan")
    assert json.loads(render(["LOSS"], [[float("nan")]], "json")) == [{"LOSS": None}]


def test_run_summary_uses_the_renderer():
    import csv
    import io

    from lightning_expman.enums import RunStatus
    from lightning_expman.experiment import ExperimentSummary, RunResult

    results = [
        RunResult(1, 2, "lr-0.1", 1, 1, 42, status=RunStatus.COMPLETED, elapsed=1.25, run_id=7),
        RunResult(2, 2, "lr-0.01", 1, 1, 43, status=RunStatus.SKIPPED, previous=RunStatus.RUNNING),
    ]
    summary = ExperimentSummary("digits", results, workdir="/ws", elapsed=2.0)
    text = summary.table()
    assert text.splitlines()[0].split() == ["#", "trial", "run", "seed", "status", "time", "run", "id"]
    assert "SKIPPED (RUNNING elsewhere)" in text and text.splitlines()[-1] == "workspace: /ws"
    rows = list(csv.DictReader(io.StringIO(summary.table("csv"))))
    assert rows[0]["time"] == "1.25" and rows[0]["run id"] == "7" and rows[1]["run id"] == ""
