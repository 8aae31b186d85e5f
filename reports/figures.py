"""Pure figure builders: one or two runs in, a plotly figure out.

Every builder takes ``runs``, a sequence of ``(label, RunData)``: a report passes one run, the comparison
passes the baseline and the candidate, and each chart overlays them (colour by message type from
:mod:`charts.palette`, line dash by run). Time axes are time since each run's first sample, so two runs line
up. Builders do no I/O and keep no state.

Every time series is windowed by run length (:mod:`charts.windows`): at most
:data:`~charts.windows.MAX_POINTS` points per trace whatever the duration, the window printed in the chart's
title. Latency per window is read off the window's merged histograms (exact), drawn as a p50-p99 band with
the window's max above it, so a one-second spike still shows in a 3-minute window. A chart with nothing to
draw says so in words.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from charts import server as server_samples
from charts.health import GeneratorHealth, generator_health
from charts.palette import EVENT_COLOURS, STATE_COLOURS, error_colour, type_colour
from charts.spectrum import axis_ticks, spectrum_of
from charts.windows import time_axis, window_label, window_of, window_width
from reports.data import RunData
from reports.gate import GateResult
from runstore import histogram as hdr
from runstore.names import (
    COUNTER_ERRORS,
    COUNTER_RECEIVED,
    COUNTER_SENT,
    GAUGE_GENERATOR_CPU,
    GAUGE_GENERATOR_GC_MAX_PAUSE,
    GAUGE_GENERATOR_LOOP_LAG,
    GAUGE_QUEUE_SIZE,
    GENERATOR_GAUGES,
    METRIC_ACK_PREFIX,
    METRIC_SEND_LAG,
    state_gauge,
)

__all__ = [
    "FIGURE_TITLES",
    "LabelledRun",
    "connections",
    "errors_by_code",
    "generator_panel",
    "generator_windows",
    "latency_distribution",
    "latency_over_time",
    "latency_spectrum",
    "queue_size",
    "report_figures",
    "run_window",
    "runs_figure",
    "send_lag",
    "server_metrics",
    "throughput",
]

LabelledRun = tuple[str, RunData]

FIGURE_TITLES = {
    "fig-latency-time": "Latency over time, one panel per message type",
    "fig-generator": "Load generator health (worst process)",
    "fig-latency-spectrum": "Latency distribution (percentile spectrum)",
    "fig-latency-distribution": "Latency histograms",
    "fig-throughput": "Throughput",
    "fig-errors": "Errors by code",
    "fig-queue": "Client queue size",
    "fig-connections": "Connection states and events",
    "fig-server": "Server metrics",
    "fig-send-lag": "Send lag (open model)",
    "fig-runs": "Every run's statistic, relative to the baseline runs' geometric mean",
}
"""Figure ids (the HTML ``div`` ids) and titles, in page order."""

_DASHES = ("solid", "dash", "dot", "dashdot")
_STATES = ("connected", "reconnecting", "disconnected")
_MUTED = "#616e7c"
_PANEL_PX = 170
_SPARSE = 30
"""Traces with fewer windows than this get markers too: a lone window is a visible point, not nothing."""


def _dash(run_index: int) -> str:
    return _DASHES[run_index % len(_DASHES)]


def _name(label: str, series: str, runs: Sequence[LabelledRun]) -> str:
    return series if len(runs) == 1 else f"{series} · {label}"


def _rgba(colour: str, alpha: float) -> str:
    r, g, b = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def run_window(runs: Sequence[LabelledRun]) -> int:
    """The window width of these runs' time series: from the longest run, never finer than its rows."""
    duration = max(data.end - data.start for _, data in runs)
    return window_width(duration, minimum=max(data.resolution for _, data in runs))


def _axis(runs: Sequence[LabelledRun]) -> tuple[float, str]:
    return time_axis(max(data.end - data.start for _, data in runs))


def _x(t: np.ndarray, data: RunData, divisor: float) -> np.ndarray:
    return (np.asarray(t, dtype=np.float64) - data.start) / divisor


def _dense(
    data: RunData, width: int, t: np.ndarray, values: np.ndarray, fill: float
) -> tuple[np.ndarray, ...]:
    """Values on every window of the run (``fill`` where a window has no row: NaN leaves a gap)."""
    grid = window_of(data.start // width * width, data.end, width)
    out = np.full(grid.size, fill, dtype=np.float64)
    index = np.searchsorted(grid, t)
    ok = (index < grid.size) & (grid[np.minimum(index, grid.size - 1)] == t)
    out[index[ok]] = np.asarray(values, dtype=np.float64)[ok]
    return grid, out


def _band(x: np.ndarray, low: np.ndarray, high: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A filled band between ``low`` and ``high``: one closed outline per run of windows with data.

    Plotly's ``fill="toself"`` closes each NaN-separated segment on its own, so an outage stays a gap
    instead of a wedge (``tonexty`` fills across gaps).
    """
    ok = np.isfinite(low) & np.isfinite(high)
    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    edges = np.flatnonzero(np.diff(np.r_[0, ok.astype(np.int8), 0]))
    for lo, hi in zip(edges[::2], edges[1::2], strict=True):
        xs += [x[lo:hi], x[lo:hi][::-1], [np.nan]]
        ys += [high[lo:hi], low[lo:hi][::-1], [np.nan]]
    if not xs:
        return np.array([]), np.array([])
    return np.concatenate(xs), np.concatenate(ys)


def _log_ticks(figure: go.Figure) -> go.Figure:
    """Readable ticks on every log y axis: 0.5, 1, 2, 5, 10 ms ... instead of digits between decades."""
    ranges: dict[str, list[float]] = {}
    for trace in figure.data:
        y = np.asarray(trace.y if trace.y is not None else [], dtype=np.float64)
        y = y[np.isfinite(y) & (y > 0)]
        if y.size:
            ranges.setdefault(trace.yaxis or "y", []).extend([float(y.min()), float(y.max())])
    for axis, values in ranges.items():
        lo, hi = math.floor(math.log10(min(values))), math.ceil(math.log10(max(values)))
        steps = (1, 2, 5) if hi - lo <= 3 else (1,)
        ticks = [m * 10.0**e for e in range(lo, hi + 1) for m in steps]
        ticks = [t for t in ticks if min(values) / 1.5 <= t <= max(values) * 1.5] or ticks
        name = "yaxis" + axis[1:]
        figure.layout[name].update(tickvals=ticks, ticktext=[f"{t:g}" for t in ticks])
    return figure


def _style(figure: go.Figure, title: str, *, height: int = 380, subtitle: str = "") -> go.Figure:
    heading: dict[str, object] = {"text": title, "x": 0.01}
    if subtitle:
        heading["subtitle"] = {"text": subtitle, "font": {"size": 12, "color": _MUTED}}
    figure.update_layout(
        title=heading,
        template="plotly_white",
        height=height,
        margin={"l": 64, "r": 20, "t": 76 if subtitle else 56, "b": 40},
        legend={"orientation": "h", "y": -0.12, "yanchor": "top", "font": {"size": 11}},
        hovermode="x unified",
    )
    return figure


def _empty(figure: go.Figure, text: str) -> go.Figure:
    """The empty state: the reason in words instead of an empty or a lone-dot chart."""
    figure.add_annotation(
        text=text,
        showarrow=False,
        x=0.5,
        y=0.5,
        xref="paper",
        yref="paper",
        font={"size": 14, "color": _MUTED},
    )
    figure.update_xaxes(visible=False)
    figure.update_yaxes(visible=False)
    figure.update_layout(height=160, showlegend=False)
    return figure


def _titled(key: str, width: int) -> str:
    return f"{FIGURE_TITLES[key]} · {window_label(width)}"


def _seconds(runs: Sequence[LabelledRun]) -> str:
    return " / ".join(f"{data.duration_s:,} s" for _, data in runs)


def _latency_metrics(runs: Sequence[LabelledRun]) -> list[str]:
    """Metrics in reading order: acks first, then the other legs, ``connect`` last (``send_lag`` apart)."""
    names: set[str] = set()
    for _, data in runs:
        names.update(data.metrics)
    names.discard(METRIC_SEND_LAG)
    return sorted(names, key=lambda m: (not m.startswith(METRIC_ACK_PREFIX), m == "connect", m))


_BOUND_FILL = "rgba(214,158,46,0.18)"
"""Shading of the windows in which the (first) run's load generator, not the target, set the latency."""


def generator_windows(data: RunData, width: int) -> GeneratorHealth | None:
    """The run's health judged per window of ``width`` s (a window is bound when any of its seconds was);
    ``None`` for a run recorded without health gauges."""
    frames = [
        data.gauge_windows(name, width)[["t", "max"]].assign(name=name)
        for name in GENERATOR_GAUGES
        if (data.gauges["name"] == name).any()
    ]
    if not frames:
        return None
    return generator_health(pd.concat(frames, ignore_index=True), width)


def _shade_bound(figure: go.Figure, runs: Sequence[LabelledRun], width: int, divisor: float) -> None:
    """Shade the first run's generator-bound windows across every panel of ``figure``."""
    _, data = runs[0]
    health = generator_windows(data, width)
    if health is None or not health.bound_t:
        return
    t = np.asarray(health.bound_t, dtype=np.float64)
    breaks = np.flatnonzero(np.diff(t) > width) + 1
    for group in np.split(t, breaks):
        figure.add_shape(
            type="rect", xref="x", yref="paper", x0=_x(group[:1], data, divisor)[0],
            x1=_x(group[-1:] + width, data, divisor)[0], y0=0, y1=1, fillcolor=_BOUND_FILL,
            line={"width": 0}, layer="below", name="generator-bound",
        )  # fmt: skip


def generator_panel(runs: Sequence[LabelledRun]) -> go.Figure | None:
    """The load generator's own health per window, worst process: event-loop lag and the longest garbage
    collection (ms, top), CPU share of a core (bottom); generator-bound windows of the first run shaded.
    ``None`` when no run recorded health gauges (runs from before they existed)."""
    if not any(generator_windows(data, data.resolution) is not None for _, data in runs):
        return None
    width = run_window(runs)
    divisor, axis_title = _axis(runs)
    figure = make_subplots(
        rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.12,
        subplot_titles=("event-loop lag and longest GC pause (ms)", "CPU (% of one core)"),
    )  # fmt: skip
    series = (
        (GAUGE_GENERATOR_LOOP_LAG, "loop lag", 1, 1.0, "#b45309"),
        (GAUGE_GENERATOR_GC_MAX_PAUSE, "GC pause", 1, 1.0, "#7c3aed"),
        (GAUGE_GENERATOR_CPU, "CPU", 2, 100.0, "#475569"),
    )
    for run_index, (label, data) in enumerate(runs):
        for name, what, row, factor, colour in series:
            windows = data.gauge_windows(name, width)
            if windows.empty:
                continue
            grid, y = _dense(data, width, windows["t"].to_numpy(), windows["max"].to_numpy(), np.nan)
            figure.add_trace(
                go.Scatter(
                    x=_x(grid, data, divisor), y=y * factor, name=_name(label, what, runs),
                    mode="lines+markers" if int(np.isfinite(y).sum()) < _SPARSE else "lines",
                    marker={"size": 4}, line={"color": colour, "dash": _dash(run_index), "width": 1.4},
                ),
                row=row, col=1,
            )  # fmt: skip
    _shade_bound(figure, runs, width, divisor)
    figure.update_yaxes(rangemode="tozero")
    figure.update_xaxes(title_text=axis_title, row=2, col=1)
    subtitle = "each window's worst second; shaded: generator-bound (lag or a GC pause ≥ 5 ms, CPU ≥ 90 %)"
    _style(figure, _titled("fig-generator", width), height=480, subtitle=subtitle)
    return figure.update_layout(margin={"t": 104})  # the subtitle above the first panel's title


def latency_over_time(runs: Sequence[LabelledRun]) -> go.Figure:
    """Small multiples: one panel per metric, each window's p50-p99 band and max, from merged histograms."""
    metrics = _latency_metrics(runs)
    width = run_window(runs)
    divisor, axis_title = _axis(runs)
    figure = make_subplots(
        rows=len(metrics), cols=1, shared_xaxes=True, vertical_spacing=0.22 / max(len(metrics), 1),
        subplot_titles=metrics,
    )  # fmt: skip
    for run_index, (label, data) in enumerate(runs):
        for row, metric in enumerate(metrics, start=1):
            if metric not in data.metrics:
                continue
            windows = data.latency_windows(metric, width)
            grid, p50 = _dense(data, width, windows["t"].to_numpy(), windows["p50_us"].to_numpy(), np.nan)
            _, p99 = _dense(data, width, windows["t"].to_numpy(), windows["p99_us"].to_numpy(), np.nan)
            _, peak = _dense(data, width, windows["t"].to_numpy(), windows["max_us"].to_numpy(), np.nan)
            x = _x(grid, data, divisor)
            colour = type_colour(metric)
            group = f"{metric}-{run_index}"
            sparse = int(np.isfinite(p99).sum()) < _SPARSE
            mode = "lines+markers" if sparse else "lines"
            if run_index == 0:
                bx, by = _band(x, p50 / 1000.0, p99 / 1000.0)
                figure.add_trace(
                    go.Scatter(
                        x=bx, y=by, mode="lines", fill="toself", fillcolor=_rgba(colour, 0.22),
                        line={"width": 0}, hoverinfo="skip", showlegend=False, legendgroup=group,
                        name=_name(label, f"{metric} p50-p99", runs),
                    ),
                    row=row, col=1,
                )  # fmt: skip
            for column, values, style in (
                ("p50", p50, {"width": 1.0}),
                ("p99", p99, {"width": 1.6}),
                ("max", peak, {"width": 0.8, "dash": "dot"}),
            ):
                figure.add_trace(
                    go.Scatter(
                        x=x, y=values / 1000.0, mode=mode, connectgaps=False, legendgroup=group,
                        name=_name(label, f"{metric} {column}", runs),
                        showlegend=row == 1 and column == "p99",
                        marker={"size": 4},
                        line={"color": colour if column != "max" else _rgba(colour, 0.75),
                              "dash": style.get("dash", _dash(run_index)), "width": style["width"]},
                        hovertemplate=f"{column} %{{y:.3f}} ms",
                    ),
                    row=row, col=1,
                )  # fmt: skip
    figure.update_yaxes(type="log", title_text="ms", title_font={"size": 11})
    _log_ticks(figure)
    figure.update_xaxes(title_text=axis_title, row=len(metrics), col=1)
    _shade_bound(figure, runs, width, divisor)
    subtitle = "band: p50 to p99 of each window's merged histograms; dotted: the window's max"
    if any(s.name == "generator-bound" for s in figure.layout.shapes):
        subtitle += "; shaded: the load generator's, not the target's"
    _style(
        figure, _titled("fig-latency-time", width), height=100 + _PANEL_PX * len(metrics), subtitle=subtitle
    )
    figure.update_layout(showlegend=len(runs) > 1)
    return figure


def latency_spectrum(runs: Sequence[LabelledRun]) -> go.Figure:
    """Latency by percentile over the whole run, HdrHistogram style (log axis of 1 / (1 - p))."""
    figure = go.Figure()
    for run_index, (label, data) in enumerate(runs):
        for metric in _latency_metrics(runs):
            if metric not in data.metrics:
                continue
            points = spectrum_of(data.merged(metric))
            figure.add_trace(
                go.Scatter(
                    x=points.x,
                    y=points.value_us / 1000.0,
                    customdata=points.labels,
                    hovertemplate="%{customdata}: %{y:.3f} ms",
                    mode="lines",
                    name=_name(label, metric, runs),
                    line={"color": type_colour(metric), "dash": _dash(run_index), "shape": "hv"},
                )
            )
    tickvals, ticktext = axis_ticks()
    figure.update_xaxes(type="log", title_text="percentile", tickvals=tickvals, ticktext=ticktext)
    figure.update_yaxes(type="log", title_text="ms")
    _log_ticks(figure)
    _style(figure, FIGURE_TITLES["fig-latency-spectrum"] + " · whole run")
    figure.update_layout(hovermode="closest")
    return figure


def _histogram_bins(data: RunData, metric: str) -> tuple[np.ndarray, np.ndarray]:
    histogram = data.merged(metric)
    counts = hdr.counts_view(histogram)
    index = np.flatnonzero(counts)
    values = np.array([histogram.get_value_from_index(int(i)) for i in index], dtype=np.float64)
    return np.maximum(values, 1.0) / 1000.0, counts[index].astype(np.float64)


def latency_distribution(runs: Sequence[LabelledRun]) -> go.Figure:
    """Histogram of each metric (share of samples per log-spaced bin), the runs side by side."""
    figure = make_subplots(
        rows=1, cols=len(runs), shared_yaxes=True, subplot_titles=[label for label, _ in runs]
    )
    metrics = _latency_metrics(runs)
    binned = {
        (i, m): _histogram_bins(data, m)
        for i, (_, data) in enumerate(runs)
        for m in data.metrics
        if m in metrics
    }
    every = np.concatenate([v for v, _ in binned.values()]) if binned else np.array([1.0])
    edges = np.geomspace(max(every.min(), 1e-3) * 0.99, every.max() * 1.01 + 1e-3, 61)
    centres = np.sqrt(edges[:-1] * edges[1:])
    for run_index, (label, _) in enumerate(runs):
        for metric in metrics:
            if (run_index, metric) not in binned:
                continue
            values, counts = binned[(run_index, metric)]
            share, _ = np.histogram(values, bins=edges, weights=counts / counts.sum())
            figure.add_trace(
                go.Scatter(
                    x=centres,
                    y=share * 100.0,
                    mode="lines",
                    line={"shape": "hvh", "color": type_colour(metric)},
                    name=_name(label, metric, runs),
                    legendgroup=metric,
                ),
                row=1,
                col=run_index + 1,
            )
    figure.update_xaxes(type="log", title_text="ms")
    figure.update_yaxes(title_text="% of samples", col=1)
    _style(figure, FIGURE_TITLES["fig-latency-distribution"] + " · whole run")
    figure.update_layout(hovermode="closest")
    return figure


def throughput(runs: Sequence[LabelledRun]) -> go.Figure:
    """Frames sent (solid) and received (dotted) per second, by type, averaged over each window."""
    figure = go.Figure()
    width = run_window(runs)
    divisor, axis_title = _axis(runs)
    drawn = 0
    for run_index, (label, data) in enumerate(runs):
        sums = data.counter_windows((COUNTER_SENT, COUNTER_RECEIVED), width)
        for name, group in sums.groupby("name", sort=True):
            name = str(name)
            grid, total = _dense(data, width, group["t"].to_numpy(), group["value"].to_numpy(), 0.0)
            seconds = np.clip(np.minimum(grid + width, data.end) - grid, 1, width)
            received = name.startswith(COUNTER_RECEIVED)
            figure.add_trace(
                go.Scatter(
                    x=_x(grid, data, divisor), y=total / seconds, mode="lines",
                    name=_name(label, name, runs),
                    line={"color": type_colour(name), "dash": "dot" if received else _dash(run_index),
                          "width": 1.5},
                    opacity=1.0 if run_index == 0 else 0.6,
                )
            )  # fmt: skip
            drawn += 1
    if not drawn:
        return _empty(_style(figure, FIGURE_TITLES["fig-throughput"]), "no frames were counted in this run")
    figure.update_xaxes(title_text=axis_title)
    figure.update_yaxes(title_text="frames / s", rangemode="tozero")
    return _style(figure, _titled("fig-throughput", width), subtitle="solid: sent, dotted: received")


def errors_by_code(runs: Sequence[LabelledRun]) -> go.Figure:
    """Errors per window by ``errors.<type>.<code>``, stacked bars, one row per run; no errors: in words."""
    width = run_window(runs)
    names = sorted(
        {str(n) for _, d in runs for n in d.counters["name"].unique() if str(n).startswith(COUNTER_ERRORS)}
    )
    if not names:
        text = f"no errors in {_seconds(runs)}"
        return _empty(_style(go.Figure(), FIGURE_TITLES["fig-errors"]), text)
    divisor, axis_title = _axis(runs)
    figure = make_subplots(
        rows=len(runs), cols=1, shared_xaxes=True, subplot_titles=[label for label, _ in runs]
    )
    for run_index, (_label, data) in enumerate(runs):
        sums = data.counter_windows((COUNTER_ERRORS,), width)
        sums = sums[sums["value"] > 0]
        if sums.empty:
            figure.add_annotation(
                text=f"no errors in {data.duration_s:,} s", showarrow=False, x=0.5, y=0.5,
                xref="x domain" if run_index == 0 else f"x{run_index + 1} domain",
                yref="y domain" if run_index == 0 else f"y{run_index + 1} domain", font={"color": _MUTED},
            )  # fmt: skip
        for name, group in sums.groupby("name", sort=True):
            name = str(name)
            short = name[len(COUNTER_ERRORS) :]
            figure.add_trace(
                go.Bar(
                    x=_x(group["t"].to_numpy() + width / 2, data, divisor), y=group["value"].to_numpy(),
                    width=0.9 * width / divisor, name=short,
                    legendgroup=name, showlegend=run_index == 0,
                    marker={"color": error_colour(short), "line": {"width": 0}},
                    hovertemplate=f"%{{y}} {short}<extra></extra>",
                ),
                row=run_index + 1, col=1,
            )  # fmt: skip
    figure.update_layout(barmode="stack", bargap=0.1)
    unit = "second" if width == 1 else window_label(width).removesuffix("s")
    figure.update_yaxes(title_text=f"errors per {unit}", rangemode="tozero")
    figure.update_xaxes(title_text=axis_title, row=len(runs), col=1)
    return _style(figure, _titled("fig-errors", width), height=260 + 120 * len(runs))


def queue_size(runs: Sequence[LabelledRun]) -> go.Figure:
    """Client-side outbound queue per user: mean and max over each window."""
    figure = go.Figure()
    width = run_window(runs)
    divisor, axis_title = _axis(runs)
    shown = False
    for run_index, (label, data) in enumerate(runs):
        windows = data.gauge_windows(GAUGE_QUEUE_SIZE, width)
        if windows.empty:
            continue
        shown = True
        t = windows["t"].to_numpy()
        count = windows["count"].to_numpy(dtype=np.float64)
        mean = np.divide(windows["sum"].to_numpy(), count, out=np.full(count.shape, np.nan), where=count > 0)
        for stat, values, colour in (
            ("mean", mean, "#4f46e5"),
            ("max", windows["max"].to_numpy(), "#a5b4fc"),
        ):
            grid, y = _dense(data, width, t, values, np.nan)
            figure.add_trace(
                go.Scatter(
                    x=_x(grid, data, divisor), y=y, mode="lines", name=_name(label, f"queue {stat}", runs),
                    line={"color": colour, "dash": _dash(run_index)},
                )
            )  # fmt: skip
    if not shown:
        return _empty(_style(figure, FIGURE_TITLES["fig-queue"]), "no queue-size gauge in this run")
    figure.update_xaxes(title_text=axis_title)
    figure.update_yaxes(title_text="messages per user", rangemode="tozero")
    return _style(figure, _titled("fig-queue", width))


def connections(runs: Sequence[LabelledRun]) -> go.Figure:
    """Users per connection state (mean per window, top) and connection events per window (bottom)."""
    width = run_window(runs)
    divisor, axis_title = _axis(runs)
    figure = make_subplots(
        rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.1, row_heights=[0.65, 0.35],
        subplot_titles=["users by state", f"connection events per {window_label(width).removesuffix('s')}"],
    )  # fmt: skip
    for run_index, (label, data) in enumerate(runs):
        for state in _STATES:
            windows = data.gauge_windows(state_gauge(state), width)
            if windows.empty:
                continue
            users = windows["sum"].to_numpy() / windows["seconds"].to_numpy()
            grid, y = _dense(data, width, windows["t"].to_numpy(), users, np.nan)
            figure.add_trace(
                go.Scatter(
                    x=_x(grid, data, divisor), y=y, mode="lines", name=_name(label, state, runs),
                    line={"color": STATE_COLOURS[state], "dash": _dash(run_index)},
                ),
                row=1, col=1,
            )  # fmt: skip
        events = data.events
        if events.empty:
            continue
        seconds = np.floor(events["ts"].to_numpy(dtype=np.float64)).astype(np.int64)
        starts = seconds // width * width
        counts = pd.DataFrame({"t": starts, "kind": events["kind"].astype(str)}).groupby(["kind", "t"]).size()
        for kind in sorted(counts.index.get_level_values(0).unique()):
            series = counts.loc[kind]
            figure.add_trace(
                go.Bar(
                    x=_x(series.index.to_numpy() + width / 2, data, divisor), y=series.to_numpy(),
                    width=0.9 * width / divisor,
                    name=_name(label, f"event {kind}", runs),
                    marker={"color": EVENT_COLOURS.get(kind, _MUTED), "opacity": 0.55 if run_index else 1.0},
                ),
                row=2, col=1,
            )  # fmt: skip
    figure.update_yaxes(title_text="users", rangemode="tozero", row=1, col=1)
    figure.update_yaxes(title_text="events", row=2, col=1)
    figure.update_xaxes(title_text=axis_title, row=2, col=1)
    return _style(figure, _titled("fig-connections", width), height=520)


_SERVER_ROWS = (
    ("rate", "counters (per second)"),
    ("quantile", "histogram percentiles (p50 dotted, p99; *_seconds in ms)"),
    ("gauge", "gauges"),
)


def server_metrics(runs: Sequence[LabelledRun]) -> go.Figure:
    """The target's metrics as an operator reads them: counter rates, histogram p50/p99, gauges apart.

    Each kind gets its own row and axis (:mod:`charts.server`); no scrape, or a single one, says so.
    """
    width = run_window(runs)
    divisor, axis_title = _axis(runs)
    derived = [
        server_samples.derive(server_samples.bucket_samples(data.server_metrics, width, origin=0))
        for _, data in runs
    ]
    if all(data.server_metrics.empty for _, data in runs):
        text = "server metrics were not scraped (run with --scrape-metrics against a target with /metrics)"
        return _empty(_style(go.Figure(), FIGURE_TITLES["fig-server"]), text)
    if all(
        frame.groupby(["family", "series"]).size().max() < 2 if not frame.empty else True for frame in derived
    ):
        scrapes = max(int(data.server_metrics["t"].nunique()) for _, data in runs)
        last = runs[0][1].server_metrics.drop_duplicates("name", keep="last").head(3)
        values = ", ".join(
            f"{n.removeprefix('wsgauge_')} = {v:g}" for n, v in zip(last["name"], last["value"], strict=True)
        )
        times = "once" if scrapes == 1 else f"{scrapes} times"
        text = f"server metrics were scraped {times}, too few for a line: {values}"
        return _empty(_style(go.Figure(), FIGURE_TITLES["fig-server"]), text)
    kinds = [(k, t) for k, t in _SERVER_ROWS if any((f["kind"] == k).any() for f in derived)]
    figure = make_subplots(
        rows=len(kinds), cols=1, shared_xaxes=True, vertical_spacing=0.12 / len(kinds),
        subplot_titles=[t for _, t in kinds],
    )  # fmt: skip
    for run_index, ((label, data), frame) in enumerate(zip(runs, derived, strict=True)):
        for row, (kind, _) in enumerate(kinds, start=1):
            part = frame[frame["kind"] == kind]
            for index, ((family, series), group) in enumerate(part.groupby(["family", "series"], sort=True)):
                series = str(series)
                if series.startswith(("p50", "p99")):
                    colour = type_colour(str(family))
                    dash = "dot" if series.startswith("p50") else _dash(run_index)
                else:
                    colour = type_colour(series) if kind == "rate" and series else _fallback(index)
                    dash = _dash(run_index)
                grid, y = _dense(
                    data, width, group["t"].to_numpy(np.int64), group["value"].to_numpy(), np.nan
                )
                unit = str(group["unit"].iloc[0])
                figure.add_trace(
                    go.Scatter(
                        x=_x(grid, data, divisor), y=y, mode="lines", connectgaps=False,
                        name=_name(label, server_samples.display_name(str(family), series), runs),
                        legend=f"legend{row}" if row > 1 else "legend",
                        line={"color": colour, "dash": dash, "width": 1.4},
                        hovertemplate=f"%{{y:.4~g}} {unit}",
                    ),
                    row=row, col=1,
                )  # fmt: skip
    figure.update_xaxes(title_text=axis_title, row=len(kinds), col=1)
    height = 100 + 200 * len(kinds)
    _style(figure, _titled("fig-server", width), height=height)
    legends = {}
    for row, (kind, _) in enumerate(kinds, start=1):
        axis = figure.layout[f"yaxis{row}" if row > 1 else "yaxis"]
        top = axis.domain[1]
        legends["legend" if row == 1 else f"legend{row}"] = {
            "x": 1.02, "y": top, "xanchor": "left", "yanchor": "top", "font": {"size": 10},
            "orientation": "v", "tracegroupgap": 0,
        }  # fmt: skip
        units = {str(u) for f in derived for u in f.loc[f["kind"] == kind, "unit"].unique()}
        title = {"rate": "/ s", "quantile": "ms", "gauge": "ms"}[kind] if units <= {"/s", "ms"} else ""
        figure.update_yaxes(title_text=title, row=row, col=1)
    figure.update_layout(margin={"r": 230}, **legends)
    return figure


def _fallback(index: int) -> str:
    return ("#0f766e", "#7c3aed", "#b45309", "#0369a1", "#be185d", "#4d7c0f", "#57534e")[index % 7]


def send_lag(runs: Sequence[LabelledRun]) -> go.Figure | None:
    """Open model's send lag (actual minus scheduled send), p50 and p99 per window; ``None`` if absent."""
    if not any(METRIC_SEND_LAG in data.metrics for _, data in runs):
        return None
    figure = go.Figure()
    width = run_window(runs)
    divisor, axis_title = _axis(runs)
    for run_index, (label, data) in enumerate(runs):
        if METRIC_SEND_LAG not in data.metrics:
            continue
        windows = data.latency_windows(METRIC_SEND_LAG, width)
        for column, colour in (("p50_us", "#9ca3af"), ("p99_us", "#4b5563")):
            grid, y = _dense(data, width, windows["t"].to_numpy(), windows[column].to_numpy(), np.nan)
            figure.add_trace(
                go.Scatter(
                    x=_x(grid, data, divisor), y=y / 1000.0, mode="lines",
                    name=_name(label, f"send lag {column[:-3]}", runs),
                    line={"color": colour, "dash": _dash(run_index)},
                )
            )  # fmt: skip
    figure.update_xaxes(title_text=axis_title)
    figure.update_yaxes(title_text="ms", rangemode="tozero")
    return _style(figure, _titled("fig-send-lag", width))


def report_figures(runs: Sequence[LabelledRun]) -> dict[str, go.Figure]:
    """Every chart of a report (one run) or a comparison (two), by figure id, in page order.

    Send lag appears only when some run has it (open model); every other chart is always there, in words
    when it has nothing to draw.
    """
    figures: dict[str, go.Figure | None] = {
        "fig-latency-time": latency_over_time(runs),
        "fig-generator": generator_panel(runs),
        "fig-latency-spectrum": latency_spectrum(runs),
        "fig-latency-distribution": latency_distribution(runs),
        "fig-throughput": throughput(runs),
        "fig-errors": errors_by_code(runs),
        "fig-queue": queue_size(runs),
        "fig-connections": connections(runs),
        "fig-server": server_metrics(runs),
        "fig-send-lag": send_lag(runs),
    }
    return {key: figure for key, figure in figures.items() if figure is not None}


def runs_figure(result: GateResult) -> go.Figure:
    """A comparison of several runs per side: each run's value of each latency and throughput rule.

    One row per rule, x = the run's value / the baseline runs' geometric mean, so the spread between runs of
    one build (what the t interval measures) sits next to the shift between builds. Error-rate rules are
    differences in percentage points, not ratios: they stay in the verdict table.
    """
    rules = [
        rule
        for rule in result.rules
        if rule.baseline_runs and rule.candidate_runs and rule.stat != "error_rate" and rule.baseline
    ]
    figure = go.Figure()
    sides = (("baseline", -0.15, "circle", "#1f77b4"), ("candidate", 0.15, "diamond", "#ff7f0e"))
    for side, offset, symbol, color in sides:
        xs, ys, texts = [], [], []
        for row, rule in enumerate(rules):
            values = rule.baseline_runs if side == "baseline" else rule.candidate_runs
            for value in values or ():
                xs.append(value / rule.baseline)
                ys.append(row + offset)
                texts.append(f"{rule.rule}: {value:.4g} {rule.unit}")
        figure.add_trace(
            go.Scatter(
                x=xs, y=ys, mode="markers", name=f"{side} runs", text=texts, hoverinfo="text+x",
                marker={"symbol": symbol, "color": color, "size": 9, "opacity": 0.8},
            )
        )  # fmt: skip
    figure.add_vline(x=1.0, line={"color": "#9aa5b1", "dash": "dot"})
    figure.update_yaxes(
        tickvals=list(range(len(rules))), ticktext=[rule.rule for rule in rules], autorange="reversed"
    )
    figure.update_xaxes(title_text="run value / baseline geometric mean")
    _style(figure, FIGURE_TITLES["fig-runs"], height=max(260, 60 + 34 * len(rules)))
    figure.update_layout(hovermode="closest")
    if not rules:
        _empty(figure, "no rule judged over several runs")
    return figure
