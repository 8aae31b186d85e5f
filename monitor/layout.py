"""The monitor page: a runs list on the left; the selected run's timeline, spectrum and table on the right.

:func:`make_layout` is called by Dash on every page load (a function, so that each load starts fresh); the
callbacks fill everything in. Small builders here turn :mod:`monitor.data` results into components (the
runs list, the run header, the summary table) and are pure.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from typing import Any

import pandas as pd
from dash import dcc, html

from charts.health import GeneratorHealth
from charts.load import describe_load
from monitor import ids
from monitor.data import RUN_FACETS, TIMELINE_PERCENTILES, RunOverview, RunRow, format_ms, run_facet
from monitor.figures import type_colour
from monitor.live import LIVE_WINDOWS, LiveStatus

__all__ = [
    "DEFAULT_PERCENTILES",
    "HIDDEN",
    "LIVE_PERIOD_MS",
    "SHOWN",
    "banner",
    "format_duration",
    "format_time",
    "live_badges",
    "make_layout",
    "run_header",
    "runs_filter",
    "runs_list",
    "summary_table",
]

DEFAULT_PERCENTILES = ("p50", "p99")
"""Latency percentiles drawn until the user picks others (max and p95 are one click away)."""
LIVE_PERIOD_MS = 1500
"""How often a live run's charts are extended (milliseconds)."""
RUNS_PERIOD_MS = 5000
"""How often the runs list is refreshed (new runs, live/stale marks)."""
HIDDEN: dict[str, str] = {"display": "none"}
SHOWN: dict[str, str] = {}


def format_time(ts: float) -> str:
    """``2026-11-25 22:13:31 UTC``."""
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def format_duration(seconds: float) -> str:
    """``45 s``, ``12 min 5 s``, ``3 h 20 min``, ``1 d 2 h``."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s" if s % 60 else f"{s // 60} min"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60} min"
    return f"{s // 86400} d {s % 86400 // 3600} h"


def banner(message: str | None, kind: str = "error") -> html.Div:
    """A message across the top of the page (``kind``: ``error``, ``warning`` or ``info``); empty if none."""
    if not message:
        return html.Div(className="banner hidden")
    return html.Div(message, className=f"banner banner-{kind}", role="alert")


def generator_flag(health: GeneratorHealth | None) -> tuple[str, str, str]:
    """The range bar's flag when the load generator set some of the selected range's latency:
    ``(text, className, title)``; hidden when it never did or the run has no health gauges."""
    if health is None or not health.bound:
        return "", "generator-flag hidden", ""
    share = f"{health.share:.0%}" if health.share >= 0.01 else "<1%"
    unit = "s" if health.unit_s == 1 else health.units
    text = f"⚠ generator-bound {health.bound:,} of {health.judged:,} {unit} ({share})"
    return text, "generator-flag", health.sentence


def _status_badge(
    row: RunRow | None = None, *, live: bool = False, stale: bool = False, status: str = ""
) -> html.Span:
    if row is not None:
        live, stale, status = row.live, row.stale, row.status
    if live:
        return html.Span([html.Span(className="pulse"), "LIVE"], className="badge badge-live")
    if stale:
        return html.Span(
            "stale", className="badge badge-stale", title="says running, but its writer stopped writing"
        )
    return html.Span(status, className=f"badge badge-{status}")


def _facets_line(row: RunRow) -> html.Div | None:
    """``host ci-3 · tag nightly · build 2.4.1``: where a run came from (issue 12); nothing on v1 stores."""
    parts = [
        html.Span([html.Span(f, className="facet-key"), value], className=f"run-{f}")
        for f in RUN_FACETS
        if (value := getattr(row, f)) is not None
    ]
    return html.Div(parts, className="run-facets") if parts else None


def runs_filter(options: dict[str, list[str]], chosen: dict[str, str | None]) -> list[Any]:
    """Options of the runs-list filters: per facet, the values present plus a value still chosen."""
    out = []
    for facet in RUN_FACETS:
        values = list(options.get(facet, []))
        if chosen.get(facet) and chosen[facet] not in values:
            values.append(str(chosen[facet]))
        out.append([{"label": v, "value": v} for v in values])
    return out


def runs_list(rows: Sequence[RunRow], selected: int | None) -> list[Any]:
    """The runs list: newest first, live and stale runs marked, each a link to ``?run=ID``."""
    if not rows:
        return [html.Div("No runs yet.", className="muted pad")]
    items = []
    for row in rows:
        classes = ["run-item"]
        if row.id == selected:
            classes.append("selected")
        if row.live:
            classes.append("live")
        details = [format_time(row.started_at)[5:16], format_duration(row.duration_s)]
        if row.load.shape_class is not None:
            details.append(row.load.short)
        elif row.users is not None:
            details.append(f"{row.users} users")
        items.append(
            dcc.Link(
                [
                    html.Div(
                        [
                            html.Span(row.name, className="run-name"),
                            html.Span("probe", className="badge badge-probe")
                            if row.kind == "probe"
                            else None,
                            _status_badge(row),
                        ],
                        className="run-line",
                    ),
                    html.Div(" · ".join(details), className="run-meta"),
                    _facets_line(row),
                    html.Div(row.target, className="run-target"),
                    html.Div(row.load.stages, className="run-stages", title="the shape's stage table")
                    if row.load.stages
                    else None,
                    html.Div(row.headline, className="run-headline") if row.headline else None,
                ],
                href=f"?run={row.id}",
                className=" ".join(classes),
                id={"type": "run-link", "run": row.id},
            )
        )
    return items


def run_header(view: RunOverview, compare: RunOverview | None = None) -> list[Any]:
    """The selected run's name, status and facts, above the charts."""
    run = view.run
    load = describe_load(run.options, run.summary)
    facts = [
        ("run", f"#{run.id}"),
        ("target", run.target),
        ("started", format_time(run.started_at)),
        ("duration", format_duration(run.duration_s)),
    ]
    if load.shape_class is not None:
        facts.append(("shape", load.shape_class))
        if load.stages:
            facts.append(("stages", load.stages))
        if load.peak_users is not None:
            facts.append(("peak users", f"{load.peak_users:,}"))
    elif load.users is not None:
        facts.append(("users", load.short))
    for facet in RUN_FACETS:
        value = run_facet(run, facet)
        if value is not None:
            facts.append((facet, value))
    if run.git_commit:
        facts.append(("commit", run.git_commit[:10]))
    children: list[Any] = [
        html.Div(
            [
                html.H2(run.name, className="run-title"),
                _status_badge(live=view.live, stale=run.is_stale(), status=run.status),
            ],
            className="run-title-line",
        ),
        html.Div(
            [
                html.Span(
                    [html.Span(k, className="fact-key"), html.Span(v, className="fact-value")],
                    className="fact",
                )
                for k, v in facts
            ],
            className="facts",
        ),
    ]
    if compare is not None:
        children.append(
            html.Div(
                f"Compared with #{compare.run.id} {compare.run.name} "
                f"({format_time(compare.run.started_at)}), aligned at start: "
                "dotted, fainter lines; rows marked B in the table.",
                className="compare-note",
            )
        )
    return children


def _cell(value: float, kind: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if kind == "ms":
        return format_ms(value)
    if kind == "count":
        return f"{int(value):,}"
    if kind == "rate":
        return f"{value:,.1f}/s" if value >= 10 else f"{value:.3g}/s"
    if kind == "pct":
        return f"{100 * value:.3g} %" if value else "0 %"
    return str(value)


_TABLE_SPEC = (
    ("count", "count", "count"),
    ("rate", "rate", "rate"),
    ("p50", "p50", "ms"),
    ("p90", "p90", "ms"),
    ("p99", "p99", "ms"),
    ("p99.9", "p99.9", "ms"),
    ("max", "max", "ms"),
    ("error_rate", "errors", "pct"),
)


def _delta(a: float, b: float, kind: str) -> tuple[str, str]:
    """Text and CSS class of the change from B (baseline) to A; higher latency/error rate is worse."""
    if any(v is None or (isinstance(v, float) and math.isnan(v)) for v in (a, b)):
        return "", ""
    if kind in ("count", "rate"):
        if not b:
            return "", ""
        change = (a - b) / b
        return f"{change:+.1%}", "delta"
    if kind == "pct":
        diff = a - b
        if abs(diff) < 1e-12:
            return "±0", "delta"
        return f"{100 * diff:+.2g} pt", "delta worse" if diff > 0 else "delta better"
    if not b:
        return "", ""
    change = (a - b) / b
    css = "delta worse" if change > 0.05 else "delta better" if change < -0.05 else "delta"
    return f"{change:+.1%}", css


def summary_table(table: pd.DataFrame, compare: pd.DataFrame | None = None) -> html.Table:
    """Per-metric table (count, rate, p50/p90/p99/p99.9/max, error rate); with a compared run, a B row and
    the change from B to A under each metric."""
    header = html.Thead(
        html.Tr(
            [html.Th("message type / metric")]
            + [html.Th(label, className="num") for _, label, _ in _TABLE_SPEC]
        )
    )
    by_metric = {} if compare is None else {r["metric"]: r for r in compare.to_dict("records")}
    body = []
    for record in table.to_dict("records"):
        metric = record["metric"]
        swatch = html.Span(className="swatch", style={"background": type_colour(metric)})
        body.append(
            html.Tr(
                [html.Td([swatch, metric], className="metric")]
                + [html.Td(_cell(record[col], kind), className="num") for col, _, kind in _TABLE_SPEC],
                className="row-a",
                **{"data-metric": metric, "data-run": "A"},
            )
        )
        other = by_metric.get(metric)
        if other is not None:
            body.append(
                html.Tr(
                    [html.Td("B", className="metric run-b")]
                    + [html.Td(_cell(other[col], kind), className="num") for col, _, kind in _TABLE_SPEC],
                    className="row-b",
                    **{"data-metric": metric, "data-run": "B"},
                )
            )
            cells = []
            for col, _, kind in _TABLE_SPEC:
                text, css = _delta(record[col], other[col], kind)
                cells.append(html.Td(text, className=f"num {css}".strip()))
            body.append(
                html.Tr(
                    [html.Td("Δ A vs B", className="metric run-b"), *cells],
                    className="row-delta",
                    **{"data-metric": metric, "data-run": "delta"},
                )
            )
    if not body:
        body.append(
            html.Tr(
                html.Td("No latency samples in this range.", colSpan=len(_TABLE_SPEC) + 1, className="muted")
            )
        )
    return html.Table([header, html.Tbody(body)], className="summary")


def _runs_filter() -> html.Div:
    """Filters of the runs list by host, tag and build (shown once some run has one)."""
    pickers = {"host": ids.RUNS_FILTER_HOST, "tag": ids.RUNS_FILTER_TAG, "build": ids.RUNS_FILTER_BUILD}
    return html.Div(
        [
            dcc.Dropdown(id=picker, options=[], value=None, placeholder=f"any {facet}", clearable=True)
            for facet, picker in pickers.items()
        ],
        id=ids.RUNS_FILTER,
        className="runs-filter",
        style=HIDDEN,
    )


def _controls() -> html.Div:
    return html.Div(
        [
            html.Div(
                [
                    html.Label("Message types", className="control-label"),
                    dcc.Checklist(id=ids.METRICS, options=[], value=[], inline=True, className="pills"),
                ],
                className="control",
            ),
            html.Div(
                [
                    html.Label("Percentiles", className="control-label"),
                    dcc.Checklist(
                        id=ids.PERCENTILES,
                        options=[{"label": k, "value": k} for k in TIMELINE_PERCENTILES],
                        value=list(DEFAULT_PERCENTILES),
                        inline=True,
                        className="pills",
                    ),
                ],
                className="control",
            ),
            html.Div(
                [
                    html.Label("Compare with", className="control-label"),
                    dcc.Dropdown(
                        id=ids.COMPARE, options=[], value=None, placeholder="another run…", clearable=True
                    ),
                ],
                className="control control-compare",
            ),
            html.Div(
                [
                    html.Label("Server metrics", className="control-label"),
                    dcc.Dropdown(
                        id=ids.SERVER_FAMILIES, options=[], value=[], multi=True, placeholder="none"
                    ),
                ],
                id=ids.SERVER_PICKER,
                className="control control-server",
                style={"display": "none"},
            ),
        ],
        className="controls",
    )


def _live_bar() -> html.Div:
    """A probe run's Live view controls: which window ends now, and the status badges."""
    return html.Div(
        [
            html.Span("Live", className="live-title"),
            dcc.RadioItems(
                id=ids.LIVE_WINDOW,
                options=[{"label": label, "value": key} for key, (label, _s) in LIVE_WINDOWS.items()],
                value=None,
                inline=True,
                className="pills live-windows",
            ),
            html.Div(id=ids.LIVE_BADGES, className="live-badges"),
        ],
        id=ids.LIVE_BAR,
        className="live-bar",
        style=HIDDEN,
    )


def live_badges(status: LiveStatus | None) -> list[Any]:
    """The probe's badges: its users' connection state, and one per alert rule firing (or "no alert")."""
    if status is None:
        return []
    conn = status.connection
    state = conn.state if status.writing else "stopped"
    title = conn.text if status.writing else f"the probe stopped writing; last seen: {conn.text}"
    badges: list[Any] = [
        html.Span(state, className=f"badge status status-{state}", title=title, **{"data-state": state}),
    ]
    firing = status.firing
    for alert in firing:
        detail = ", ".join(f"{k} {v}" for k, v in alert.detail.items())
        badges.append(
            html.Span(
                f"alert firing: {alert.rule}",
                className="badge alert-firing",
                title=f"since {format_time(alert.start)}" + (f" · {detail}" if detail else ""),
                **{"data-rule": alert.rule},
            )
        )
    if not firing:
        badges.append(html.Span("no alert firing", className="badge alert-none"))
    return badges


def _run_body() -> html.Div:
    """Everything under the run header: controls, range bar, timeline, spectrum and table."""
    range_bar = html.Div(
        [
            html.Span(id=ids.RANGE_LABEL, className="range-label"),
            html.Span(id=ids.GENERATOR_FLAG, className="generator-flag hidden"),
            html.Button("Whole run", id=ids.RESET_RANGE, n_clicks=0, className="button"),
            html.Span("Drag across a chart to select a range; double-click: whole run.", className="hint"),
        ],
        className="range-bar",
    )
    timeline = dcc.Loading(
        dcc.Graph(id=ids.TIMELINE, config={"displaylogo": False, "scrollZoom": False}, className="timeline"),
        type="dot",
        delay_show=400,
        overlay_style={"visibility": "visible", "opacity": 0.6},
    )
    spectrum = html.Div(
        dcc.Graph(id=ids.SPECTRUM, config={"displaylogo": False, "displayModeBar": False}),
        className="panel spectrum",
    )
    table = html.Div(
        [html.Div("Summary of the selected range", className="panel-title"), html.Div(id=ids.SUMMARY_TABLE)],
        className="panel table-panel",
    )
    return html.Div(
        [_live_bar(), _controls(), range_bar, timeline, html.Div([spectrum, table], className="bottom")],
        id=ids.RUN_BODY,
        style=HIDDEN,
    )


def make_layout(results_path: str) -> html.Div:
    """The whole page (Dash calls this on each page load)."""
    return html.Div(
        [
            dcc.Location(id=ids.URL, refresh=False),
            dcc.Store(id=ids.RUN_STATE, storage_type="memory"),
            dcc.Store(id=ids.VIEW_STATE, storage_type="memory"),
            dcc.Store(id=ids.X_RANGE, storage_type="memory"),
            dcc.Store(id=ids.STORE_STATUS, storage_type="memory"),
            dcc.Interval(id=ids.RUNS_INTERVAL, interval=RUNS_PERIOD_MS),
            dcc.Interval(id=ids.LIVE_INTERVAL, interval=LIVE_PERIOD_MS, disabled=True),
            html.Header(
                [
                    html.Div([html.Span("ws", className="logo-ws"), "gauge monitor"], className="logo"),
                    html.Div(results_path, id=ids.STORE_PATH, className="store-path", title="run store"),
                ],
                className="topbar",
            ),
            html.Div(id=ids.BANNER, className="banner hidden"),
            html.Div(
                [
                    html.Aside(
                        [
                            html.Div("Runs", className="aside-title"),
                            _runs_filter(),
                            html.Div(id=ids.RUNS_LIST, className="runs"),
                        ],
                        className="sidebar",
                    ),
                    html.Main(
                        [
                            # Both hidden until a run is selected; a store-wide problem is said once, in
                            # the banner, and a run-level one once, in the header.
                            html.Div(id=ids.RUN_HEADER, className="run-header", style=HIDDEN),
                            _run_body(),
                        ],
                        className="main",
                    ),
                ],
                className="body",
            ),
        ],
        className="page",
    )
