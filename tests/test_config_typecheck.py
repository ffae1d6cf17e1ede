"""Type checks at load time: ``init_args`` against annotations (read from source, nothing imported),
recursively through nested specs; ``expman run`` and ``--dry-run`` refuse with one line, exit 2,
nothing written."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from lightning_expman.config.typecheck import fits
from tests.experiment_support import expman, tree

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("value", "annotation", "ok"),
    [
        (0.5, "float", True),
        (3, "float", True),  # an int is a float
        (True, "float", False),  # a bool is not a number
        (True, "int", False),
        ("abc", "float", False),
        (None, "Optional[int]", True),
        (None, "int | None", True),
        ("x", "int | None", False),
        (2, "Union[int, str]", True),
        ("min", "Literal['min', 'max']", True),
        ("mean", "Literal['min', 'max']", False),
        ([1, 2], "tuple[int, ...]", True),
        ({"a": 1}, "list[int]", False),
        ({"a": 1}, "dict[str, int]", True),
        ("relu", "nn.Module", True),  # unknown annotations accept anything
        ({"class_path": "torch.nn.GELU"}, "nn.Module", True),
        ({"class_path": "torch.nn.GELU"}, "float", False),  # an object is not a float
        ({"class_path": "torch.nn.GELU"}, "Optional[Callable]", True),
        ("x", "'int'", False),  # quoted forward reference
    ],
)
def test_fits(value, annotation, ok):
    assert fits(value, annotation) is ok


@pytest.fixture
def digits(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "configs" / "digits", tmp_path / "digits")
    return tmp_path / "digits"


@pytest.mark.parametrize("dry_run", [True, False])
@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("model.init_args.dropout=abc", "--set: model.init_args.dropout: must be float"),
        ("trainer.max_epochs=true", "--set: trainer.max_epochs: must be Optional[int]"),
        (
            "+model.init_args.act={class_path: torch.nn.GELU}",
            "--set: model.init_args.act: unknown argument 'act' of examples.digits.model.DigitsMLP",
        ),
    ],
)
def test_type_errors_exit_2_before_anything_is_written(digits, override, expected, dry_run):
    before = tree(digits.parent)
    args = ["run", str(digits), "--set", override] + (["--dry-run"] if dry_run else [])
    code, out, err = expman(*args, cwd=digits.parent)
    assert code == 2 and out == ""
    assert err.startswith(f"expman: error: {expected}") and err.count("\n") == 1, err
    assert tree(digits.parent) == before  # no workspace, no database
