"""Self-contained HTML pages: one file, plotly.js inlined, every user string escaped.

The page needs no network: plotly.js is read from the installed ``plotly`` package and inlined
once in ``<head>``; each chart is a ``<div class="plotly-graph-div">`` drawn by ``Plotly.newPlot``
from JSON that plotly escapes for ``<script>`` (``<`` as ``\\u003c``). Text that reaches the
HTML (titles, trial names, config values, error messages) goes through :func:`esc`; text that
reaches a chart (trace names, axis titles) goes through :func:`esc` as well, because plotly.js
interprets a subset of HTML tags in labels and decodes entities back to plain characters.
"""

from __future__ import annotations

import datetime as _dt
import html
import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ..errors import QueryError

__all__ = ["Page", "esc", "fmt_cell"]

_CSS = """
:root { --fg:#1f2933; --muted:#616e7c; --line:#e4e7eb; --accent:#2563eb; --best:#e6f4ea; --bad:#b91c1c; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg);
       margin: 0; background: #f8fafc; }
header { background: #0f172a; color: #f8fafc; padding: 18px 28px; }
header h1 { margin: 0 0 4px; font-size: 22px; font-weight: 600; }
header .sub { color: #cbd5e1; font-size: 13px; }
main { padding: 8px 28px 40px; max-width: 1400px; margin: 0 auto; }
section { background: #fff; border: 1px solid var(--line); border-radius: 8px; margin: 18px 0;
          padding: 14px 18px; }
section h2 { font-size: 16px; margin: 0 0 10px; }
section p.note { color: var(--muted); margin: 0 0 10px; font-size: 13px; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: #f1f5f9; font-weight: 600; position: sticky; top: 0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.best td { background: var(--best); font-weight: 600; }
.scroll { max-height: 480px; overflow: auto; }
/* auto-fill (not auto-fit): a chart drawn before its neighbours exist already gets its final width */
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(520px, 1fr)); gap: 14px; }
.chart { min-height: 380px; }
.badge { display: inline-block; padding: 1px 7px; border-radius: 10px; font-size: 12px; background: #e2e8f0; }
.badge.COMPLETED { background: #dcfce7; } .badge.FAILED, .badge.ABORTED { background: #fee2e2; }
.badge.STOPPED { background: #fef9c3; } .badge.RUNNING { background: #dbeafe; }
.badge.LOST { background: #fde68a; } .badge.PRUNED { background: #ede9fe; }
pre.error { color: var(--bad); white-space: pre-wrap; margin: 0; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 12px; }
.facts { display: flex; flex-wrap: wrap; gap: 8px 26px; margin: 0 0 12px; }
.facts div { display: flex; flex-direction: column; }
.facts span { color: var(--muted); font-size: 11px; text-transform: uppercase; letter-spacing: .04em; }
.facts b { font-weight: 600; }
footer { color: var(--muted); font-size: 12px; text-align: center; padding: 12px; }
"""

_PLOTLY_CONFIG = {"displaylogo": False, "responsive": True}


def esc(value: Any) -> str:
    """HTML-escape any value's text (quotes included)."""
    return html.escape("" if value is None else str(value), quote=True)


def fmt_cell(value: Any, digits: int = 5) -> str:
    """Plain text for a table cell: floats to ``digits`` significant digits, None as an en dash."""
    if value is None:
        return "\u2013"  # en dash
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.{digits}g}"
    if isinstance(value, dict | list):
        return json.dumps(value, default=str)
    if isinstance(value, _dt.datetime):
        return value.isoformat(sep=" ", timespec="seconds")
    return str(value)


def _plotly_js() -> str:
    try:
        from plotly.offline import get_plotlyjs
    except ImportError as e:
        raise QueryError(
            "HTML reports need plotly; install it with: pip install 'lightning-expman[report]'"
        ) from e
    return get_plotlyjs()


class Page:
    """An HTML report being assembled: sections of tables, charts and text, written as one file.

    Example:
        >>> page = Page("digits", subtitle="grid report")
        >>> page.section("Trials", page.table(["trial", "mean"], [["a", 0.5]]))
        >>> page.write("report.html")
    """

    def __init__(self, title: str, subtitle: str = "") -> None:
        self.title = title
        self.subtitle = subtitle
        self.parts: list[str] = []
        self._n = 0

    # ------------------------------------------------------------------ building blocks

    def table(
        self,
        headers: Sequence[str],
        rows: Iterable[Sequence[Any]],
        *,
        numeric: Sequence[int] | None = None,
        highlight: Sequence[bool] | None = None,
        scroll: bool = False,
    ) -> str:
        """An escaped HTML table; numeric columns (auto-detected when ``numeric`` is None) align right."""
        rows = [list(r) for r in rows]
        if numeric is None:
            numeric = [
                i
                for i in range(len(headers))
                if rows and all(isinstance(r[i], int | float) or r[i] is None for r in rows)
            ]
        head = "".join(f"<th>{esc(h)}</th>" for h in headers)
        body = []
        for k, row in enumerate(rows):
            cls = ' class="best"' if highlight and highlight[k] else ""
            cells = "".join(
                f'<td class="num">{esc(fmt_cell(c))}</td>' if i in numeric else f"<td>{esc(fmt_cell(c))}</td>"
                for i, c in enumerate(row)
            )
            body.append(f"<tr{cls}>{cells}</tr>")
        out = f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
        return f'<div class="scroll">{out}</div>' if scroll else out

    def kv_table(self, items: Iterable[tuple[Any, Any]], *, scroll: bool = True) -> str:
        """A two-column key/value table."""
        return self.table(["key", "value"], [[k, v] for k, v in items], numeric=[], scroll=scroll)

    def chart(self, fig: Any) -> str:
        """A plotly figure as a div + script (plotly.js itself is inlined once in the head)."""
        import plotly.io as pio

        self._n += 1
        return pio.to_html(
            fig,
            include_plotlyjs=False,
            full_html=False,
            div_id=f"chart-{self._n}",
            config=_PLOTLY_CONFIG,
            default_height="380px",
        ).join(['<div class="chart">', "</div>"])

    def facts(self, items: Iterable[tuple[Any, Any]]) -> str:
        """Short labelled values in a wrapping row (a run's identity, status, duration...)."""
        cells = "".join(f"<div><span>{esc(k)}</span><b>{esc(fmt_cell(v))}</b></div>" for k, v in items)
        return f'<div class="facts">{cells}</div>'

    def grid(self, blocks: Iterable[str]) -> str:
        """Blocks side by side, wrapping to the page width."""
        return '<div class="grid">' + "".join(blocks) + "</div>"

    def note(self, text: str) -> str:
        return f'<p class="note">{esc(text)}</p>'

    def section(self, title: str, *blocks: str, anchor: str | None = None) -> None:
        """Append a titled section (blocks are trusted HTML built by this class)."""
        aid = f' id="{esc(anchor)}"' if anchor else ""
        self.parts.append(f"<section{aid}><h2>{esc(title)}</h2>{''.join(blocks)}</section>")

    # ------------------------------------------------------------------ output

    def render(self) -> str:
        """The whole document as a string."""
        generated = _dt.datetime.now().astimezone().isoformat(timespec="seconds")
        return (
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{esc(self.title)}</title><style>{_CSS}</style>"
            f'<script type="text/javascript">{_plotly_js()}</script></head><body>'
            f'<header><h1>{esc(self.title)}</h1><div class="sub">{esc(self.subtitle)}</div></header>'
            f"<main>{''.join(self.parts)}</main>"
            f"<footer>generated by lightning_expman on {esc(generated)}; works offline</footer>"
            "</body></html>\n"
        )

    def write(self, path: str | Path) -> Path:
        """Write the page to ``path`` (parent folders created, written atomically); returns the path.

        Raises:
            ConfigError: ``path`` is empty or a folder (nothing is written).
            OSError: the file cannot be written (no space, permission...).
        """
        from ..query.output import output_file

        html = self.render()
        with output_file(path, example="report.html") as tmp:
            tmp.write_text(html, encoding="utf-8")
        return Path(path)
