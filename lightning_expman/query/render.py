"""The one table renderer: rows of cells as an aligned terminal table, Markdown, CSV or JSON.

Every table the package prints goes through :func:`render`: the ``expman`` read commands (``ls``,
``show``, ``compare``, ``diff``), the end-of-run summary of ``expman run``
(:meth:`~lightning_expman.experiment.ExperimentSummary.table`), ``expman reproduce`` and
:class:`~lightning_expman.query.Table` (``str(table)``, ``table.render("md")``). It imports only the
standard library.

The four formats:

* ``table``: aligned columns no wider than the terminal (80-120 columns; pipes get 100). Numbers
  are right-aligned; columns that do not fit are narrowed, widest first, eliding their end with
  ``…`` (their start for ``left_elide`` columns such as paths); ``keep`` columns are never
  narrowed (a run's status must be read in full).
* ``md``: a GitHub-flavoured Markdown table, cells in full (``|``, ``<`` and ``>`` escaped: a
  title is text, never markup).
* ``csv``: a header row, then raw values (full precision, empty for ``None``), nothing elided.
* ``json``: a list of objects keyed by the headers (``NaN`` and infinities as ``null``).

Example:
    >>> print(render(["trial", "val_loss"], [["lr-0.1", 0.51234], ["lr-0.01", None]]))
    trial    val_loss
    lr-0.1     0.5123
    lr-0.01         -
    >>> print(render(["a", "b"], [[1, "x|y"]], "md"))
    | a | b |
    | ---: | --- |
    | 1 | x\\|y |
"""

from __future__ import annotations

import csv
import io
import json
import math
import shutil
from collections.abc import Sequence
from typing import Any, Literal

__all__ = ["FORMATS", "Format", "csv_cell", "elide", "fmt", "jsonable", "render", "terminal_width"]

Format = Literal["table", "md", "csv", "json"]
FORMATS: tuple[str, ...] = ("table", "md", "csv", "json")

_SEP = 2  # spaces between columns


def terminal_width() -> int:
    """Terminal width clamped to 80..120 (pipes get 100; ``$COLUMNS`` wins)."""
    cols = shutil.get_terminal_size((100, 24)).columns
    return max(80, min(120, cols))


def fmt(value: Any, digits: int = 4) -> str:
    """Compact text for a cell: floats to ``digits`` significant digits, ``None`` as ``-``.

    Example:
        >>> fmt(0.123456), fmt(None), fmt(True), fmt({"a": 1})
        ('0.1235', '-', 'true', '{"a":1}')
    """
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return f"{value:.{digits}g}"
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, default=str, separators=(",", ":"))
    if hasattr(value, "isoformat"):
        return value.isoformat(sep=" ", timespec="minutes")
    return str(value)


def elide(text: str, width: int, *, collapse: bool = True) -> str:
    """``text`` on one line, cut to ``width`` characters with a final ``…``.

    ``collapse`` joins runs of whitespace (newlines included) into one space; otherwise only tabs
    become spaces.
    """
    text = " ".join(str(text).split()) if collapse else str(text).replace("\t", " ")
    if len(text) <= width:
        return text
    return text[: max(0, width - 1)] + "…" if width > 1 else text[:width]


def render(
    headers: Sequence[str],
    rows: Sequence[Sequence[Any]],
    format: str = "table",
    *,
    width: int | None = None,
    right: Sequence[int] = (),
    left_elide: Sequence[int] = (),
    keep: Sequence[int] = (),
    min_col: int = 6,
) -> str:
    """``rows`` (lists of cells, one per header) as text in ``format``; no trailing newline.

    Args:
        headers: column titles.
        rows: cells: strings are shown as they are; other values through :func:`fmt` (``table``,
            ``md``) or raw (``csv``, ``json``).
        format: ``"table"``, ``"md"``, ``"csv"`` or ``"json"``.
        width: ``table`` only: the most characters per line (default: :func:`terminal_width`).
        right: ``table``: columns right-aligned besides the numeric ones.
        left_elide: ``table``: columns elided at their start (paths).
        keep: ``table``: columns never narrowed.
        min_col: ``table``: narrowest a narrowed column gets.

    Raises:
        ValueError: unknown ``format``.
    """
    if format == "table":
        return _table(headers, rows, width or terminal_width(), right, left_elide, keep, min_col)
    if format == "md":
        return _markdown(headers, rows)
    if format == "csv":
        return _csv(headers, rows)
    if format == "json":
        records = [{h: jsonable(c) for h, c in zip(headers, row)} for row in rows]
        return json.dumps(records, indent=2, default=str, allow_nan=False)
    raise ValueError(f"unknown table format {format!r}; valid: {', '.join(FORMATS)}")


def _numeric(rows: Sequence[Sequence[Any]], i: int) -> bool:
    values = [r[i] for r in rows if r[i] is not None]
    return bool(values) and all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)


def _table(
    headers: Sequence[str],
    rows: Sequence[Sequence[Any]],
    width: int,
    right: Sequence[int],
    left_elide: Sequence[int],
    keep: Sequence[int],
    min_col: int,
) -> str:
    n = len(headers)
    right = {*right, *(i for i in range(n) if _numeric(rows, i))}
    cells = [[c if isinstance(c, str) else fmt(c) for c in row] for row in rows]
    cells = [[" ".join(c.split()) for c in row] for row in cells]  # one line per cell
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    narrowable = [i for i in range(n) if i not in keep]
    while narrowable and sum(widths) + _SEP * (n - 1) > width:
        i = max(narrowable, key=lambda k: widths[k])
        if widths[i] <= min_col:
            break
        widths[i] -= 1

    def line(values: Sequence[str]) -> str:
        parts = []
        for i, v in enumerate(values):
            if i in left_elide and len(v) > widths[i]:
                v = "…" + v[len(v) - widths[i] + 1 :]
            v = elide(v, widths[i])
            parts.append(v.rjust(widths[i]) if i in right else v.ljust(widths[i]))
        return (" " * _SEP).join(parts).rstrip()

    return "\n".join([line(list(headers)), *(line(r) for r in cells)])


def _markdown(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    def cell(value: Any) -> str:
        text = value if isinstance(value, str) else fmt(value)
        text = " ".join(text.split()).replace("|", "\\|")
        return text.replace("<", "&lt;").replace(">", "&gt;") or " "  # text, never markup

    align = ["---:" if _numeric(rows, i) else "---" for i in range(len(headers))]
    lines = ["| " + " | ".join(cell(h) for h in headers) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _csv(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(headers)
    writer.writerows([[csv_cell(c) for c in row] for row in rows])
    return buffer.getvalue().rstrip("\n")


def csv_cell(value: Any) -> Any:
    """A value as a CSV cell: ``None`` empty, dicts/lists as JSON, datetimes ISO, the rest as is."""
    if value is None:
        return ""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, default=str)
    if hasattr(value, "isoformat"):
        return value.isoformat(sep=" ", timespec="seconds") if hasattr(value, "hour") else value.isoformat()
    return value


def jsonable(value: Any) -> Any:
    """``value`` with NaN/inf as ``None`` and datetimes as ISO strings, recursively (for ``json``)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value
