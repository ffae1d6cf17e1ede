"""LightningCLI with ``trainer.logger: {class_path: lightning_expman.ExpmanLogger, ...}`` (issue 14.3):
the stock CLI runs twice in one folder, each run keeps the CLI's resolved config (database and
``config.yaml`` in its folder), and nothing of Lightning's own (``_instantiator``) or of the runner
(``tracker_manager``, ``run_info``) reaches the stored hyperparameters or ``--print_config``."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from lightning_expman.db import models as m
from tests.test_lightning_logger import query

pytest.importorskip("jsonargparse", reason="LightningCLI needs jsonargparse (the test extra)")


def write_config(tmp_path: Path) -> tuple[Path, str]:
    url = f"sqlite:///{tmp_path / 'expman.db'}"
    config = {
        "seed_everything": 7,
        "trainer": {
            "max_epochs": 2,
            "accelerator": "cpu",
            "devices": 1,
            "limit_train_batches": 2,
            "limit_val_batches": 1,
            "log_every_n_steps": 1,
            "enable_progress_bar": False,
            "enable_model_summary": False,
            "logger": {
                "class_path": "lightning_expman.ExpmanLogger",
                "init_args": {
                    "experiment": "cli",
                    "trial": "tiny",
                    "db": url,
                    "save_dir": str(tmp_path / "runs"),
                },
            },
        },
        "model": {"class_path": "tests.tiny.TinyClassifier", "init_args": {"hidden": 4}},
        "data": {"class_path": "tests.tiny.TinyDataModule"},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path, url


def run_cli(*args: str):
    from lightning.pytorch.cli import LightningCLI

    return LightningCLI(args=list(args))


def test_lightning_cli_runs_twice_and_each_run_keeps_its_resolved_config(tmp_path):
    config, url = write_config(tmp_path)
    first = run_cli("fit", "--config", str(config))
    second = run_cli("fit", "--config", str(config))  # used to die: ".../config.yaml to NOT exist"
    loggers = [first.trainer.logger, second.trainer.logger]
    assert [lg.log_dir for lg in loggers] == [
        str(tmp_path / "runs" / "cli" / "version_0"),
        str(tmp_path / "runs" / "cli" / "version_1"),
    ]
    assert not (tmp_path / "runs" / "config.yaml").exists()  # nothing left for the next run to trip on
    for lg in loggers:
        lg.close()
    with query(url):
        runs = list(m.TrialRun.select().order_by(m.TrialRun.id))
        assert [r.id for r in runs] == [lg.run_id for lg in loggers]
        for run, lg in zip(runs, loggers):
            assert run.status == "COMPLETED"
            # The CLI's resolved config is the run's config: defaults filled in, class paths as given.
            assert run.config["model"] == {
                "class_path": "tests.tiny.TinyClassifier",
                "init_args": {"hidden": 4, "lr": 0.1, "fail_at_step": None},
            }
            assert run.config["trainer"]["max_epochs"] == 2 and run.config["seed_everything"] == 7
            assert run.config["trainer"]["logger"]["class_path"] == "lightning_expman.ExpmanLogger"
            # config.yaml is a file of the run, in its folder.
            saved = Path(lg.log_dir) / "config.yaml"
            assert yaml.safe_load(saved.read_text(encoding="utf-8"))["model"] == run.config["model"]
            files = (
                m.Artifact.select(m.Artifact.location)
                .join(m.TrialRunArtifact)
                .where((m.TrialRunArtifact.trial_run == run.id) & (m.Artifact.type == "config"))
            )
            assert [a.location for a in files] == [str(saved)]
            # Lightning's own keys are not the user's hyperparameters.
            keys = {p.key for p in m.RunParam.select().where(m.RunParam.trial_run == run.id)}
            assert {"hidden", "lr", "batch_size"} <= keys
            assert not {k for k in keys if k.startswith("_")}, keys
            assert "_instantiator" not in run.context["hparams"]


def test_print_config_shows_only_what_a_user_sets(tmp_path, capsys):
    config, _ = write_config(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        run_cli("fit", "--config", str(config), "--print_config")
    assert exit_info.value.code == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    init_args = printed["trainer"]["logger"]["init_args"]
    assert init_args["experiment"] == "cli" and init_args["trial"] == "tiny"
    assert not {"tracker_manager", "run_info"} & set(init_args), init_args
    assert not (tmp_path / "runs").exists()  # printing the config records nothing
