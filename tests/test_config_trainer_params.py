"""``trainer:`` keys are checked against the installed Lightning's ``Trainer.__init__``, read from its
source without importing lightning (this test imports it to compare)."""

from __future__ import annotations

import inspect
import subprocess
import sys

from lightning_expman.config.schema import trainer_params


def test_trainer_params_are_the_installed_lightnings():
    import lightning

    signature = inspect.signature(lightning.Trainer.__init__)
    expected = [p for p in signature.parameters if p != "self"]
    params, annotations = trainer_params()
    assert params is not None and sorted(params) == sorted(expected)
    assert annotations["max_epochs"] == "Optional[int]" or "int" in annotations["max_epochs"]


def test_reading_them_imports_neither_lightning_nor_torch():
    code = (
        "import sys\n"
        "from lightning_expman.config.schema import trainer_params\n"
        "params, _ = trainer_params()\n"
        "print('max_epochs' in params, sorted({'torch', 'lightning'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True []"
