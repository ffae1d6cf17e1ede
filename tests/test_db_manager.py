"""DatabaseManager: the seed's API and the tracker-facing methods, on SQLite, MariaDB and PostgreSQL."""

from __future__ import annotations

import math
import socket
import threading

import pytest

from lightning_expman import Metric, RunStatus
from lightning_expman.db import DatabaseManager, QueryError
from lightning_expman.db import models as m


@pytest.fixture
def db(db_url):
    manager = DatabaseManager(db_url)
    yield manager
    manager.close()


@pytest.fixture
def run(db):
    """An experiment > trial > trial run."""
    exp = db.create_experiment("CIFAR-10 Classification", "Comparing different architectures on CIFAR-10")
    trial = db.create_trial(exp.id, "ResNet-18")
    return exp, trial, db.create_trial_run(trial.id, status="running")


def count(db: DatabaseManager, table: str) -> int:
    return db.database.execute_sql(f"SELECT COUNT(*) FROM {table}").fetchone()[0]


# --------------------------------------------------------------------------- constructor forms


def test_constructor_forms(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    seed_form = DatabaseManager(database_path="experiments.db", use_sqlite=True)
    assert seed_form.backend == "sqlite" and (tmp_path / "experiments.db").exists()
    assert seed_form.url == "sqlite:///experiments.db"
    seed_form.close()
    default = DatabaseManager()  # the seed's default file name
    assert default.url == "sqlite:///experiments.db"
    default.close()
    url_form = DatabaseManager(f"sqlite:///{tmp_path / 'sub' / 'x.db'}")
    assert (tmp_path / "sub" / "x.db").exists() and repr(url_form).startswith("DatabaseManager('sqlite:")
    url_form.close()


def test_mysql_keyword_form(mysql_url):
    from lightning_expman.db import parse_url

    u = parse_url(mysql_url)
    db = DatabaseManager(database_path=u.database, host=u.host, user=u.user, password=u.password, port=u.port)
    assert db.backend == "mysql" and u.database in db.url
    assert db.create_experiment("x").id == 1
    db.close()


def test_opening_points_the_model_proxy_at_the_database(db):
    exp = db.create_experiment("via proxy")
    assert m.Experiment.get_by_id(exp.id).title == "via proxy"  # plain Peewee, no manager involved


# --------------------------------------------------------------------------- the seed's example


def test_seed_flow(db, run):
    exp, trial, trial_run = run
    assert (trial_run.status, trial.experiment_id, trial_run.trial_id) == ("RUNNING", exp.id, trial.id)
    assert trial_run.host == socket.gethostname() and trial_run.heartbeat is not None

    metric = db.record_metric(
        total_val=0.87, metric_type="accuracy", per_label_val={"airplane": 0.85, "car": 0.89, "bird": 0.82}
    )
    epoch = db.create_epoch(epoch_idx=1, trial_run_id=trial_run.id)
    assert (epoch.idx, epoch.trial_run_id) == (1, trial_run.id)
    link = db.add_epoch_metric(epoch_idx=1, trial_run_id=trial_run.id, metric_id=metric.id)
    assert link.metric_id == metric.id

    model_artifact = db.record_artifact("model", "/path/to/model.pth")
    plot_artifact = db.record_artifact("plot", "/path/to/loss_curve.png")
    log_artifact = db.record_artifact("log", "/trial/output.log")
    run_artifact = db.record_artifact("config", "/run/config.yaml")
    db.link_experiment_artifact(exp.id, model_artifact.id)
    db.link_epoch_artifact(1, trial_run.id, plot_artifact.id)
    db.link_trial_artifact(trial.id, log_artifact.id)
    db.link_trial_run_artifact(trial_run.id, run_artifact.id)

    test_metric = db.record_metric(0.91, Metric.TEST_ACC)
    db.link_results_metric(trial_run.id, test_metric.id)  # RESULTS row created on demand
    best = db.record_artifact("checkpoint", "/ckpt/best.ckpt")
    db.link_results_artifact(trial_run.id, best.id)
    assert count(db, "results") == 1

    [got] = db.get_epoch_metrics(1, trial_run.id)
    assert (got.id, got.type, got.total_val) == (metric.id, "accuracy", 0.87)
    assert got.per_label_val == {"airplane": 0.85, "car": 0.89, "bird": 0.82}
    expected = [(metric.id, "accuracy"), (test_metric.id, "test_acc")]
    for getter, key in (
        (db.get_experiment_metrics, exp.id),
        (db.get_trial_metrics, trial.id),
        (db.get_trial_run_metrics, trial_run.id),
    ):
        assert [(x.id, x.type) for x in getter(key)] == expected

    assert [a.location for a in db.get_experiment_artifacts(exp.id)] == ["/path/to/model.pth"]
    assert [a.location for a in db.get_trial_artifacts(trial.id)] == ["/trial/output.log"]
    assert [a.location for a in db.get_trial_run_artifacts(trial_run.id)] == ["/run/config.yaml"]
    assert [a.type for a in db.get_epoch_artifacts(1, trial_run.id)] == ["plot"]
    everything = ["model", "plot", "log", "config", "checkpoint"]
    assert [a.type for a in db.get_experiment_artifacts(exp.id, include_children=True)] == everything
    assert [a.type for a in db.get_trial_artifacts(trial.id, include_children=True)] == everything[1:]
    assert [a.type for a in db.get_trial_run_artifacts(trial_run.id, include_children=True)] == [
        "plot",
        "config",
        "checkpoint",
    ]

    updated = db.update_trial_run_status(trial_run.id, "completed")
    assert updated.status == RunStatus.COMPLETED and updated.end_time is not None


def test_metrics_of_other_experiments_are_not_mixed_in(db, run):
    exp, _, trial_run = run
    other = db.create_trial_run(db.create_trial(db.create_experiment("other").id, "t").id)
    db.record_epoch_metrics(other.id, 0, {"val_loss": 1.0})
    db.record_epoch_metrics(trial_run.id, 0, {"val_loss": 2.0})
    assert [x.total_val for x in db.get_experiment_metrics(exp.id)] == [2.0]


def test_non_finite_values_are_stored_as_null(db):
    metric = db.record_metric(float("nan"), "loss", {"a": float("inf"), "b": 1.0})
    stored = m.MetricRecord.get_by_id(metric.id)
    assert stored.total_val is None and stored.per_label_val == {"a": None, "b": 1.0}


# --------------------------------------------------------------------------- errors


def test_epoch_links_create_the_epoch_and_reads_of_a_missing_one_are_empty(db, run):
    """The seed links ``model_epoch_5.pth`` to epoch 5 without creating it, and reads epochs as lists."""
    _, _, trial_run = run
    assert db.get_epoch_artifacts(5, trial_run.id) == [] and db.get_epoch_metrics(5, trial_run.id) == []
    art = db.record_artifact("checkpoint", "/epoch/model_epoch_5.pth")
    db.link_epoch_artifact(5, trial_run.id, art.id)
    metric = db.record_metric(0.5, "val_loss")
    db.add_epoch_metric(6, trial_run.id, metric.id)
    assert [a.id for a in db.get_epoch_artifacts(5, trial_run.id)] == [art.id]
    assert [x.id for x in db.get_epoch_metrics(6, trial_run.id)] == [metric.id]
    epochs = m.Epoch.select().where(m.Epoch.trial_run == trial_run.id).order_by(m.Epoch.idx)
    assert [e.idx for e in epochs.execute(db.database)] == [5, 6]


def test_unknown_ids_raise_query_error(db, run):
    exp, _, trial_run = run
    metric = db.record_metric(1.0, "x")
    art = db.record_artifact("x", "/x")
    calls = [
        lambda: db.create_trial(999, "t"),
        lambda: db.create_trial_run(999),
        lambda: db.create_epoch(0, 999),
        lambda: db.link_experiment_artifact(999, art.id),
        lambda: db.link_experiment_artifact(exp.id, 999),
        lambda: db.link_trial_artifact(999, art.id),
        lambda: db.link_trial_run_artifact(999, art.id),
        lambda: db.link_results_metric(999, metric.id),
        lambda: db.link_results_metric(trial_run.id, 999),
        lambda: db.link_results_artifact(999, art.id),
        lambda: db.update_trial_run_status(999, "completed"),
        lambda: db.finish_trial_run(999, "failed"),
        lambda: db.heartbeat(999),
        lambda: db.get_experiment_metrics(999),
        lambda: db.get_trial_metrics(999),
        lambda: db.get_trial_run_metrics(999),
        lambda: db.get_experiment_artifacts(999),
        lambda: db.get_trial_artifacts(999),
        lambda: db.get_trial_run_artifacts(999),
        lambda: db.get_epoch_artifacts(0, 999),
        lambda: db.get_epoch_metrics(0, 999),
        lambda: db.link_epoch_artifact(0, 999, art.id),
        lambda: db.add_epoch_metric(0, 999, metric.id),
        lambda: db.ensure_epoch(999, 0),
        lambda: db.record_epoch_metrics(999, 0, {"x": 1.0}),
        lambda: db.record_results_metrics(999, {"x": 1.0}),
        lambda: db.get_or_create_trial(999, "t"),
        lambda: db.log_params(999, {"a": 1}),
        lambda: db.add_artifact("x", "/y", trial_run_id=999),
        lambda: db.add_artifact("x", "/y", epoch_idx=1),  # epoch without a run
    ]
    for i, call in enumerate(calls):
        with pytest.raises(QueryError) as info:
            call()
        assert "\n" not in str(info.value), i
    # Parents that the INSERT's foreign key checks (no lookup first) are named like looked-up ones.
    for call in (
        lambda: db.create_trial(999, "t"),
        lambda: db.create_trial_run(999),
        lambda: db.get_or_create_trial(999, "t"),
        lambda: db.ensure_epoch(999, 0),
        lambda: db.record_epoch_metrics(999, 0, {"x": 1.0}),
        lambda: db.record_results_metrics(999, {"x": 1.0}),
    ):
        with pytest.raises(QueryError, match=r" id 999 does not exist in "):
            call()
    # nothing half-written by the failed calls
    assert count(db, "trial") == 1 and count(db, "epoch") == 0 and count(db, "results") == 0
    assert count(db, "artifact") == 1 and count(db, "run_param") == 0


def test_unknown_id_message_names_the_id(db):
    with pytest.raises(QueryError, match=r"experiment id 424242 does not exist"):
        db.create_trial(424242, "t")


def test_duplicate_epoch_and_duplicate_links_raise(db, run):
    _, _, trial_run = run
    db.create_epoch(3, trial_run.id)
    with pytest.raises(QueryError, match=r"epoch 3 of trial run \d+ already exists"):
        db.create_epoch(3, trial_run.id)
    metric = db.record_metric(1.0, "x")
    db.add_epoch_metric(3, trial_run.id, metric.id)
    with pytest.raises(QueryError, match="already linked"):
        db.add_epoch_metric(3, trial_run.id, metric.id)
    assert count(db, "epoch") == 1 and count(db, "epoch_metric") == 1


def test_unknown_status_raises_query_error(db, run):
    _, trial, trial_run = run
    for call in (
        lambda: db.create_trial_run(trial.id, status="flying"),
        lambda: db.update_trial_run_status(trial_run.id, "done-ish"),
        lambda: db.finish_trial_run(trial_run.id, "bogus"),
    ):
        with pytest.raises(QueryError, match="unknown run status"):
            call()
    assert m.TrialRun.get_by_id(trial_run.id).status == "RUNNING"


def test_statuses_parse_case_insensitively(db, run):
    _, trial, trial_run = run
    for text, status in (("completed", RunStatus.COMPLETED), ("Stopped", RunStatus.STOPPED)):
        assert db.update_trial_run_status(trial_run.id, text).status == status
    assert db.create_trial_run(trial.id, status=RunStatus.SKIPPED).status == "SKIPPED"


def test_constraint_violation_in_bulk_path_is_a_query_error(db, run):
    _, _, trial_run = run
    with pytest.raises(QueryError) as info:
        db.record_step_metrics([(trial_run.id, 0, 0, "loss", 1.0), (987654, 0, 0, "loss", 1.0)])
    assert info.value.__cause__ is not None
    assert count(db, "step_metric") == 0  # the whole batch rolled back


# --------------------------------------------------------------------------- tracker-facing methods


def test_record_step_metrics(db, run):
    _, _, trial_run = run
    rows = [
        (trial_run.id, s, s // 10, Metric.TRAIN_LOSS if s % 2 else "lr", 1.0 / (s + 1)) for s in range(1000)
    ]
    rows.append((trial_run.id, 1000, 100, "train_loss", math.nan))
    rows.append((trial_run.id, 1001, None, "train_loss", None))
    assert db.record_step_metrics(rows) == 1002
    assert db.record_step_metrics([]) == 0
    got = list(
        m.StepMetric.select()
        .where((m.StepMetric.trial_run == trial_run.id) & (m.StepMetric.name == "train_loss"))
        .order_by(m.StepMetric.step)
    )
    assert len(got) == 502
    assert (got[0].step, got[0].epoch, got[0].value) == (1, 0, 0.5)
    assert got[-2].value is None and got[-1].epoch is None


def test_bulk_path_large_batches_are_chunked(db, run):
    """12,000 rows with 200-character names: well over MySQL's 1 MB statement size, sent in chunks."""
    _, _, trial_run = run
    names = [f"{i:03d}" + "n" * 197 for i in range(4)]
    rows = [(trial_run.id, s // 4, 0, names[s % 4], float(s)) for s in range(12_000)]
    assert db.record_step_metrics(rows) == 12_000
    assert count(db, "step_metric") == 12_000
    longest = db.database.execute_sql("SELECT MAX(LENGTH(name)) FROM step_metric").fetchone()[0]
    assert longest == 200


def test_record_epoch_and_results_metrics(db, run):
    _, _, trial_run = run
    recs = db.record_epoch_metrics(trial_run.id, 0, [("val_loss", 0.5, None), ("val_acc", 0.9, {"a": 1.0})])
    assert [r.type for r in recs] == ["val_loss", "val_acc"]
    db.record_epoch_metrics(trial_run.id, 0, {"train_loss": 0.7})  # the epoch exists: reused
    assert count(db, "epoch") == 1
    assert [x.type for x in db.get_epoch_metrics(0, trial_run.id)] == ["val_loss", "val_acc", "train_loss"]
    db.record_results_metrics(trial_run.id, {Metric.TEST_ACC: 0.88})
    db.record_results_metrics(trial_run.id, [("test_loss", 0.2, None)])
    assert count(db, "results") == 1 and count(db, "results_metric") == 2
    assert len(db.get_trial_run_metrics(trial_run.id)) == 5


def test_ensure_epoch_is_idempotent(db, run):
    _, _, trial_run = run
    db.ensure_epoch(trial_run.id, 4)
    db.ensure_epoch(trial_run.id, 4)
    assert count(db, "epoch") == 1
    with db.database.bind_ctx([m.Epoch]):
        assert m.Epoch.get().time is not None  # the model's default, as Peewee's INSERT sets it


def test_add_artifact_links_every_requested_level(db, run):
    exp, trial, trial_run = run
    art = db.add_artifact(
        "checkpoint",
        "/ckpt/e2.ckpt",
        experiment_id=exp.id,
        trial_id=trial.id,
        trial_run_id=trial_run.id,
        epoch_idx=2,
        results=True,
    )
    assert [a.id for a in db.get_experiment_artifacts(exp.id)] == [art.id]
    assert [a.id for a in db.get_trial_artifacts(trial.id)] == [art.id]
    assert [a.id for a in db.get_epoch_artifacts(2, trial_run.id)] == [art.id]
    assert count(db, "results_artifact") == 1 and count(db, "trial_run_artifact") == 0
    plain = db.add_artifact("log", "/run.log", trial_run_id=trial_run.id)
    assert [a.id for a in db.get_trial_run_artifacts(trial_run.id)] == [plain.id]
    with pytest.raises(QueryError):
        db.add_artifact("x", "/x", experiment_id=exp.id, trial_id=999)
    assert count(db, "artifact") == 2  # the failed call's artifact row rolled back


def test_get_or_create(db):
    exp = db.get_or_create_experiment("grid", "desc", config={"lr": 0.1}, config_hash="abc", tags=["a"])
    again = db.get_or_create_experiment("grid", "ignored")
    assert again.id == exp.id and again.config == {"lr": 0.1} and again.config_hash == "abc"
    trial = db.get_or_create_trial(exp.id, "lr=0.1", config={"lr": 0.1})
    assert db.get_or_create_trial(exp.id, "lr=0.1").id == trial.id
    assert db.get_or_create_trial(exp.id, "lr=0.2").id != trial.id
    assert count(db, "experiment") == 1 and count(db, "trial") == 2


def test_trial_run_lifecycle(db, run):
    _, trial, _ = run
    tr = db.create_trial_run(
        trial.id,
        repeat_idx=2,
        seed=1234,
        config={"model": {"lr": 0.1}},
        context={"torch": "2.13"},
        tags={"k": "v"},
        host="node7",
        git_commit="deadbeef",
    )
    stored = m.TrialRun.get_by_id(tr.id)
    assert (stored.repeat_idx, stored.seed, stored.host, stored.git_commit) == (2, 1234, "node7", "deadbeef")
    assert stored.config == {"model": {"lr": 0.1}} and stored.context == {"torch": "2.13"}
    first_beat = stored.heartbeat
    db.heartbeat(tr.id)
    assert m.TrialRun.get_by_id(tr.id).heartbeat >= first_beat
    assert db.finish_trial_run(tr.id, "stopped", error=None, stop_epoch=7) is True
    done = m.TrialRun.get_by_id(tr.id)
    assert (done.status, done.stop_epoch) == ("STOPPED", 7) and done.end_time is not None
    assert db.finish_trial_run(tr.id, RunStatus.FAILED, error="RuntimeError: boom") is True
    assert m.TrialRun.get_by_id(tr.id).error == "RuntimeError: boom"


def test_log_params_flattens_and_upserts(db, run):
    _, _, trial_run = run
    assert db.log_params(trial_run.id, {"model": {"lr": 0.1, "layers": [2, 4]}, "seed": 3}) == 3
    assert db.log_params(trial_run.id, {"model": {"lr": 0.01}}) == 1
    assert db.log_params(trial_run.id, {}) == 0
    params = {p.key: p.value for p in m.RunParam.select().where(m.RunParam.trial_run == trial_run.id)}
    assert params == {"model.lr": 0.01, "model.layers": [2, 4], "seed": 3}


# --------------------------------------------------------------------------- transactions, threads


def test_transaction_rolls_back_everything_on_error(db):
    with pytest.raises(RuntimeError), db.transaction():
        exp = db.create_experiment("doomed")
        db.create_trial(exp.id, "t")
        raise RuntimeError("boom")
    assert count(db, "experiment") == 0 and count(db, "trial") == 0
    with db.transaction():
        exp = db.create_experiment("kept")
        with db.transaction():  # nested: a savepoint
            db.create_trial(exp.id, "t")
    assert count(db, "trial") == 1


def test_run_in_transaction_commits_or_rolls_back_as_one(db):
    def both():
        exp = db.create_experiment("a")
        db.create_trial(exp.id, "t")
        return exp.id

    assert db.run_in_transaction(both) == 1

    def half():
        db.create_experiment("b")
        db.create_trial(999, "t")  # QueryError: the experiment above is rolled back too

    with pytest.raises(QueryError):
        db.run_in_transaction(half)
    assert count(db, "experiment") == 1


def test_writer_thread_and_main_thread_write_concurrently(db, run):
    """A background writer thread (own connection) and the main thread write at the same time."""
    _, trial, trial_run = run
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            for batch in range(20):
                db.record_step_metrics(
                    [(trial_run.id, batch * 50 + i, batch, "loss", float(i)) for i in range(50)]
                )
                db.record_epoch_metrics(trial_run.id, batch, {"val_loss": float(batch)})
            db.close()  # the thread's own connection
        except BaseException as e:  # surfaced in the main thread below
            errors.append(e)

    thread = threading.Thread(target=writer)
    thread.start()
    for i in range(20):
        db.heartbeat(trial_run.id)
        db.create_trial_run(trial.id, repeat_idx=i)
        db.get_trial_run_metrics(trial_run.id)
    thread.join(60)
    assert not thread.is_alive() and errors == []
    assert count(db, "step_metric") == 1000 and count(db, "epoch") == 20 and count(db, "trial_run") == 21


def test_in_memory_database_is_shared_by_threads():
    db = DatabaseManager("sqlite:///:memory:")
    run = db.create_trial_run(db.create_trial(db.create_experiment("e").id, "t").id)
    thread = threading.Thread(
        target=lambda: db.record_step_metrics([(run.id, i, 0, "x", 1.0) for i in range(10)])
    )
    thread.start()
    thread.join(10)
    assert count(db, "step_metric") == 10
    db.close()


def test_context_manager_closes(sqlite_url):
    with DatabaseManager(sqlite_url) as db:
        db.create_experiment("x")
        assert not db.database.is_closed()
    assert db.database.is_closed()


def test_cached_insert_stores_what_peewees_insert_stores(db, run):
    # RowHelpers._insert builds each statement text once and converts values itself: every
    # column must come back exactly as from Peewee's own INSERT of the same row.
    exp, trial, _ = run
    rows = [
        (m.Experiment, {"title": "t", "desc": "", "config": {"a": [1, 2.5, None], "p": "x"}, "tags": ["u"]}),
        (m.Trial, {"experiment": exp.id, "name": "n", "config": {"lr": 1e-3}, "tags": {"k": "v"}}),
        (m.MetricRecord, {"type": "val_acc", "total_val": 0.875, "per_label_val": {"cat": 0.5, "dog": None}}),
        (m.Artifact, {"type": "checkpoint", "location": "/ckpt/é poch=2.ckpt"}),
        (m.TrialRun, {"trial": trial.id, "status": "RUNNING", "repeat_idx": 2, "seed": 7, "host": "h"}),
    ]
    for model, values in rows:
        with db.database.bind_ctx([model]):
            ours = db.run_in_transaction(lambda: db._insert(model, **values))  # noqa: B023
            theirs = model.insert(model(**values).__data__).execute(db.database)
            a = model.select().where(model.id == ours.id).dicts().get()
            b = model.select().where(model.id == theirs).dicts().get()
        a.pop("id"), b.pop("id")
        for key in ("start_time", "update_time", "time", "heartbeat"):  # defaults: now, per row
            assert (a.pop(key, None) is None) == (b.pop(key, None) is None), (model, key)
        assert a == b, model
        assert isinstance(ours.id, int) and ours.id != theirs
