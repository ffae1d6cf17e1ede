"""What the read commands (``ls``, ``show``, ``compare``, ``diff``, ``export``, ``report``) share:
their options (``--db``, ``--format``, ``--mode``, run ids, tags) and their output in the chosen
``--format``.

``--format table`` (the default) fits the terminal; ``md`` prints Markdown (headings and tables,
nothing elided) to paste into a notebook, an issue or a report; ``csv`` prints the command's main
table only (the runs of ``show EXPERIMENT``, the metrics of ``show RUN``), raw values in full;
``json`` (or ``--json``) prints everything as one JSON document. Tables are drawn by the one
renderer, :mod:`lightning_expman.query.render`, imported when a command prints (``expman --help``
does not load the read side).
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable, Sequence
from typing import Any

from .errors import ConfigError

__all__ = [
    "FORMATS",
    "Output",
    "add_db",
    "add_format",
    "add_mode",
    "add_tag",
    "open_query",
    "resolve_db",
    "run_ref",
    "with_db",
]

# The renderer's formats (query/render.py FORMATS; a test checks both agree). Spelled out here so
# that building the parser does not import the read side.
FORMATS = ("table", "md", "csv", "json")

_STATUS_ORDER = ("RUNNING", "COMPLETED", "STOPPED", "PRUNED", "FAILED", "ABORTED", "LOST", "SKIPPED")


# --------------------------------------------------------------------------- options


def add_db(p: argparse.ArgumentParser) -> None:
    """``--db URL`` (resolved by :func:`with_db`)."""
    p.add_argument(
        "--db",
        default=None,
        metavar="URL",
        help="database URL (default: $EXPMAN_DB, else the last `expman run` here, else "
        "sqlite:///expman_runs/expman.db)",
    )


def add_format(p: argparse.ArgumentParser, main_table: str) -> None:
    """``--format table|md|csv|json`` and ``--json`` (short for ``--format json``)."""
    p.add_argument(
        "--format",
        choices=FORMATS,
        default="table",
        help=f"table (default: fits the terminal), md (Markdown), csv ({main_table}), json",
    )
    p.add_argument("--json", dest="format", action="store_const", const="json", help="same as --format json")


def add_mode(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--mode",
        choices=("min", "max", "auto"),
        default="auto",
        help="whether lower or higher is better (auto: min for loss/error-like names, else max)",
    )


def run_ref(text: str) -> str:
    """argparse type of a run id: digits, or ``run:`` and digits."""
    digits = text[4:] if text.startswith("run:") else text
    if not digits.isdigit():
        raise argparse.ArgumentTypeError(f"must be a run id (digits, or run:ID), got {text!r}")
    return text


def tag_filter(text: str) -> str:
    """argparse type of a ``--tag KEY[=VALUE]`` filter (a malformed one is a usage error)."""
    from .errors import QueryError
    from .query import parse_tags

    try:
        parse_tags([text])
    except QueryError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


def add_tag(p: argparse.ArgumentParser, help: str = "only runs with this tag (repeatable)") -> None:
    p.add_argument("--tag", action="append", default=[], type=tag_filter, metavar="KEY[=VALUE]", help=help)


def resolve_db(args: argparse.Namespace) -> str:
    """The database URL of a command: ``--db``, else the default (``$EXPMAN_DB``, the last run's).

    Raises:
        ConfigError: the URL is malformed (exit 2), naming ``--db`` or ``EXPMAN_DB``.
    """
    from ._state import STATE_FILE, default_db_url
    from .db.connect import parse_url
    from .errors import DatabaseError

    url = args.db if args.db is not None else default_db_url()
    if args.db is not None:
        source: str | None = "--db"
    elif os.environ.get("EXPMAN_DB"):
        source = "EXPMAN_DB"
    else:  # the last `expman run` here, or the built-in default
        source = str(STATE_FILE) if STATE_FILE.is_file() else None
    try:
        parse_url(url)
    except DatabaseError as e:  # a malformed URL is a usage error; an unreachable one is not
        raise ConfigError(str(e), key=source) from None
    return url


def with_db(handler: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """``handler`` with ``args.db`` resolved by :func:`resolve_db` first."""

    def run(args: argparse.Namespace) -> int:
        args.db = resolve_db(args)
        return handler(args)

    return run


def open_query(args: argparse.Namespace) -> Any:
    """A read-only :class:`~lightning_expman.query.Query` on ``args.db``: read commands never
    create or alter a file."""
    from .query import Query

    return Query(args.db, read_only=True)


# --------------------------------------------------------------------------- cell text


def status_text(statuses: dict[str, int]) -> str:
    """``{"FAILED": 1, "COMPLETED": 8}`` -> ``8 completed, 1 failed`` (the lifecycle's order)."""
    keys = sorted(statuses, key=lambda s: (_STATUS_ORDER.index(s) if s in _STATUS_ORDER else 99, s))
    return ", ".join(f"{statuses[k]} {k.lower()}" for k in keys) or "-"


def tags_text(tags: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" if v is not True else k for k, v in sorted(tags.items())) or "-"


def mean_std_text(mean: float | None, std: float | None, n: int) -> str:
    if mean is None:
        return "-"
    if std is None:
        return f"{mean:.4g} (n={n})"
    return f"{mean:.4g} ± {std:.2g} ({n})"


def short_keys(keys: Sequence[str]) -> dict[str, str]:
    """Shortest unique dotted suffix of each key: ``model.init_args.lr`` -> ``lr``."""
    out = {}
    for key in keys:
        parts = key.split(".")
        for n in range(1, len(parts) + 1):
            cand = ".".join(parts[-n:])
            if sum(1 for k in keys if k == cand or k.endswith("." + cand)) == 1:
                out[key] = cand
                break
        else:
            out[key] = key
    return out


# --------------------------------------------------------------------------- output


class Output:
    """A command's output in one ``--format``: free text, section titles and tables.

    ``table``: text elided to the terminal width; ``md``: text as paragraphs, ``### `` headings,
    Markdown tables; ``csv``: only the table marked ``main``; ``json``: only :meth:`json`.

    Example:
        >>> out = Output("md")
        >>> out.say("Run 12  digits / lr-0.1")
        >>> out.section("METRICS")
        >>> out.table(["METRIC", "FINAL"], [["val_loss", 0.31]], main=True)
    """

    def __init__(self, format: str = "table") -> None:
        self.format = format
        self._started = False  # something was printed: a Markdown table needs a blank line first
        self._table_last = False  # the last thing printed was a table

    @property
    def is_json(self) -> bool:
        return self.format == "json"

    def say(self, text: str = "") -> None:
        """Free text (``table``: each line elided to the terminal width)."""
        if self.format == "table":
            from .query.render import elide, terminal_width

            width = terminal_width()
            text = "\n".join(
                elide(line, width, collapse=False) if line.strip() else "" for line in text.split("\n")
            )
        if self.format == "md" and self._table_last:
            text = "\n" + text  # text right under a Markdown table would be read as one more row
        if self.format in ("table", "md"):
            print(text)
            self._started, self._table_last = True, False

    def section(self, title: str) -> None:
        """A section title: a blank line and ``TITLE`` (``md``: a ``###`` heading)."""
        if self.format == "md":
            print(f"\n### {title}")
            self._started, self._table_last = True, False
        else:
            self.say(f"\n{title}")

    def table(
        self, headers: Sequence[str], rows: Sequence[Sequence[Any]], *, main: bool = False, **opts: Any
    ) -> None:
        """A table; ``opts`` are :func:`~lightning_expman.query.render.render`'s ``table`` options.
        With ``--format csv`` only the ``main`` table is printed."""
        from .query.render import render

        if self.format == "md":
            print(("\n" if self._started else "") + render(headers, rows, "md"))
            self._started, self._table_last = True, True
        elif self.format == "table":
            print(render(headers, rows, "table", **opts))
        elif self.format == "csv" and main:
            print(render(headers, rows, "csv"))

    def json(self, data: Any) -> None:
        """``data`` as one JSON document (NaN as ``null``, datetimes ISO)."""
        from .query.render import jsonable

        print(json.dumps(jsonable(data), default=str, indent=2, allow_nan=False))
