"""Plotly figures for the reports. Every label that comes from the database is escaped."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from .html import esc

__all__ = [
    "bar_mean_std",
    "curves",
    "group_metrics",
    "mean_std_bands",
    "parallel_coordinates",
    "param_scatter",
    "per_label_bars",
    "per_label_curves",
]

PALETTE = [
    "#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2",
    "#ca8a04", "#db2777", "#4b5563", "#65a30d", "#7c3aed", "#0d9488",
]  # fmt: skip


def _go() -> Any:
    try:
        import plotly.graph_objects as go
    except ImportError:
        from .html import _plotly_js

        _plotly_js()  # raises the one-line QueryError naming the [report] extra
        raise
    return go


def _layout(title: str, x: str, y: str, **extra: Any) -> dict[str, Any]:
    return {
        "title": {"text": esc(title), "font": {"size": 14}},
        "xaxis": {"title": {"text": esc(x)}},
        "yaxis": {"title": {"text": esc(y)}},
        "template": "plotly_white",
        "margin": {"l": 60, "r": 20, "t": 44, "b": 48},
        "legend": {"orientation": "h", "y": -0.22},
        "hovermode": "x unified",
        **extra,
    }


def color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def _rgba(hex_color: str, alpha: float) -> str:
    r, g, b = (int(hex_color[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def group_metrics(names: Sequence[str]) -> dict[str, list[str]]:
    """Group metric names sharing a stem: train_loss_epoch/val_loss -> "loss"; lr alone -> "lr"."""
    groups: dict[str, list[str]] = defaultdict(list)
    for name in names:
        stem = name
        for prefix in ("train_", "val_", "valid_", "test_", "train/", "val/", "test/"):
            if stem.startswith(prefix):
                stem = stem[len(prefix) :]
                break
        for suffix in ("_epoch", "_step"):  # Lightning's on_step+on_epoch names
            if stem.endswith(suffix) and len(stem) > len(suffix):
                stem = stem[: -len(suffix)]
                break
        groups[stem].append(name)
    return dict(groups)


def curves(
    series: Mapping[str, tuple[Sequence[float], Sequence[float | None]]], title: str, x: str, y: str
) -> Any:
    """One line per named series: ``{name: (xs, ys)}``."""
    go = _go()
    fig = go.Figure()
    for i, (name, (xs, ys)) in enumerate(series.items()):
        fig.add_trace(
            go.Scatter(
                x=list(xs), y=list(ys), mode="lines+markers" if len(xs) <= 60 else "lines",
                name=esc(name), line={"color": color(i)}, marker={"size": 5},
            )
        )  # fmt: skip
    fig.update_layout(**_layout(title, x, y))
    return fig


def mean_std_bands(groups: Mapping[str, Mapping[int, list[float]]], title: str, x: str, y: str) -> Any:
    """Mean line with a ±1 std band over repeats, per group: ``{trial: {epoch: [values...]}}``."""
    go = _go()
    fig = go.Figure()
    for i, (name, by_x) in enumerate(groups.items()):
        xs = sorted(by_x)
        means, lo, hi = [], [], []
        for xv in xs:
            vals = [v for v in by_x[xv] if v is not None and math.isfinite(v)]
            if not vals:
                means.append(None)
                lo.append(None)
                hi.append(None)
                continue
            m = sum(vals) / len(vals)
            s = math.sqrt(sum((v - m) ** 2 for v in vals) / (len(vals) - 1)) if len(vals) > 1 else 0.0
            means.append(m)
            lo.append(m - s)
            hi.append(m + s)
        c = color(i)
        n = max((len(v) for v in by_x.values()), default=0)
        label = esc(f"{name} (n={n})")
        fig.add_trace(
            go.Scatter(
                x=xs + xs[::-1], y=hi + lo[::-1], fill="toself", fillcolor=_rgba(c, 0.15),
                line={"width": 0}, hoverinfo="skip", showlegend=False, legendgroup=label, name=label,
            )
        )  # fmt: skip
        fig.add_trace(
            go.Scatter(
                x=xs, y=means, mode="lines", name=label, legendgroup=label, line={"color": c, "width": 2}
            )
        )
    fig.update_layout(**_layout(title, x, y))
    return fig


def bar_mean_std(rows: Sequence[Mapping[str, Any]], metric: str, mode: str) -> Any:
    """Bars of each trial's mean with ±std error bars; the best trial highlighted."""
    go = _go()
    names = [esc(r["trial"]) for r in rows]
    fig = go.Figure(
        go.Bar(
            x=names,
            y=[r["mean"] for r in rows],
            error_y={"type": "data", "array": [r["std"] or 0.0 for r in rows], "visible": True},
            marker={"color": ["#16a34a" if r["is_best"] else "#94a3b8" for r in rows]},
            text=[f"n={r['n']}" for r in rows],
            textposition="inside",
            insidetextanchor="start",
            hovertemplate="%{x}<br>mean %{y:.4g}<extra></extra>",
        )
    )
    fig.update_layout(
        **_layout(f"{metric} per trial: mean ± std over repeats ({mode} is better)", "trial", metric)
    )
    fig.update_layout(hovermode="closest")
    return fig


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def param_scatter(
    key: str, points: Sequence[tuple[Any, float, str]], trial_rows: Sequence[Mapping[str, Any]], metric: str
) -> Any:
    """A hyperparameter against the metric: one dot per run, the trial means ± std as bars.

    ``points`` are ``(param value, metric value, trial name)``.
    """
    go = _go()
    numeric = all(_is_number(p) for p, _, _ in points)
    xs = [p if numeric else esc(str(p)) for p, _, _ in points]
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=xs, y=[v for _, v, _ in points], mode="markers", name="runs",
            text=[esc(t) for _, _, t in points], marker={"size": 8, "opacity": 0.55, "color": "#2563eb"},
            hovertemplate="%{text}<br>" + esc(key) + "=%{x}<br>%{y:.4g}<extra></extra>",
        )
    )  # fmt: skip
    # One diamond per trial (its mean ± std over repeats) at the trial's value of the parameter.
    means = [r for r in trial_rows if r["mean"] is not None and key in r["params"]]
    fig.add_trace(
        go.Scatter(
            x=[r["params"][key] if numeric else esc(str(r["params"][key])) for r in means],
            y=[r["mean"] for r in means], mode="markers", name="trial mean ± std",
            text=[esc(r["trial"]) for r in means],
            marker={"size": 11, "symbol": "diamond", "color": "#dc2626"},
            error_y={"type": "data", "array": [r["std"] or 0.0 for r in means], "visible": True},
            hovertemplate="%{text}<br>mean %{y:.4g}<extra></extra>",
        )
    )  # fmt: skip
    positives = [p for p in xs if _is_number(p) and p > 0]
    log = (
        numeric and len(positives) == len(xs) and len(positives) > 1 and max(positives) / min(positives) >= 10
    )
    fig.update_layout(**_layout(f"{key} vs {metric}", key, metric))
    fig.update_layout(hovermode="closest")
    if log:
        fig.update_xaxes(type="log")
    elif not numeric:
        fig.update_xaxes(type="category")
    return fig


def parallel_coordinates(
    keys: Sequence[str], runs: Sequence[Mapping[str, Any]], metric: str, mode: str
) -> Any:
    """One line per run through each hyperparameter and the metric (categorical params as indices)."""
    go = _go()
    dims = []
    for key in keys:
        values = [r["params"].get(key) for r in runs]
        if all(_is_number(v) for v in values):
            dims.append({"label": esc(key), "values": values})
        else:
            cats = sorted({str(v) for v in values})
            index = {c: i for i, c in enumerate(cats)}
            dims.append(
                {
                    "label": esc(key),
                    "values": [index[str(v)] for v in values],
                    "tickvals": list(range(len(cats))),
                    "ticktext": [esc(c) for c in cats],
                }
            )
    values = [r["value"] for r in runs]
    dims.append({"label": esc(metric), "values": values})
    scale = "Viridis_r" if mode == "min" else "Viridis"
    fig = go.Figure(
        go.Parcoords(
            line={
                "color": values,
                "colorscale": scale,
                "showscale": True,
                "colorbar": {"title": esc(metric)},
            },
            dimensions=dims,
        )
    )
    # No figure title: the section heading says what it is, and a title collides with the axis labels.
    fig.update_layout(template="plotly_white", margin={"l": 70, "r": 70, "t": 60, "b": 30})
    return fig


def per_label_curves(name: str, history: Sequence[Mapping[str, Any]]) -> Any:
    """One line per label of a per-label metric over epochs."""
    series: dict[str, tuple[list, list]] = {}
    for row in history:
        for label, value in (row.get("per_label") or {}).items():
            xs, ys = series.setdefault(str(label), ([], []))
            xs.append(row["epoch"])
            ys.append(value)
    return curves({f"label {k}": v for k, v in sorted(series.items())}, f"{name} per label", "epoch", name)


def per_label_bars(name: str, per_run: Mapping[str, Mapping[str, float]]) -> Any:
    """Grouped bars of final per-label values: ``{run label: {label: value}}``."""
    go = _go()
    fig = go.Figure()
    for i, (run, values) in enumerate(per_run.items()):
        labels = sorted(values, key=str)
        fig.add_trace(
            go.Bar(
                x=[esc(str(k)) for k in labels],
                y=[values[k] for k in labels],
                name=esc(run),
                marker_color=color(i),
            )
        )
    fig.update_layout(**_layout(f"{name}: final value per label", "label", name), barmode="group")
    fig.update_xaxes(type="category")
    return fig
