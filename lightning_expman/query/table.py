"""``Table``: rows of dicts with ordered columns, the unit every query returns; printed through
the one renderer (:mod:`.render`: terminal table, Markdown, CSV, JSON), shown as HTML in notebooks,
exported to CSV, JSON lines and Parquet."""

from __future__ import annotations

import csv
import html
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import QueryError
from .render import csv_cell, fmt, render
from .values import _iso

_EXPORT_FORMATS = ("csv", "jsonl", "parquet")
_HTML_ROWS = 50  # a notebook shows the first rows; the rest are counted
_REPR_COLUMNS = 6


@dataclass
class Table:
    """Rows of dicts with an ordered column list; the unit every query returns and exports.

    In a notebook a Table shows as an HTML table (the first 50 rows); ``repr`` is one line
    (rows, columns); ``print(table)`` is the aligned text table of ``expman ls``.

    Example:
        >>> t = Table(["a", "b"], [{"a": 1, "b": 2.5}])
        >>> t
        <Table: 1 row x 2 columns (a, b)>
        >>> print(t.render("md"))        # or "table" (= str(t)), "csv", "json"
        | a | b |
        | ---: | ---: |
        | 1 | 2.5 |
        >>> t.export("out.csv")          # format from the suffix: .csv, .jsonl/.ndjson, .parquet
        >>> df = t.to_pandas()           # needs pandas (``pip install lightning-expman[export]``)
    """

    columns: list[str]
    rows: list[dict[str, Any]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.rows)

    def __repr__(self) -> str:
        shown = ", ".join(self.columns[:_REPR_COLUMNS])
        more = f", … {len(self.columns) - _REPR_COLUMNS} more" if len(self.columns) > _REPR_COLUMNS else ""
        rows = f"{len(self.rows)} row{'' if len(self.rows) == 1 else 's'}"
        columns = f"{len(self.columns)} column{'' if len(self.columns) == 1 else 's'}"
        return f"<Table: {rows} x {columns} ({shown}{more})>"

    def __str__(self) -> str:
        return self.render("table")

    def render(self, format: str = "table", *, width: int | None = None) -> str:
        """The table as text: ``"table"`` (aligned, fit to ``width`` or the terminal), ``"md"``,
        ``"csv"`` or ``"json"`` (see :mod:`lightning_expman.query.render`).

        Raises:
            QueryError: unknown format.
        """
        if format == "json":
            return json.dumps(self.to_records(), indent=2, default=str, allow_nan=False)
        try:
            return render(
                self.columns, [[row.get(c) for c in self.columns] for row in self.rows], format, width=width
            )
        except ValueError as e:
            raise QueryError(str(e)) from None

    def _repr_html_(self) -> str:
        """Jupyter's rich display: an HTML table of the first rows, values as ``expman`` shows them."""
        head = "".join(f"<th>{html.escape(c)}</th>" for c in self.columns)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(fmt(row.get(c)))}</td>" for c in self.columns) + "</tr>"
            for row in self.rows[:_HTML_ROWS]
        )
        more = len(self.rows) - _HTML_ROWS
        note = f"<p>… {more} more rows ({len(self.rows)} in all)</p>" if more > 0 else ""
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{note}"

    def column(self, name: str) -> list[Any]:
        """All values of one column."""
        return [row.get(name) for row in self.rows]

    def to_records(self) -> list[dict[str, Any]]:
        """Rows as JSON-ready dicts (every column present, datetimes as ISO strings)."""
        return [{c: _iso(row.get(c)) for c in self.columns} for row in self.rows]

    def to_pandas(self) -> Any:
        """A ``pandas.DataFrame`` with the table's columns."""
        try:
            import pandas as pd
        except ImportError as e:
            raise QueryError(
                "pandas is needed for DataFrames; install it with: pip install 'lightning-expman[export]'"
            ) from e
        return pd.DataFrame(
            [{c: row.get(c) for c in self.columns} for row in self.rows], columns=self.columns
        )

    def export(self, path: str | Path, format: str | None = None) -> Path:
        """Write the table to ``path`` as CSV, JSON lines or Parquet.

        Args:
            path: output file; parent folders are created.
            format: ``"csv"``, ``"jsonl"`` or ``"parquet"``; default from the suffix
                (``.csv``, ``.jsonl``/``.ndjson``/``.json``, ``.parquet``/``.pq``).

        Raises:
            QueryError: unknown format, or pyarrow missing for Parquet (naming the extra).
            ConfigError: ``path`` is empty or a folder (nothing is written).
            OSError: the file cannot be written; no half-written file is left behind.
        """
        from .output import check_output_path, output_file

        path = check_output_path(path)
        fmt = export_format(path, format)
        with output_file(path) as tmp:
            getattr(self, f"_write_{fmt}")(tmp)
        return path

    def _write_csv(self, path: Path) -> None:
        with path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(self.columns)
            for row in self.rows:
                writer.writerow([csv_cell(row.get(c)) for c in self.columns])

    def _write_jsonl(self, path: Path) -> None:
        with path.open("w", encoding="utf-8") as fh:
            for record in self.to_records():
                fh.write(json.dumps(record, default=str, allow_nan=False, sort_keys=False) + "\n")

    def _write_parquet(self, path: Path) -> None:
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError as e:
            raise QueryError(
                "Parquet export needs pyarrow; install it with: pip install 'lightning-expman[export]'"
            ) from e
        data = {c: [_parquet_cell(row.get(c)) for row in self.rows] for c in self.columns}
        # Mixed-type columns (a param that is 0.1 in one trial and "auto" in another) become text.
        arrays = {}
        for c, values in data.items():
            try:
                arrays[c] = pa.array(values)
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                arrays[c] = pa.array([None if v is None else json.dumps(v, default=str) for v in values])
        pq.write_table(pa.table(arrays), path)


def export_format(path: str | Path, format: str | None = None) -> str:
    """The export format of :meth:`Table.export`: ``format``, else from ``path``'s suffix.

    Raises:
        QueryError: neither names one of csv, jsonl, parquet.
    """
    if format is None:
        suffix = Path(path).suffix.lower().lstrip(".")
        format = {"ndjson": "jsonl", "json": "jsonl", "pq": "parquet"}.get(suffix, suffix or "csv")
    fmt = format.lower()
    if fmt not in _EXPORT_FORMATS:
        raise QueryError(f"unknown export format {fmt!r}; valid: {', '.join(_EXPORT_FORMATS)}")
    return fmt


def _parquet_cell(value: Any) -> Any:
    if isinstance(value, dict | list):
        return json.dumps(value, default=str)
    return value


class _MetaTable(Table):
    """A Table carrying a ``meta`` dict (how its values were computed)."""

    meta: dict[str, Any]
