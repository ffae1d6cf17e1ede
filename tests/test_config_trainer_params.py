"""The static list of Trainer arguments must match the installed Lightning (imports lightning)."""

from __future__ import annotations

import inspect

from lightning_expman.config.schema import TRAINER_PARAMS


def test_trainer_params_match_lightning():
    import lightning

    params = [p for p in inspect.signature(lightning.Trainer.__init__).parameters if p != "self"]
    assert sorted(TRAINER_PARAMS) == sorted(params), (
        f"update lightning_expman/config/schema.py TRAINER_PARAMS: missing "
        f"{sorted(set(params) - set(TRAINER_PARAMS))}, stale {sorted(set(TRAINER_PARAMS) - set(params))}"
    )
