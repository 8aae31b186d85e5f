"""Pure figure builders: one or two runs in, a plotly figure out.

Every builder takes ``runs``, a sequence of ``(label, RunData)``: a report passes one run, the comparison
passes the baseline and the candidate, and each chart overlays them (colour by metric or series, line dash by
run). Time axes are seconds since each run's first sample, so two runs line up. Builders do no I/O and keep
no state.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from reports.data import RunData
from reports.gate import GateResult
from runstore import histogram as hdr
from runstore.names import (
    COUNTER_ERRORS,
    COUNTER_RECEIVED,
    COUNTER_SENT,
    GAUGE_QUEUE_SIZE,
    METRIC_SEND_LAG,
    state_gauge,
)

__all__ = [
    "FIGURE_TITLES",
    "LabelledRun",
    "connections",
    "errors_by_code",
    "latency_distribution",
    "latency_over_time",
    "latency_spectrum",
    "queue_size",
    "report_figures",
    "runs_figure",
    "send_lag",
    "server_metrics",
    "throughput",
]

LabelledRun = tuple[str, RunData]

FIGURE_TITLES = {
    "fig-latency-time": "Latency percentiles over time",
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

_COLORS = qualitative.D3 + qualitative.Set2
_DASHES = ("solid", "dot", "dash", "dashdot")
_STATES = ("connected", "reconnecting", "disconnected")
_SPECTRUM_PCTS = np.concatenate([100.0 * (1.0 - 10.0 ** (-np.arange(0, 51) / 10.0)), [100.0]])


def _color(index: int) -> str:
    return _COLORS[index % len(_COLORS)]


def _dash(run_index: int) -> str:
    return _DASHES[run_index % len(_DASHES)]


def _name(label: str, series: str, runs: Sequence[LabelledRun]) -> str:
    return series if len(runs) == 1 else f"{series} · {label}"


def _style(figure: go.Figure, title: str, *, height: int = 380) -> go.Figure:
    figure.update_layout(
        title={"text": title, "x": 0.01},
        template="plotly_white",
        height=height,
        margin={"l": 60, "r": 20, "t": 50, "b": 40},
        legend={"orientation": "h", "y": -0.15},
        hovermode="x unified",
    )
    return figure


def _empty(figure: go.Figure, text: str) -> go.Figure:
    figure.add_annotation(text=text, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    figure.update_xaxes(visible=False)
    figure.update_yaxes(visible=False)
    return figure


def _latency_metrics(runs: Sequence[LabelledRun]) -> list[str]:
    names: set[str] = set()
    for _, data in runs:
        names.update(data.metrics)
    names.discard(METRIC_SEND_LAG)
    return sorted(names)


def latency_over_time(runs: Sequence[LabelledRun]) -> go.Figure:
    """p50, p95 and p99 per second (one row each), a line per metric and run."""
    rows = (("p50_us", "p50"), ("p95_us", "p95"), ("p99_us", "p99"))
    figure = make_subplots(
        rows=3, cols=1, shared_xaxes=True, vertical_spacing=0.05, subplot_titles=[r[1] for r in rows]
    )
    metrics = _latency_metrics(runs)
    for run_index, (label, data) in enumerate(runs):
        for metric_index, metric in enumerate(metrics):
            frame = data.metric_rows(metric)
            frame = frame[frame["count"] > 0]
            if frame.empty:
                continue
            # Seconds without samples (an outage) stay gaps instead of straight lines across them.
            step = data.resolution
            seconds = np.arange(int(frame["t"].min()), int(frame["t"].max()) + step, step)
            frame = frame.set_index("t").reindex(seconds)
            x = seconds - data.start
            for row, (column, _) in enumerate(rows, start=1):
                figure.add_trace(
                    go.Scatter(
                        x=x,
                        y=frame[column].to_numpy(dtype=np.float64) / 1000.0,
                        connectgaps=False,
                        mode="lines",
                        name=_name(label, metric, runs),
                        legendgroup=f"{metric}-{run_index}",
                        showlegend=row == 1,
                        line={"color": _color(metric_index), "dash": _dash(run_index), "width": 1.5},
                    ),
                    row=row,
                    col=1,
                )
    figure.update_yaxes(title_text="ms")
    figure.update_xaxes(title_text="seconds since start", row=3, col=1)
    return _style(figure, FIGURE_TITLES["fig-latency-time"], height=720)


def latency_spectrum(runs: Sequence[LabelledRun]) -> go.Figure:
    """Latency by percentile over the whole run, HdrHistogram style (log axis of 1 / (1 - p))."""
    figure = go.Figure()
    metrics = _latency_metrics(runs)
    x = 1.0 / np.maximum(1.0 - _SPECTRUM_PCTS / 100.0, 1e-6)
    for run_index, (label, data) in enumerate(runs):
        for metric_index, metric in enumerate(metrics):
            if metric not in data.metrics:
                continue
            values = hdr.percentiles(data.merged(metric), _SPECTRUM_PCTS.tolist())
            figure.add_trace(
                go.Scatter(
                    x=x,
                    y=np.array([values[p] for p in _SPECTRUM_PCTS.tolist()]) / 1000.0,
                    customdata=_SPECTRUM_PCTS,
                    hovertemplate="p%{customdata:.4g}: %{y:.3f} ms",
                    mode="lines",
                    name=_name(label, metric, runs),
                    line={"color": _color(metric_index), "dash": _dash(run_index)},
                )
            )
    ticks = [1, 2, 10, 100, 1000, 10000, 100000, 1e6]
    figure.update_xaxes(
        type="log",
        title_text="percentile",
        tickvals=ticks,
        ticktext=["0%", "50%", "90%", "99%", "99.9%", "99.99%", "99.999%", "max"],
    )
    figure.update_yaxes(title_text="ms")
    _style(figure, FIGURE_TITLES["fig-latency-spectrum"])
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
        for metric_index, metric in enumerate(metrics):
            if (run_index, metric) not in binned:
                continue
            values, counts = binned[(run_index, metric)]
            share, _ = np.histogram(values, bins=edges, weights=counts / counts.sum())
            figure.add_trace(
                go.Scatter(
                    x=centres,
                    y=share * 100.0,
                    mode="lines",
                    line={"shape": "hvh", "color": _color(metric_index)},
                    name=_name(label, metric, runs),
                    legendgroup=metric,
                ),
                row=1,
                col=run_index + 1,
            )
    figure.update_xaxes(type="log", title_text="ms")
    figure.update_yaxes(title_text="% of samples", col=1)
    _style(figure, FIGURE_TITLES["fig-latency-distribution"])
    figure.update_layout(hovermode="closest")
    return figure


def _counter_lines(
    figure: go.Figure, runs: Sequence[LabelledRun], prefixes: Sequence[str], *, row: int | None = None
) -> int:
    names = sorted(
        {
            str(n)
            for _, data in runs
            for n in data.counters["name"].unique()
            if str(n).startswith(tuple(prefixes))
        }
    )
    for run_index, (label, data) in enumerate(runs):
        for name_index, name in enumerate(names):
            frame = data.counters[data.counters["name"] == name]
            if frame.empty:
                continue
            seconds = np.arange(data.start, data.end)
            series = frame.groupby("t")["value"].sum().reindex(seconds, fill_value=0)
            trace = go.Scatter(
                x=seconds - data.start,
                y=series.to_numpy(),
                mode="lines",
                name=_name(label, name, runs),
                line={"color": _color(name_index), "dash": _dash(run_index)},
            )
            if row is None:
                figure.add_trace(trace)
            else:
                figure.add_trace(trace, row=row, col=1)
    return len(names)


def throughput(runs: Sequence[LabelledRun]) -> go.Figure:
    """Frames sent and received per second, by type."""
    figure = go.Figure()
    if not _counter_lines(figure, runs, (COUNTER_SENT, COUNTER_RECEIVED)):
        _empty(figure, "no frames counted")
    figure.update_xaxes(title_text="seconds since start")
    figure.update_yaxes(title_text="frames / s")
    return _style(figure, FIGURE_TITLES["fig-throughput"])


def errors_by_code(runs: Sequence[LabelledRun]) -> go.Figure:
    """Errors per second by ``errors.<type>.<code>``, stacked bars, one row per run."""
    figure = make_subplots(
        rows=len(runs), cols=1, shared_xaxes=True, subplot_titles=[label for label, _ in runs]
    )
    names = sorted(
        {str(n) for _, d in runs for n in d.counters["name"].unique() if str(n).startswith(COUNTER_ERRORS)}
    )
    for run_index, (_label, data) in enumerate(runs):
        for name_index, name in enumerate(names):
            frame = data.counters[data.counters["name"] == name]
            if frame.empty:
                continue
            series = frame.groupby("t")["value"].sum()
            figure.add_trace(
                go.Bar(
                    x=series.index.to_numpy() - data.start,
                    y=series.to_numpy(),
                    name=name[len(COUNTER_ERRORS) :],
                    legendgroup=name,
                    showlegend=run_index == 0,
                    marker={"color": _color(name_index)},
                ),
                row=run_index + 1,
                col=1,
            )
    if not names:
        figure.add_annotation(text="no errors", showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    figure.update_layout(barmode="stack")
    figure.update_yaxes(title_text="errors / s")
    figure.update_xaxes(title_text="seconds since start", row=len(runs), col=1)
    return _style(figure, FIGURE_TITLES["fig-errors"], height=300 + 120 * len(runs))


def queue_size(runs: Sequence[LabelledRun]) -> go.Figure:
    """Client-side outbound queue per user: mean and max per second."""
    figure = go.Figure()
    shown = False
    for run_index, (label, data) in enumerate(runs):
        frame = data.gauges[data.gauges["name"] == GAUGE_QUEUE_SIZE]
        if frame.empty:
            continue
        shown = True
        x = frame["t"].to_numpy() - data.start
        for index, column in enumerate(("mean", "max")):
            figure.add_trace(
                go.Scatter(
                    x=x,
                    y=frame[column].to_numpy(dtype=np.float64),
                    mode="lines",
                    name=_name(label, f"queue {column}", runs),
                    line={"color": _color(index), "dash": _dash(run_index)},
                )
            )
    if not shown:
        _empty(figure, "no queue-size gauge in this run")
    figure.update_xaxes(title_text="seconds since start")
    figure.update_yaxes(title_text="messages per user")
    return _style(figure, FIGURE_TITLES["fig-queue"])


def connections(runs: Sequence[LabelledRun]) -> go.Figure:
    """Users per connection state (top) and connection events per second by kind (bottom)."""
    figure = make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.08,
        row_heights=[0.65, 0.35],
        subplot_titles=["users by state", "connection events per second"],
    )
    for run_index, (label, data) in enumerate(runs):
        for state_index, state in enumerate(_STATES):
            frame = data.gauges[data.gauges["name"] == state_gauge(state)]
            if frame.empty:
                continue
            figure.add_trace(
                go.Scatter(
                    x=frame["t"].to_numpy() - data.start,
                    y=frame["sum"].to_numpy(dtype=np.float64),
                    mode="lines",
                    name=_name(label, state, runs),
                    line={"color": _color(state_index), "dash": _dash(run_index)},
                ),
                row=1,
                col=1,
            )
        events = data.events
        if not events.empty:
            seconds = np.floor(events["ts"].to_numpy(dtype=np.float64)).astype(np.int64) - data.start
            counts = (
                pd.DataFrame({"t": seconds, "kind": events["kind"].astype(str)}).groupby(["kind", "t"]).size()
            )
            for kind_index, kind in enumerate(sorted(counts.index.get_level_values(0).unique())):
                series = counts.loc[kind]
                figure.add_trace(
                    go.Bar(
                        x=series.index.to_numpy(),
                        y=series.to_numpy(),
                        name=_name(label, f"event {kind}", runs),
                        marker={"color": _color(3 + kind_index), "opacity": 1.0 if run_index == 0 else 0.55},
                    ),
                    row=2,
                    col=1,
                )
    figure.update_yaxes(title_text="users", row=1, col=1)
    figure.update_yaxes(title_text="events", row=2, col=1)
    figure.update_xaxes(title_text="seconds since start", row=2, col=1)
    return _style(figure, FIGURE_TITLES["fig-connections"], height=520)


def _is_cumulative(name: str) -> bool:
    base = name.split("{", 1)[0]
    return base.endswith(("_total", "_count", "_sum"))


def server_metrics(runs: Sequence[LabelledRun]) -> go.Figure | None:
    """The target's scraped metrics (cumulative counters as per-second differences); ``None`` if absent."""
    names = sorted({str(n) for _, d in runs for n in d.server_metrics["name"].unique()})
    if not names:
        return None
    figure = go.Figure()
    for run_index, (label, data) in enumerate(runs):
        for name_index, name in enumerate(names):
            frame = data.server_metrics[data.server_metrics["name"] == name]
            if frame.empty:
                continue
            t = frame["t"].to_numpy()
            values = frame["value"].to_numpy(dtype=np.float64)
            if _is_cumulative(name) and len(values) > 1:
                dt = np.diff(t).astype(np.float64)
                t, values = t[1:], np.diff(values) / np.where(dt > 0, dt, 1.0)
                series = f"{name} /s"
            else:
                series = name
            figure.add_trace(
                go.Scatter(
                    x=t - data.start,
                    y=values,
                    mode="lines+markers" if len(values) < 3 else "lines",
                    name=_name(label, series, runs),
                    visible=True if name_index < 8 else "legendonly",
                    line={"color": _color(name_index), "dash": _dash(run_index)},
                )
            )
    figure.update_xaxes(title_text="seconds since start")
    return _style(figure, FIGURE_TITLES["fig-server"], height=460)


def send_lag(runs: Sequence[LabelledRun]) -> go.Figure | None:
    """Open model's send lag (actual minus scheduled send), p50 and p99 per second; ``None`` if absent."""
    if not any(METRIC_SEND_LAG in data.metrics for _, data in runs):
        return None
    figure = go.Figure()
    for run_index, (label, data) in enumerate(runs):
        frame = data.metric_rows(METRIC_SEND_LAG)
        frame = frame[frame["count"] > 0]
        for index, column in enumerate(("p50_us", "p99_us")):
            figure.add_trace(
                go.Scatter(
                    x=frame["t"].to_numpy() - data.start,
                    y=frame[column].to_numpy() / 1000.0,
                    mode="lines",
                    name=_name(label, f"send lag {column[:-3]}", runs),
                    line={"color": _color(index), "dash": _dash(run_index)},
                )
            )
    figure.update_xaxes(title_text="seconds since start")
    figure.update_yaxes(title_text="ms")
    return _style(figure, FIGURE_TITLES["fig-send-lag"])


def report_figures(runs: Sequence[LabelledRun]) -> dict[str, go.Figure]:
    """Every chart of a report (one run) or a comparison (two), by figure id, in page order.

    Server metrics and send lag appear only when some run has them.
    """
    figures: dict[str, go.Figure | None] = {
        "fig-latency-time": latency_over_time(runs),
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
    sides = (("baseline", -0.15, "circle", _color(0)), ("candidate", 0.15, "diamond", _color(1)))
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
