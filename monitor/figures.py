"""Pure figure builders: long frames from :mod:`monitor.data` in, ``plotly.graph_objects.Figure`` out.

The timeline is one figure with one shared x axis and a stacked y axis per row (latency, throughput,
errors, queue, connections, server, send lag), so zoom is linked by construction and
``hoversubplots="axis"`` plus an x spike line give a crosshair across every row. Each row has its own
legend beside it. Every trace carries its series key in ``meta`` (:func:`series_key`, :func:`trace_key`),
which is how live updates find the trace to extend (:func:`extend_points`).

Colours are fixed per message type (:func:`charts.palette.type_colour`, shared with the reports), so
``chat_message`` is the same blue in latency, throughput and errors, and in every run; a compared run is
drawn in the same colours, fainter and dotted.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from charts.palette import STATE_COLOURS, error_colour, type_colour
from charts.server import display_name
from charts.spectrum import axis_ticks, inverse_tail

__all__ = [
    "COMPARE_PREFIX",
    "FONT",
    "STATE_COLOURS",
    "TimelineRow",
    "alert_shading",
    "empty_figure",
    "extend_points",
    "jsonable",
    "log_ticks",
    "make_spectrum",
    "make_timeline",
    "safe_uid",
    "series_key",
    "timeline_rows",
    "to_ms",
    "to_ms_list",
    "trace_key",
    "type_colour",
]

FONT: Final = "Inter, system-ui, -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif"
_INK: Final = "#1f2937"
_MUTED: Final = "#6b7280"
_GRID: Final = "#eef0f3"
COMPARE_PREFIX: Final = "B:"
"""Series keys of a compared run start with this."""

_EVENT_STYLE: Final[dict[str, tuple[str, str]]] = {
    "connected": ("triangle-up", "#16a34a"),
    "reconnecting": ("diamond", "#f59e0b"),
    "disconnected": ("triangle-down", "#dc2626"),
    "connect_failed": ("x", "#b91c1c"),
    "gave_up": ("x-thin-open", "#111827"),
    "alert_firing": ("star", "#dc2626"),
    "alert_resolved": ("star-open", "#16a34a"),
}
_STAT_STYLE: Final[dict[str, dict[str, Any]]] = {
    "p50": {"width": 1.2, "dash": "solid"},
    "p90": {"width": 1.3, "dash": "dashdot"},
    "p95": {"width": 1.3, "dash": "dash"},
    "p99": {"width": 2.0, "dash": "solid"},
    "p99.9": {"width": 1.5, "dash": "longdash"},
    "max": {"width": 1.0, "dash": "dot"},
}


def series_key(family: str, name: str, stat: str, compare: bool = False) -> str:
    """The key of a timeline trace: ``latency/ack:chat_message/p99`` (``B:`` first for a compared run)."""
    return f"{COMPARE_PREFIX if compare else ''}{family}/{name}/{stat}"


def safe_uid(key: str) -> str:
    """A Plotly ``uid`` for a series key (Plotly builds CSS selectors from uids: letters and digits only)."""
    return "s" + hashlib.sha1(key.encode()).hexdigest()[:16]


def trace_key(trace: Any) -> str:
    """The series key of a trace built here (kept in its ``meta``)."""
    meta = trace.meta if not isinstance(trace, dict) else trace.get("meta")
    return str(meta[0]) if meta else ""


def to_ms(t: np.ndarray) -> np.ndarray:
    """Unix seconds → epoch milliseconds (0.1 ms steps), as Plotly date axes read numbers."""
    return np.round(np.asarray(t, dtype=np.float64) * 1000.0, 1)


def to_ms_list(t: Iterable[float]) -> list[float]:
    """:func:`to_ms` as a list, for JSON."""
    return to_ms(np.fromiter(t, dtype=np.float64)).tolist()


def _rounded(v: np.ndarray) -> np.ndarray:
    """Values to 4 decimals (0.1 us for milliseconds): a third of the JSON, no visible difference."""
    return np.round(np.asarray(v, dtype=np.float64), 4)


_ARRAY_KEYS: Final = ("x", "y", "customdata")


def jsonable(fig: go.Figure) -> dict[str, Any]:
    """The figure as a plain dict whose data arrays are JSON lists (NaN → null), ready for a Dash output.

    Figures are built with numpy arrays (Plotly validates them in one step instead of element by element);
    Plotly would send those as base64 typed arrays, which live updates could not ``extend``.
    """
    figure = {"data": [t.to_plotly_json() for t in fig.data], "layout": fig.layout.to_plotly_json()}
    for trace in figure["data"]:
        for key in _ARRAY_KEYS:
            if isinstance(trace.get(key), np.ndarray):
                trace[key] = trace[key].tolist()
        marker = trace.get("marker")
        if isinstance(marker, dict) and isinstance(marker.get("size"), np.ndarray):
            marker["size"] = marker["size"].tolist()
    return figure


_SPARSE: Final = 60
"""Series with fewer points than this are drawn with markers too (a lone point has no line)."""
_EVENT_Y: Final = 0.92
"""Event markers sit near the top of the connection row, on an overlaid 0..1 axis."""


def _event_sizes(counts: Iterable[float]) -> list[float]:
    return [round(min(18.0, 6.0 + 3.0 * math.log10(1.0 + c)), 1) for c in counts]


def _values(v: Iterable[float]) -> list[float | None]:
    """JSON-ready values: rounded, NaN as ``None`` (a gap)."""
    return [None if x != x else x for x in _rounded(np.fromiter(v, dtype=np.float64)).tolist()]


# --- log-axis ticks -----------------------------------------------------------------------------------------

_TICK_DECADES: Final = range(-3, 7)
"""Latency ticks from 0.001 ms to 5,000 s: every value a live run could grow into stays labelled."""


def _tick_label(ms: float) -> str:
    """``0.05``, ``1``, ``200`` (milliseconds); ``1 s``, ``20 s`` from a second on."""
    return f"{ms / 1000:g} s" if ms >= 1000 else f"{ms:g}"


def log_ticks(*values: Iterable[float]) -> dict[str, Any]:
    """Plotly axis settings that label a log latency axis in plain numbers: 0.1, 1, 10, 100 ms, 1 s.

    Plotly's own log ticks either print bare mantissas between decades (``2 5 1 2 5``: which decade?) or
    exponents; explicit ticks read at a glance. Their density follows the spread of ``values``: every
    1..9 within a decade, 1-2-5 over up to two and a half decades, decades beyond.
    """
    arrays = [np.asarray(list(v) if not isinstance(v, np.ndarray) else v, dtype=np.float64) for v in values]
    every = np.concatenate(arrays) if arrays else np.empty(0)
    shown = every[np.isfinite(every) & (every > 0)]
    spread = math.log10(shown.max() / shown.min()) if shown.size else 3.0
    steps = (1, 2, 3, 4, 5, 6, 7, 8, 9) if spread < 0.7 else (1, 2, 5) if spread <= 2.5 else (1,)
    ticks = [round(m * 10.0**k, 6) for k in _TICK_DECADES for m in steps]
    return {"tickmode": "array", "tickvals": ticks, "ticktext": [_tick_label(v) for v in ticks]}


# --- timeline -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TimelineRow:
    """One stacked row of the timeline."""

    family: str
    title: str
    weight: float
    log: bool = False


_ROWS: Final = (
    TimelineRow(
        "latency",
        "Latency (ms, log scale)  <span style='color:#6b7280'>p50 thin · p95 dashed · p99 thick · "
        "max dotted</span>",
        3.0,
        log=True,
    ),
    TimelineRow(
        "generator",
        "Load generator, worst process: loop lag and GC pause (ms), CPU (% of a core)  "
        "<span style='color:#6b7280'>shaded: generator-bound</span>",
        1.3,
    ),
    TimelineRow("throughput", "Throughput (messages/s)", 2.0),
    TimelineRow("errors", "Errors by code (/s)", 1.3),
    TimelineRow("queue", "Client outbound queue (messages per user)", 1.3),
    TimelineRow("connections", "Connection state (users) and events", 1.8),
    TimelineRow("server", "Server metrics (rates /s, percentiles ms)", 1.6),
    TimelineRow("server_gauge", "Server gauges", 1.2),
    TimelineRow("send_lag", "Open-model send lag (ms)", 1.3),
)
_GENERATOR_COLOURS: Final = {"loop lag ms": "#b45309", "GC pause ms": "#7c3aed", "CPU %": "#64748b"}
_BOUND_FILL: Final = "rgba(234, 179, 8, 0.16)"
"""Shading of generator-bound buckets on the latency and generator rows."""


def timeline_rows(*, server: bool, send_lag: bool, generator: bool = False) -> list[TimelineRow]:
    """The rows to draw: server and send-lag rows only when the run has them.

    The server-gauge row is kept only while a gauge family is chosen (:func:`make_timeline` drops it
    otherwise): gauges (users, bytes, seconds of lag) never share an axis with rates or percentiles. The
    load generator's row (``generator``: wanted) is dropped the same way for runs recorded without health
    gauges.
    """
    return [
        r
        for r in _ROWS
        if (not r.family.startswith("server") or server)
        and (r.family != "send_lag" or send_lag)
        and (r.family != "generator" or generator)
    ]


def _axis_name(index: int) -> str:
    return "y" if index == 0 else f"y{index + 1}"


def _layout_name(index: int) -> str:
    return "yaxis" if index == 0 else f"yaxis{index + 1}"


def _legend_name(index: int) -> str:
    return "legend" if index == 0 else f"legend{index + 1}"


def _domains(rows: Sequence[TimelineRow], gap: float = 0.035) -> list[tuple[float, float]]:
    total = sum(r.weight for r in rows)
    usable = 1.0 - gap * (len(rows) - 1)
    domains = []
    top = 1.0
    for row in rows:
        height = usable * row.weight / total
        domains.append((max(0.0, top - height), top))
        top -= height + gap
    return domains


def _trace_for(
    family: str,
    name: str,
    stat: str,
    t: np.ndarray,
    v: np.ndarray,
    *,
    axis: str,
    legend: str,
    compare: bool,
    bucket: int,
    events_axis: str,
) -> go.BaseTraceType:
    key = series_key(family, name, stat, compare)
    x = to_ms(t)
    y = _rounded(v)
    label_prefix = "B · " if compare else ""
    opacity = 0.55 if compare else 1.0
    common: dict[str, Any] = {
        "uid": safe_uid(key),
        "x": x,
        "y": y,
        "xaxis": "x",
        "yaxis": axis,
        "legend": legend,
        "opacity": opacity,
        "meta": [key],
    }
    if family in ("latency", "send_lag"):
        colour = type_colour(name)
        style = dict(_STAT_STYLE.get(stat, {"width": 1.4, "dash": "solid"}))
        if compare:
            style["dash"] = "dot"
        return go.Scatter(
            name=name,
            mode="lines" if len(x) >= _SPARSE else "lines+markers",
            marker={"size": 4},
            line={"color": colour, **style},
            hovertemplate="%{y:.3~f} ms<extra>" + f"{label_prefix}{name} {stat}</extra>",
            **common,
        )
    if family == "generator":
        return go.Scatter(
            name=name,
            mode="lines" if len(x) >= _SPARSE else "lines+markers",
            marker={"size": 4},
            line={
                "color": _GENERATOR_COLOURS.get(name, _MUTED),
                "width": 1.4,
                "dash": "dot" if compare else "solid",
            },
            hovertemplate="%{y:.3~f}<extra>" + f"{label_prefix}{name}</extra>",
            **common,
        )
    if family == "throughput":
        colour = type_colour(name)
        return go.Scatter(
            name=f"{label_prefix}{stat} {name}",
            mode="lines",
            line={"color": colour, "width": 1.6, "dash": "dot" if compare or stat == "recv" else "solid"},
            hovertemplate="%{y:.4~g}/s<extra>" + f"{label_prefix}{stat} {name}</extra>",
            **common,
        )
    if family == "errors":
        colour = error_colour(name.split(".", 1)[-1])
        return go.Bar(
            name=f"{label_prefix}{name}",
            marker={"color": colour, "line": {"width": 0}},
            width=bucket * 1000.0 * 0.9,
            hovertemplate="%{y:.3~g}/s<extra>" + f"{label_prefix}{name}</extra>",
            **common,
        )
    if family == "queue":
        return go.Scatter(
            name=f"{label_prefix}{stat}",
            mode="lines",
            line={
                "color": "#4f46e5" if stat == "mean" else "#a5b4fc",
                "width": 1.8 if stat == "mean" else 1.2,
                "dash": "dot" if compare else "solid",
            },
            hovertemplate="%{y:.3~g}<extra>" + f"{label_prefix}queue {stat}</extra>",
            **common,
        )
    if family == "connections":
        colour = STATE_COLOURS.get(name, _MUTED)
        if compare:
            return go.Scatter(
                name=f"{label_prefix}{name}",
                mode="lines",
                line={"color": colour, "width": 1.4, "dash": "dot"},
                hovertemplate="%{y:.4~g} users<extra>" + f"{label_prefix}{name}</extra>",
                **common,
            )
        return go.Scatter(
            name=name,
            mode="lines",
            stackgroup="connections",
            line={"color": colour, "width": 0.5},
            fillcolor=colour,
            hovertemplate="%{y:.4~g} users<extra>" + f"{name}</extra>",
            **common,
        )
    if family == "events":
        symbol, colour = _EVENT_STYLE.get(name, ("circle", _MUTED))
        counts = np.nan_to_num(np.asarray(v, dtype=np.float64))
        common["yaxis"] = events_axis
        common["y"] = np.full(len(x), _EVENT_Y)
        return go.Scatter(
            name=f"{label_prefix}{name} events",
            mode="markers",
            marker={
                "symbol": symbol,
                "color": colour,
                "size": _event_sizes(counts),
                "line": {"width": 0.5, "color": "white"},
            },
            customdata=[int(c) for c in counts],
            hovertemplate="%{customdata} " + f"{name}<extra>{label_prefix}events</extra>",
            **common,
        )
    # server (rates and percentiles) and server_gauge: one derived series each (charts.server)
    if stat in ("p50", "p99") or stat.startswith(("p50 ", "p99 ")):
        colour, dash = "#0f766e", "dot" if stat.startswith("p50") else "solid"
    else:
        colour, dash = (type_colour(stat) if family == "server" else "#0f766e"), "solid"
    label = display_name(name, "" if stat in ("rate", "gauge") else stat)
    return go.Scatter(
        name=f"{label_prefix}{label}",
        mode="lines" if len(x) >= _SPARSE else "lines+markers",
        marker={"size": 4},
        line={"color": colour, "width": 1.4, "dash": "dot" if compare else dash},
        hovertemplate="%{y:.4~g}<extra>" + f"{label_prefix}{label}</extra>",
        **common,
    )


_STAT_ORDER: Final = {stat: i for i, stat in enumerate(_STAT_STYLE)}
_STATE_ORDER: Final = {state: i for i, state in enumerate(STATE_COLOURS)}


def _trace_order(family: str, name: str, stat: str) -> tuple[Any, ...]:
    """Legend order: metrics by name, p50 before p99 before max; connected at the bottom of the stack."""
    return (family, _STATE_ORDER.get(name, 9), name, _STAT_ORDER.get(stat, 9), stat)


def make_timeline(
    series: pd.DataFrame,
    *,
    rows: Sequence[TimelineRow],
    bucket: int,
    compare: pd.DataFrame | None = None,
    uirevision: str = "run",
    height_per_weight: int = 78,
) -> go.Figure:
    """The timeline figure: one row per :class:`TimelineRow`, one shared time axis (UTC), linked crosshair.

    Args:
        series: points of the run (:func:`monitor.data.read_timeline`).
        rows: which rows to draw (:func:`timeline_rows`).
        bucket: the bucket width the series were read at, in seconds (bar widths, hover text).
        compare: points of a compared run, already shifted onto this run's time.
        uirevision: kept by Plotly across updates while unchanged, so a new figure keeps the user's zoom.
    """
    fig = go.Figure()
    drawn = {str(f) for frame in (series, compare) if frame is not None for f in frame["family"].unique()}
    rows = [
        r for r in rows if r.family not in ("server_gauge", "generator") or r.family in drawn
    ]  # gauges chosen: their own axis; the generator's health: only runs that recorded it
    domains = _domains(rows)
    row_index = {row.family: i for i, row in enumerate(rows)}
    events_axis = f"y{len(rows) + 1}"
    layout: dict[str, Any] = {}
    latency_values = [
        frame.loc[frame["family"] == "latency", "value"].to_numpy(dtype=np.float64)
        for frame in (series, compare)
        if frame is not None and not frame.empty
    ]
    for i, (row, (lo, hi)) in enumerate(zip(rows, domains, strict=True)):
        layout[_layout_name(i)] = {
            "domain": [lo, hi],
            "type": "log" if row.log else "linear",
            **(log_ticks(*latency_values) if row.log else {}),
            "gridcolor": _GRID,
            "zeroline": False,
            "tickfont": {"size": 11, "color": _MUTED},
            "automargin": True,
            "rangemode": "tozero" if not row.log else "normal",
            "fixedrange": True,
        }
        layout[_legend_name(i)] = {
            "x": 1.01,
            "y": hi,
            "xanchor": "left",
            "yanchor": "top",
            "font": {"size": 11, "color": _INK},
            "bgcolor": "rgba(255,255,255,0)",
            "tracegroupgap": 2,
            "itemsizing": "constant",
            "maxheight": max(hi - lo, 0.02),  # of the plot height: a long legend scrolls beside its row
        }
    conn = row_index.get("connections")
    if conn is not None:
        layout[f"yaxis{len(rows) + 1}"] = {
            "overlaying": _axis_name(conn),
            "range": [0, 1],
            "visible": False,
            "fixedrange": True,
        }
    annotations = [
        {
            "text": f"<b>{row.title}</b>",
            "xref": "paper",
            "yref": "paper",
            "x": 0,
            "y": hi,
            "xanchor": "left",
            "yanchor": "bottom",
            "showarrow": False,
            "font": {"size": 12, "color": _INK},
        }
        for row, (_lo, hi) in zip(rows, domains, strict=True)
    ]
    present: set[str] = set()
    legend_seen: set[str] = set()
    for frame, is_compare in ((series, False), (compare, True)):
        if frame is None or frame.empty:
            continue
        for (family, name, stat), group in sorted(
            frame.groupby(["family", "name", "stat"], sort=False), key=lambda item: _trace_order(*item[0])
        ):
            family = str(family)
            index = row_index.get("connections" if family == "events" else family)
            if index is None:
                continue
            if family == "errors" and is_compare:
                continue  # bars of two runs would stack into one; the table compares error rates
            present.add(family)
            trace = _trace_for(
                family,
                str(name),
                str(stat),
                group["t"].to_numpy(dtype=np.float64),
                group["value"].to_numpy(dtype=np.float64),
                axis=_axis_name(index),
                legend=_legend_name(index),
                compare=is_compare,
                bucket=bucket,
                events_axis=events_axis,
            )
            # One legend entry per series name (a metric's p50/p99/max share one; a compared run's traces
            # share the entry of the same series, so toggling it hides both runs).
            group_key = f"{family}/{name}" if family in ("latency", "send_lag") else f"{family}/{name}/{stat}"
            trace.legendgroup = group_key
            trace.showlegend = not is_compare and group_key not in legend_seen
            legend_seen.add(group_key)
            fig.add_trace(trace)
    for row, (lo, hi) in zip(rows, domains, strict=True):
        if row.family not in present:
            text = "No errors" if row.family == "errors" else "No data in this range"
            annotations.append(
                {
                    "text": text,
                    "xref": "paper",
                    "yref": "paper",
                    "x": 0.5,
                    "y": (lo + hi) / 2,
                    "showarrow": False,
                    "font": {"size": 12, "color": "#16a34a" if row.family == "errors" else _MUTED},
                }
            )
    shapes = _bound_shading(
        series, bucket, [row_index[f] for f in ("latency", "generator") if f in row_index]
    )
    bottom = _axis_name(len(rows) - 1)
    fig.update_layout(
        shapes=shapes,
        template="none",
        font={"family": FONT, "size": 12, "color": _INK},
        paper_bgcolor="white",
        plot_bgcolor="white",
        height=int(sum(r.weight for r in rows) * height_per_weight + 90),
        margin={"l": 64, "r": 230, "t": 28, "b": 40},
        hovermode="x",
        hoversubplots="axis",
        hoverdistance=12,  # only traces with a point near the cursor: a sparse series far away stays quiet
        spikedistance=-1,
        hoverlabel={"font": {"family": FONT, "size": 11}, "namelength": -1},
        barmode="stack",
        bargap=0,
        uirevision=uirevision,
        annotations=annotations,
        xaxis={
            "type": "date",
            "anchor": bottom,
            "gridcolor": _GRID,
            "showspikes": True,
            "spikemode": "across",
            "spikesnap": "cursor",
            "spikethickness": 1,
            "spikedash": "solid",
            "spikecolor": "#9ca3af",
            "tickfont": {"size": 11, "color": _MUTED},
            "title": {"text": "time (UTC)", "font": {"size": 11, "color": _MUTED}},
            "showline": True,
            "linecolor": "#d1d5db",
        },
        **layout,
    )
    return fig


def alert_shading(alerts: Iterable[Any], end: float) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Shapes and labels for a probe's alert breaches (:class:`monitor.live.AlertInterval`): a red band
    across every row from firing to resolved (to ``end`` while still firing), the rule named at its top."""
    shapes, labels = [], []
    for alert in alerts:
        stop = end if alert.end is None else alert.end
        x0, x1 = alert.start * 1000.0, max(stop, alert.start + 1) * 1000.0
        shapes.append(
            {
                "type": "rect",
                "xref": "x",
                "yref": "paper",
                "x0": x0,
                "x1": x1,
                "y0": 0,
                "y1": 1,
                "fillcolor": "rgba(220, 38, 38, 0.10)" if alert.end is None else "rgba(220, 38, 38, 0.06)",
                "line": {"width": 0},
                "layer": "below",
                "name": f"alert {alert.rule}",
            }
        )
        labels.append(
            {
                "text": f"⚠ {alert.rule}" + (" (firing)" if alert.end is None else ""),
                "xref": "x",
                "yref": "paper",
                "x": x0,
                "y": 1.0,
                "xanchor": "left",
                "yanchor": "bottom",
                "showarrow": False,
                "font": {"size": 11, "color": "#991b1b"},
                "name": f"alert {alert.rule}",
            }
        )
    return shapes, labels


def _bound_shading(series: pd.DataFrame, bucket: int, rows: Sequence[int]) -> list[dict[str, Any]]:
    """Rectangles over the given rows for every run of generator-bound buckets (the primary run's only)."""
    if series.empty or not rows:
        return []
    t = np.sort(series.loc[series["family"] == "generator_bound", "t"].to_numpy(dtype=np.float64))
    if not len(t):
        return []
    breaks = np.flatnonzero(np.diff(t) > bucket * 1.5) + 1
    spans = [(group[0] - bucket / 2, group[-1] + bucket / 2) for group in np.split(t, breaks)]
    return [
        {
            "type": "rect",
            "xref": "x",
            "yref": f"{_axis_name(index)} domain",
            "x0": lo * 1000.0,
            "x1": hi * 1000.0,
            "y0": 0,
            "y1": 1,
            "fillcolor": _BOUND_FILL,
            "line": {"width": 0},
            "layer": "below",
            "name": "generator-bound",
        }
        for index in rows
        for lo, hi in spans
    ]


def extend_points(
    series: pd.DataFrame, keys: Sequence[str]
) -> tuple[dict[int, dict[str, list[Any]]], set[str]]:
    """New points for a live figure, per trace index and attribute, plus the keys the figure lacks.

    Args:
        series: new points (:func:`monitor.data.read_timeline` with ``since``/``until``).
        keys: the figure's trace keys (:func:`trace_key`), in trace order.

    Returns:
        ``{trace index: {"x": [...], "y": [...], ...}}`` (attribute paths dotted, ``marker.size``) for series
        the figure already has, and the keys of series it does not have yet (a new error code, say): the
        caller redraws the figure when that set is not empty.
    """
    index = {k: i for i, k in enumerate(keys)}
    points: dict[int, dict[str, list[Any]]] = {}
    unknown: set[str] = set()
    if series.empty:
        return points, unknown
    for (family, name, stat), group in series.groupby(["family", "name", "stat"], sort=True):
        if family == "generator_bound":
            continue  # shading, not a trace: drawn again with the next full redraw
        key = series_key(str(family), str(name), str(stat))
        if key not in index:
            unknown.add(key)
            continue
        values = group["value"].to_numpy(dtype=np.float64)
        x = to_ms_list(group["t"].to_numpy(dtype=np.float64))
        if family == "events":
            counts = np.nan_to_num(values)
            points[index[key]] = {
                "x": x,
                "y": [_EVENT_Y] * len(x),
                "customdata": [int(c) for c in counts],
                "marker.size": _event_sizes(counts),
            }
        else:
            points[index[key]] = {"x": x, "y": _values(values)}
    return points, unknown


# --- percentile spectrum ------------------------------------------------------------------------------------


def make_spectrum(
    spectrum: pd.DataFrame, compare: pd.DataFrame | None = None, title: str = "Latency by percentile"
) -> go.Figure:
    """The percentile spectrum: latency (ms, log) against percentile on HdrHistogram's ``1/(1-p)`` log axis.

    Args:
        spectrum: ``metric, percentile, value`` rows (:class:`monitor.data.RangeStats`).
        compare: the same for a compared run (drawn fainter and dotted).
    """
    fig = go.Figure()
    for frame, is_compare in ((spectrum, False), (compare, True)):
        if frame is None or frame.empty:
            continue
        for metric, group in frame.groupby("metric", sort=True):
            metric = str(metric)
            group = group.sort_values("percentile")
            pct = group["percentile"].to_numpy(dtype=np.float64)
            values = group["value"].to_numpy(dtype=np.float64)
            x = inverse_tail(pct)
            finite = np.isfinite(x)
            # The max is drawn at the next decade past the last finite percentile.
            if (~finite).any() and finite.any():
                x[~finite] = 10 ** math.ceil(math.log10(max(x[finite].max(), 1.0)) + 1e-9)
            labels = [f"{p:.4f}".rstrip("0").rstrip(".") + " %" if p < 100 else "max" for p in pct]
            prefix = "B · " if is_compare else ""
            fig.add_trace(
                go.Scatter(
                    x=[float(v) for v in x],
                    y=_values(values),
                    name=f"{prefix}{metric}",
                    uid=safe_uid(series_key("spectrum", metric, "", is_compare)),
                    meta=[series_key("spectrum", metric, "", is_compare)],
                    mode="lines",
                    line={
                        "color": type_colour(metric),
                        "width": 2.0,
                        "dash": "dot" if is_compare else "solid",
                        "shape": "hv",
                    },
                    opacity=0.6 if is_compare else 1.0,
                    legendgroup=metric,  # one entry per metric: it hides the compared run's line too
                    showlegend=not is_compare,
                    customdata=labels,
                    hovertemplate="%{customdata}: %{y:.4~g} ms<extra>" + f"{prefix}{metric}</extra>",
                )
            )
    tickvals, ticktext = axis_ticks()
    fig.update_layout(
        template="none",
        font={"family": FONT, "size": 12, "color": _INK},
        title={"text": f"<b>{title}</b>", "font": {"size": 13}, "x": 0, "xanchor": "left"},
        height=360,
        margin={"l": 60, "r": 20, "t": 44, "b": 44},
        hovermode="closest",
        legend={  # under the axes, never on the curves (which fill the plot's lower right)
            "orientation": "h",
            "x": 0,
            "xanchor": "left",
            "y": 0,
            "yref": "container",
            "yanchor": "bottom",
            "font": {"size": 11},
        },
        xaxis={
            "type": "log",
            "tickvals": tickvals,
            "ticktext": ticktext,
            "gridcolor": _GRID,
            "title": {"text": "percentile", "font": {"size": 11, "color": _MUTED}},
            "tickfont": {"size": 11, "color": _MUTED},
            "automargin": True,  # room for the title between the tick labels and the legend
        },
        yaxis={
            "type": "log",
            **log_ticks(
                *(f["value"].to_numpy(dtype=np.float64) for f in (spectrum, compare) if f is not None)
            ),
            "gridcolor": _GRID,
            "title": {"text": "latency (ms)", "font": {"size": 11, "color": _MUTED}},
            "tickfont": {"size": 11, "color": _MUTED},
        },
        plot_bgcolor="white",
        paper_bgcolor="white",
    )
    if not fig.data:
        fig.add_annotation(
            text="No latency samples in this range",
            xref="paper",
            yref="paper",
            x=0.5,
            y=0.5,
            showarrow=False,
            font={"color": _MUTED},
        )
    return fig


def empty_figure(message: str, height: int = 240) -> go.Figure:
    """A blank figure that says why there is nothing to draw."""
    fig = go.Figure()
    fig.update_layout(
        template="none",
        height=height,
        font={"family": FONT, "color": _MUTED},
        xaxis={"visible": False},
        yaxis={"visible": False},
        margin={"l": 10, "r": 10, "t": 10, "b": 10},
        annotations=[
            {"text": message, "xref": "paper", "yref": "paper", "x": 0.5, "y": 0.5, "showarrow": False}
        ],
    )
    return fig
