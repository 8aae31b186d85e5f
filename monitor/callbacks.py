"""The monitor's callbacks: thin glue between the page (:mod:`monitor.layout`) and the data/figure modules.

Callbacks are registered per app by :func:`register_callbacks` (``app.callback``) rather than with the global
``dash.callback``: Dash hands the global registry to the *first* app that serves a request, and
:func:`monitor.app.create_app` must be able to build several apps in one process (tests, or a monitor
mounted under another Flask server beside a standalone one). What a browser tab is looking at lives in its
``dcc.Store`` components (``RUN_STATE``, ``VIEW_STATE``), and every callback opens the run store read-only
for the length of one request. The one thing kept between requests is a bounded cache of what was derived
from runs no longer being written (:class:`monitor.cache.RunCache`: overview, timeline figure, range
statistics): their data cannot change, and re-reading a day of rows is most of a page load's wait.

No callback lets an exception escape: a missing, empty, newer or damaged store becomes a message in the page
and the app keeps serving.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dash
import pandas as pd
from dash import Input, Output, Patch, State, ctx, html, no_update
from dash.exceptions import PreventUpdate

from monitor import data, figures, ids, layout
from monitor import live as live_view
from monitor.cache import RunCache, run_key, store_identity
from runstore.location import is_url, redacted
from runstore.store import RunNotFound, RunStore, StoreError, StoreNotFound

__all__ = ["parse_query", "parse_relayout", "parse_run_param", "register_callbacks"]

log = logging.getLogger(__name__)

_HIDDEN = layout.HIDDEN
_SHOWN = layout.SHOWN
_DEFAULT_SERVER = (
    "wsgauge_frames_in_total",
    "wsgauge_connections_open",
    "wsgauge_event_loop_lag_max_seconds",
)


def parse_run_param(search: str | None, name: str = "run") -> int | None:
    """The run id in a ``?run=ID`` query string, or ``None``."""
    values = urllib.parse.parse_qs((search or "").lstrip("?")).get(name)
    if not values:
        return None
    try:
        return int(values[0])
    except ValueError:
        return None


def parse_query(search: str | None, name: str) -> str | None:
    """The value of ``name`` in a query string (``?run=3&window=7d``), or ``None``."""
    values = urllib.parse.parse_qs((search or "").lstrip("?")).get(name)
    return values[0] if values else None


def _to_unix(value: Any) -> float:
    if isinstance(value, int | float):
        return float(value) / 1000.0  # Plotly date axes: epoch milliseconds
    return pd.Timestamp(str(value)).timestamp()  # naive timestamps are UTC, as the axis shows them


def parse_relayout(relayout: Mapping[str, Any] | None) -> tuple[str, tuple[float, float] | None]:
    """What a ``relayoutData`` event did to the time axis.

    Returns:
        ``("range", (start, end))`` (unix seconds) after a zoom or pan, ``("auto", None)`` after a reset
        (double-click, autoscale), ``("none", None)`` when the time axis did not change (a legend click,
        the first autosize).
    """
    if not relayout:
        return "none", None
    if relayout.get("xaxis.autorange"):
        return "auto", None
    lo = relayout.get("xaxis.range[0]")
    hi = relayout.get("xaxis.range[1]")
    if lo is None and isinstance(relayout.get("xaxis.range"), list | tuple):
        lo, hi = relayout["xaxis.range"][:2]
    if lo is None or hi is None:
        return "none", None
    try:
        start, end = sorted((_to_unix(lo), _to_unix(hi)))
    except (ValueError, TypeError):
        return "none", None
    return "range", (start, end)


def _range_label(view: Mapping[str, Any]) -> str:
    window = view["window"]
    bucket = int(window["bucket"])
    resolution = "1-second" if bucket == 1 else f"{layout.format_duration(bucket)} buckets (min/max)"
    if view.get("range"):
        lo, hi = view["range"]
        text = (
            f"Selected {layout.format_time(lo)[11:19]} to {layout.format_time(hi)[11:23]}"
            f" ({layout.format_duration(hi - lo)})"
        )
    elif view.get("live_window"):
        label = live_view.LIVE_WINDOWS[view["live_window"]][0]
        lo, hi = view["live_from"], view["live_to"]
        text = f"{label[0].upper()}{label[1:]} ({layout.format_duration(hi - lo)} with samples)"
    else:
        span = view["span"]
        text = f"Whole run ({layout.format_duration(span[1] + 1 - span[0])})"
    live = " · live, updating every 1.5 s" if view.get("live") else ""
    return f"{text} · {resolution}{live}"


def _default_metrics(metrics: list[str]) -> list[str]:
    return [m for m in metrics if m != "send_lag"]


def _selected_series(
    store: RunStore,
    run_id: int,
    window: data.Window,
    span: tuple[int, int],
    selection: dict[str, Any],
    state: dict[str, Any],
    *,
    since: float | None = None,
    until: float | None = None,
) -> pd.DataFrame:
    """The run's series the picker selected: a whole window's read, or only what came ``since`` a cursor."""
    return data.read_timeline(
        store,
        run_id,
        window,
        span=span,
        metrics=selection["metrics"],
        percentiles=selection["percentiles"],
        server=selection["server"],
        server_names=state.get("server_names", []),
        since=since,
        until=until,
    )


def _build_timeline(
    store_path: Path | str,
    state: Mapping[str, Any],
    selection: Mapping[str, Any],
    rng: list[float] | None,
    uirev: str,
    cache: RunCache | None = None,
) -> tuple[Any, dict[str, Any]]:
    """Read and draw the timeline for a range (``None``: the whole run); returns the figure and the view.

    A run no longer written (and its compared run, if any) is drawn once per state, selection and range:
    later calls get the cached figure (shared: not to be mutated) and a copy of the view.
    """
    key = None
    with data.open_store(store_path) as store:
        if cache is not None and cache.entries:
            key = _timeline_key(store, store_path, state, selection, rng, uirev)
            hit = cache.get(key)
            if hit is not None:
                return hit[0], {**hit[1], "drawn_at": time.time()}
        fig, view = _read_and_draw(store, state, selection, rng, uirev)
    if cache is not None and view:
        cache.put(key, (fig, view))
        view = dict(view)
    return fig, view


def _timeline_key(
    store: RunStore,
    store_path: Path | str,
    state: Mapping[str, Any],
    selection: Mapping[str, Any],
    rng: list[float] | None,
    uirev: str,
) -> Any:
    """The cache key of a timeline: ``None`` (not cached) while the run or its compared run is live."""
    identity = store_identity(store_path)
    key = run_key(identity, store.get_run(int(state["run"])))
    if key is None:
        return None
    compare = None
    if state.get("compare") is not None:
        compare = run_key(identity, store.get_run(int(state["compare"])))
        if compare is None:
            return None
    what = json.dumps([state, selection, rng, uirev], sort_keys=True, default=str)
    return ("timeline", key, compare, what)


def _read_and_draw(
    store: RunStore,
    state: Mapping[str, Any],
    selection: Mapping[str, Any],
    rng: list[float] | None,
    uirev: str,
) -> tuple[Any, dict[str, Any]]:
    """Read the run's series for the view and draw them (the uncached part of :func:`_build_timeline`)."""
    run_id = int(state["run"])
    run = store.get_run(run_id)
    live = run.is_live()
    if not live and not state.get("live") and state.get("span"):
        span = (int(state["span"][0]), int(state["span"][1]))  # a finished run's span does not change
    else:
        span = store.time_range(run_id)
    if span is None:
        return figures.empty_figure("This run has no samples yet."), {}
    probe_window = selection.get("window") if state.get("probe") else None
    live_from = live_to = None
    if rng:
        lo, hi = float(rng[0]), float(rng[1])
        margin = (hi - lo) * 0.25
        window = data.plan_window(max(lo - margin, span[0]), min(hi + margin, span[1] + 1))
    elif probe_window:
        live_from, live_to = live_view.live_range(span, probe_window, live=live, now=time.time())
        window = data.plan_window(live_from, live_to)
    else:
        window = data.plan_window(span[0], span[1] + 1)
    status = live_view.read_status(store, run, float(span[1])) if state.get("probe") else None
    until = float(span[1]) if live else None
    series = _selected_series(store, run_id, window, span, selection, state, until=until)
    compare = None
    if state.get("compare") is not None:
        cspan = store.time_range(int(state["compare"]))
        if cspan is not None:
            compare = data.read_timeline(
                store,
                int(state["compare"]),
                window,
                span=cspan,
                metrics=[m for m in selection["metrics"] if m in state.get("compare_metrics", [])],
                percentiles=selection["percentiles"],
                shift=float(state["shift"]),
            )
    rows = figures.timeline_rows(
        server=bool(selection["server"]),
        send_lag="send_lag" in state.get("metrics", []),
        generator=True,  # drawn only when the run recorded its generator's health
    )
    fig = figures.make_timeline(series, rows=rows, bucket=window.bucket, compare=compare, uirevision=uirev)
    if status is not None and status.alerts:
        shapes, labels = figures.alert_shading(status.alerts, float(window.end))
        fig.update_layout(
            shapes=[*fig.layout.shapes, *shapes], annotations=[*fig.layout.annotations, *labels]
        )
    # dcc.Graph copies a user's zoom into its figure; a redraw must carry the zoom too, or Plotly takes the
    # figure's (absent) range over the user's and the view jumps back to the whole window.
    if rng:
        fig.update_xaxes(range=[float(rng[0]) * 1000.0, float(rng[1]) * 1000.0], autorange=False)
    else:
        fig.update_xaxes(autorange=True)
    view = {
        "run": run_id,
        "compare": state.get("compare"),
        "window": window.to_dict(),
        "range": list(rng) if rng else None,
        "cursor": until,
        "span": list(span),
        "live": live,
        "keys": [figures.trace_key(trace) for trace in fig.data],
        "uirev": uirev,
        "drawn_at": time.time(),
    }
    if probe_window and live_from is not None:
        view.update(live_window=probe_window, live_from=live_from, live_to=live_to)
    return figures.jsonable(fig), view


_X_RANGE_JS = """
function (relayout) {
    // Pass on zooms, pans and resets of the time axis; drop everything else (autosize, legend, y zoom), so
    // that a stray autosize event never supersedes a redraw that is under way.
    const skip = window.dash_clientside.no_update;
    if (!relayout) { return skip; }
    if (relayout['xaxis.autorange']) { return {'xaxis.autorange': true}; }
    let lo = relayout['xaxis.range[0]'], hi = relayout['xaxis.range[1]'];
    if (lo === undefined && Array.isArray(relayout['xaxis.range'])) {
        [lo, hi] = relayout['xaxis.range'];
    }
    if (lo === undefined || hi === undefined) { return skip; }
    return {'xaxis.range': [lo, hi]};
}
"""


def register_callbacks(app: dash.Dash, store_path: Path | str, cache: RunCache | None = None) -> None:
    """Register every callback of the monitor page on ``app``, reading the run store at ``store_path``
    (a file path or a ``postgresql://`` URL); ``cache``: what is kept of runs no longer written (``None``:
    a :class:`RunCache` of its default size; ``RunCache(0)``: nothing)."""
    cache = RunCache() if cache is None else cache

    app.clientside_callback(_X_RANGE_JS, Output(ids.X_RANGE, "data"), Input(ids.TIMELINE, "relayoutData"))

    @app.callback(
        Output(ids.RUNS_LIST, "children"),
        Output(ids.COMPARE, "options"),
        Output(ids.BANNER, "children"),
        Output(ids.BANNER, "className"),
        Output(ids.RUNS_FILTER_HOST, "options"),
        Output(ids.RUNS_FILTER_TAG, "options"),
        Output(ids.RUNS_FILTER_BUILD, "options"),
        Output(ids.RUNS_FILTER, "style"),
        Input(ids.URL, "search"),
        Input(ids.RUNS_INTERVAL, "n_intervals"),
        Input(ids.RUNS_FILTER_HOST, "value"),
        Input(ids.RUNS_FILTER_TAG, "value"),
        Input(ids.RUNS_FILTER_BUILD, "value"),
    )
    def refresh_runs(
        search: str | None, _n: int | None, host: str | None, tag: str | None, build: str | None
    ) -> tuple[Any, ...]:
        no_filters = ([], [], [], _HIDDEN)
        try:
            with data.open_store(store_path) as store:
                rows = data.list_runs(store)
        except StoreNotFound:
            waiting = _waiting_for_store(store_path)
            return [], [], waiting, "banner banner-info", *no_filters
        except StoreError as exc:
            if _is_empty_file(store_path):  # a writer has created the file and not yet its schema
                waiting = _waiting_for_store(store_path)
                return [], [], waiting, "banner banner-info", *no_filters
            return [], [], data.describe_error(exc), "banner banner-error", *no_filters
        except Exception as exc:  # never a traceback in the page
            log.exception("cannot list runs in %s", store_path)
            return [], [], data.describe_error(exc), "banner banner-error", *no_filters
        selected = parse_run_param(search) or (rows[0].id if rows else None)
        options = [
            {"label": f"#{r.id} {r.name} ({layout.format_time(r.started_at)[:16]})", "value": r.id}
            for r in rows
            if r.id != selected
        ]
        if not rows:
            return (
                layout.runs_list(rows, None),
                [],
                f"The run store {redacted(store_path)} has no runs yet: start a load test with "
                f"--results {redacted(store_path)}.",
                "banner banner-info",
                *no_filters,
            )
        chosen = {"host": host, "tag": tag, "build": build}
        facets = data.facet_options(rows)
        shown = data.filter_runs(rows, chosen)
        listed: list[Any] = layout.runs_list(shown, selected)
        if not shown:
            listed = [html.Div("No run matches these filters.", className="muted pad")]
        return (
            listed,
            options,
            None,
            "banner hidden",
            *layout.runs_filter(facets, chosen),
            _SHOWN if any(facets.values()) else _HIDDEN,
        )

    @app.callback(
        Output(ids.STORE_STATUS, "data"),
        Input(ids.RUNS_INTERVAL, "n_intervals"),
        State(ids.STORE_STATUS, "data"),
        State(ids.RUN_STATE, "data"),
        prevent_initial_call=True,
    )
    def watch_store(_n: int, status: str | None, run_state: dict[str, Any] | None) -> Any:
        """While the page shows a problem instead of a run, say when the store changes state (it appears,
        gets its first run, recovers), so that select_run tries again.

        Not part of the page load (``prevent_initial_call``), and silent while a run is shown or on its
        way: a callback of the load that outputs one of select_run's inputs would make Dash hold select_run
        back until it answered (a round trip before the first chart), and a new select_run request while
        one is under way would make Dash drop the answer of the first.
        """
        if not (run_state or {}).get("error"):
            return no_update
        new = _store_status(store_path)
        return no_update if new == status else new

    @app.callback(
        Output(ids.RUN_STATE, "data"),
        Output(ids.RUN_HEADER, "children"),
        Output(ids.RUN_HEADER, "style"),
        Output(ids.RUN_BODY, "style"),
        Output(ids.METRICS, "options"),
        Output(ids.METRICS, "value"),
        Output(ids.SERVER_FAMILIES, "options"),
        Output(ids.SERVER_FAMILIES, "value"),
        Output(ids.SERVER_PICKER, "style"),
        Output(ids.LIVE_INTERVAL, "disabled"),
        Output(ids.LIVE_BAR, "style"),
        Output(ids.LIVE_WINDOW, "value"),
        # Selecting a run draws its timeline in the same round trip (the first charts of a long run open one
        # request sooner); draw_timeline redraws only when the user changes what is drawn.
        Output(ids.TIMELINE, "figure", allow_duplicate=True),
        Output(ids.VIEW_STATE, "data", allow_duplicate=True),
        Output(ids.RANGE_LABEL, "children", allow_duplicate=True),
        Input(ids.URL, "search"),
        Input(ids.COMPARE, "value"),
        Input(ids.STORE_STATUS, "data"),
        State(ids.PERCENTILES, "value"),
        State(ids.RESET_RANGE, "n_clicks"),
        State(ids.VIEW_STATE, "data"),
        State(ids.RUN_STATE, "data"),
        prevent_initial_call="initial_duplicate",
    )
    def select_run(
        search: str | None,
        compare_id: int | None,
        _status: str | None,
        percentiles: list[str] | None,
        resets: int | None,
        view_state: dict[str, Any] | None,
        run_state: dict[str, Any] | None,
    ) -> tuple[Any, ...]:
        retry = ctx.triggered_id == ids.STORE_STATUS
        if retry and not (run_state or {}).get("error"):
            raise PreventUpdate  # the store changed state, but a run is already shown (or on its way)

        def failed(message: str, *, in_banner: bool = False) -> tuple[Any, ...]:
            # Said once: a store-wide problem (or an empty store) by refresh_runs's banner, a run-level one
            # here in the header; the charts, spectrum and table are hidden rather than repeating it.
            state = {"error": message}
            if retry and state == run_state:
                raise PreventUpdate  # still the same problem: the page already says so
            header = [] if in_banner else [html_message(message)]
            head_style = _HIDDEN if in_banner else _SHOWN
            outputs = _timeline_outputs(store_path, state, cache=cache)
            return (
                state,
                header,
                head_style,
                _HIDDEN,
                [],
                [],
                [],
                [],
                _HIDDEN,
                True,
                _HIDDEN,
                None,
                *outputs,
            )

        try:
            with data.open_store(store_path) as store:
                run_id = parse_run_param(search) or store.latest_run_id()
                if run_id is None:
                    return failed(f"No runs in {redacted(store_path)} yet.", in_banner=True)
                view = _overview(store, store_path, run_id, cache)
                compare = None
                if compare_id is not None and int(compare_id) != run_id:
                    compare = _overview(store, store_path, int(compare_id), cache)
        except RunNotFound as exc:
            return failed(data.describe_error(exc))
        except StoreError as exc:
            return failed(data.describe_error(exc), in_banner=True)
        except Exception as exc:
            log.exception("cannot read run from %s", store_path)
            return failed(data.describe_error(exc))
        header = layout.run_header(view, compare)
        if view.span is None:
            header.append(
                html_message(
                    "This run has no samples yet"
                    + (": the charts appear as soon as its first second is written." if view.live else ".")
                )
            )
        metrics = list(view.metrics)
        probe = live_view.is_probe(view.run)
        window = live_view.parse_window(parse_query(search, "window")) if probe else None
        options = [{"label": html_pill(m), "value": m} for m in metrics if m != "send_lag"]
        families = list(view.server_families)
        server_value = [f for f in _DEFAULT_SERVER if f in families][:1] or families[:1]
        state = {
            "run": view.run.id,
            "compare": None if compare is None else compare.run.id,
            "shift": 0.0 if compare is None else view.run.started_at - compare.run.started_at,
            "span": None if view.span is None else list(view.span),
            "metrics": metrics,
            "compare_metrics": [] if compare is None else list(compare.metrics),
            "server_names": list(view.server_names),
            "live": view.live,
            "empty": view.span is None,
            "probe": probe,
            "window": window,
        }
        selection = {
            "metrics": _default_metrics(metrics),
            "percentiles": [p for p in data.TIMELINE_PERCENTILES if p in (percentiles or [])],
            "server": server_value,
            **({"window": window} if probe else {}),
        }
        return (
            state,
            header,
            _SHOWN,
            _HIDDEN if view.span is None else _SHOWN,  # no samples: the header says so, once
            options,
            selection["metrics"],
            [{"label": f.removeprefix("wsgauge_"), "value": f} for f in families],
            server_value,
            _SHOWN if families else _HIDDEN,
            not (view.live or (view.span is None and view.run.status == "running")),
            _SHOWN if probe else _HIDDEN,
            window,
            *_timeline_outputs(
                store_path, state, selection, _kept_range(state, view_state), resets, cache=cache
            ),
        )

    @app.callback(
        Output(ids.TIMELINE, "figure"),
        Output(ids.VIEW_STATE, "data"),
        Output(ids.RANGE_LABEL, "children"),
        Input(ids.RUN_STATE, "data"),
        Input(ids.METRICS, "value"),
        Input(ids.PERCENTILES, "value"),
        Input(ids.SERVER_FAMILIES, "value"),
        Input(ids.X_RANGE, "data"),
        Input(ids.RESET_RANGE, "n_clicks"),
        Input(ids.LIVE_WINDOW, "value"),
        State(ids.VIEW_STATE, "data"),
    )
    def draw_timeline(
        state: dict[str, Any] | None,
        metrics: list[str] | None,
        percentiles: list[str] | None,
        server: list[str] | None,
        x_range: dict[str, Any] | None,
        resets: int | None,
        window: str | None,
        view: dict[str, Any] | None,
    ) -> tuple[Any, ...]:
        if not state:
            raise PreventUpdate
        rng = _kept_range(state, view)
        triggered = set(ctx.triggered_prop_ids.values())
        if ids.X_RANGE in triggered:
            what, new_range = parse_relayout(x_range)
            if what != "none":
                rng = list(new_range) if new_range else None
        if ids.RESET_RANGE in triggered or ids.LIVE_WINDOW in triggered:
            rng = None  # back to the whole run, or to the probe's newly chosen window
        selection = {
            "metrics": list(metrics or []),
            "percentiles": [p for p in data.TIMELINE_PERCENTILES if p in (percentiles or [])],
            "server": list(server or []),
            **({"window": live_view.parse_window(window)} if state.get("probe") else {}),
        }
        if triggered <= _SELECTED_BY_SELECT_RUN and _already_drawn(state, view, selection):
            raise PreventUpdate  # select_run has just drawn this run with this selection
        return _timeline_outputs(store_path, state, selection, rng, resets, cache=cache)

    @app.callback(
        Output(ids.TIMELINE, "figure", allow_duplicate=True),
        Output(ids.VIEW_STATE, "data", allow_duplicate=True),
        Output(ids.LIVE_INTERVAL, "disabled", allow_duplicate=True),
        Output(ids.RANGE_LABEL, "children", allow_duplicate=True),
        Output(ids.RUN_BODY, "style", allow_duplicate=True),
        Input(ids.LIVE_INTERVAL, "n_intervals"),
        State(ids.RUN_STATE, "data"),
        State(ids.VIEW_STATE, "data"),
        prevent_initial_call=True,
    )
    def live_tick(_n: int, state: dict[str, Any] | None, view: dict[str, Any] | None) -> tuple[Any, ...]:
        if not state or state.get("error"):
            raise PreventUpdate
        if not view or view.get("error") or "window" not in view:
            # A run that had no samples when it was selected: draw it as soon as it has some.
            selection = _selection_of(view, state)
            try:
                with data.open_store(store_path) as store:
                    span = store.time_range(int(state["run"]))
                    if span is not None and not selection["metrics"]:  # selected before its first sample
                        selection["metrics"] = _default_metrics(store.latency_metrics(int(state["run"])))
                if span is None:
                    raise PreventUpdate
                fig, new_view = _build_timeline(store_path, state, selection, None, _uirevision(state))
            except PreventUpdate:
                raise
            except Exception:
                log.exception("live tick failed for run %s", state.get("run"))
                raise PreventUpdate from None
            if not new_view:
                raise PreventUpdate
            new_view["selection"] = selection
            return fig, new_view, not new_view["live"], _range_label(new_view), _SHOWN
        try:
            return (*_live_update(store_path, state, view), no_update)
        except StoreError as exc:
            log.warning("live update of run %s failed: %s", state.get("run"), exc)
            raise PreventUpdate from None
        except PreventUpdate:
            raise
        except Exception:
            log.exception("live update of run %s failed", state.get("run"))
            raise PreventUpdate from None

    @app.callback(
        Output(ids.SPECTRUM, "figure"),
        Output(ids.SUMMARY_TABLE, "children"),
        Input(ids.VIEW_STATE, "data"),
        State(ids.RUN_STATE, "data"),
    )
    def show_range(view: dict[str, Any] | None, state: dict[str, Any] | None) -> tuple[Any, ...]:
        if not view or not state or view.get("error") or "span" not in view:
            return figures.empty_figure("", height=360), []  # hidden; the banner or header says why
        rng = view.get("range") or ([view["live_from"], view["live_to"]] if view.get("live_window") else None)
        try:
            with data.open_store(store_path) as store:
                key = _range_key(store, store_path, view, state, rng) if cache.entries else None
                stats, cstats = cache.get_or_make(key, lambda: _range_stats(store, view, state, rng))
        except StoreError as exc:
            message = data.describe_error(exc)
            return figures.empty_figure(message, height=360), html_message(message)
        except Exception as exc:
            log.exception("cannot compute range statistics")
            message = data.describe_error(exc)
            return figures.empty_figure(message, height=360), html_message(message)
        title = "Latency by percentile, " + (
            "selected range"
            if view.get("range")
            else live_view.LIVE_WINDOWS[view["live_window"]][0]
            if view.get("live_window")
            else "whole run"
        )
        fig = figures.make_spectrum(stats.spectrum, None if cstats is None else cstats.spectrum, title=title)
        return fig, layout.summary_table(stats.table, None if cstats is None else cstats.table)

    @app.callback(
        Output(ids.LIVE_BADGES, "children"),
        Input(ids.VIEW_STATE, "data"),
        State(ids.RUN_STATE, "data"),
    )
    def show_badges(view: dict[str, Any] | None, state: dict[str, Any] | None) -> list[Any]:
        """A probe's status badges, read again with every redraw and live update of its timeline."""
        if not state or not state.get("probe") or not view or "span" not in view:
            return []
        try:
            with data.open_store(store_path) as store:
                run = store.get_run(int(state["run"]))
                status = live_view.read_status(store, run, float(view["span"][1]))
        except Exception:
            log.exception("cannot read the probe's status")
            return [html_message("cannot read the probe's status (see the monitor's log)")]
        return layout.live_badges(status)

    @app.callback(
        Output(ids.GENERATOR_FLAG, "children"),
        Output(ids.GENERATOR_FLAG, "className"),
        Output(ids.GENERATOR_FLAG, "title"),
        Input(ids.VIEW_STATE, "data"),
    )
    def flag_generator(view: dict[str, Any] | None) -> tuple[str, str, str]:
        """Flag the selected range (or the whole run) when the load generator was the bottleneck."""
        if not view or view.get("error") or "span" not in view:
            return layout.generator_flag(None)
        rng = view.get("range")
        try:
            with data.open_store(store_path) as store:
                lo, hi = rng or (None, None)
                width = int(view["window"]["bucket"])
                health = data.range_health(store, int(view["run"]), lo, hi, width)
        except Exception:
            log.exception("cannot read the load generator's health")
            return layout.generator_flag(None)
        return layout.generator_flag(health)


_ALERT_KINDS: tuple[str, ...] = (live_view.ALERT_FIRING, live_view.ALERT_RESOLVED)
_SELECTED_BY_SELECT_RUN: frozenset[str] = frozenset(
    {ids.RUN_STATE, ids.METRICS, ids.SERVER_FAMILIES, ids.LIVE_WINDOW}
)
"""The inputs of draw_timeline that select_run sets when it has drawn the timeline itself."""


def _kept_range(state: Mapping[str, Any], view: Mapping[str, Any] | None) -> list[float] | None:
    """The zoomed range to keep when redrawing: the drawn one, if it is of the same run and comparison."""
    if not view or state.get("error") or view.get("run") != state.get("run"):
        return None
    if view.get("compare") != state.get("compare"):
        return None
    return view.get("range")


def _already_drawn(
    state: Mapping[str, Any], view: Mapping[str, Any] | None, selection: Mapping[str, Any]
) -> bool:
    """Whether ``view`` (what the timeline shows) is ``state``'s run drawn with ``selection``."""
    if not view or view.get("run") != state.get("run") or view.get("compare") != state.get("compare"):
        return False
    if state.get("error") or state.get("empty"):
        return view.get("error") is not None
    return view.get("selection") == dict(selection)


def _uirevision(state: Mapping[str, Any], resets: int | None = None) -> str:
    """Plotly keeps a user's zoom across redraws while this stays the same: same run, comparison, resets."""
    return f"{state['run']}:{state.get('compare')}:{resets or 0}"


def _overview(store: RunStore, store_path: Path | str, run_id: int, cache: RunCache) -> data.RunOverview:
    """:func:`monitor.data.overview` of a run, from the cache when the run is no longer written."""
    run = store.get_run(run_id)
    key = run_key(store_identity(store_path), run) if cache.entries else None
    return cache.get_or_make(None if key is None else ("overview", key), lambda: data.overview_of(store, run))


def _range_key(
    store: RunStore,
    store_path: Path | str,
    view: Mapping[str, Any],
    state: Mapping[str, Any],
    rng: list[float] | None,
) -> Any:
    """The cache key of a range's statistics: ``None`` while the run or its compared run is live."""
    identity = store_identity(store_path)
    key = run_key(identity, store.get_run(int(view["run"])))
    compare = None
    if key is not None and state.get("compare") is not None:
        compare = run_key(identity, store.get_run(int(state["compare"])))
        if compare is None:
            return None
    if key is None:
        return None
    what = json.dumps([view["span"], rng, state], sort_keys=True, default=str)
    return ("range", key, compare, what)


def _range_stats(
    store: RunStore, view: Mapping[str, Any], state: Mapping[str, Any], rng: list[float] | None
) -> tuple[data.RangeStats, data.RangeStats | None]:
    """The range's statistics, and the compared run's over the same stretch of its own time."""
    span = tuple(view["span"])
    lo, hi = (rng[0], rng[1]) if rng else (None, None)
    stats = data.range_stats(store, int(view["run"]), state["metrics"], lo, hi, span)
    cstats = None
    if state.get("compare") is not None:
        cspan = store.time_range(int(state["compare"]))
        if cspan is not None:
            shift = float(state["shift"])
            clo = None if lo is None else lo - shift
            chi = None if hi is None else hi - shift
            cstats = data.range_stats(store, int(state["compare"]), state["compare_metrics"], clo, chi, cspan)
    return stats, cstats


def _timeline_outputs(
    store_path: Path | str,
    state: Mapping[str, Any],
    selection: Mapping[str, Any] | None = None,
    rng: list[float] | None = None,
    resets: int | None = None,
    *,
    cache: RunCache | None = None,
) -> tuple[Any, dict[str, Any], Any]:
    """The timeline figure, the view state and the range label for a run state and a selection."""
    if state.get("error") or state.get("empty"):
        message = state.get("error") or "No samples yet."
        view = {"run": state.get("run"), "compare": state.get("compare"), "error": message}
        return figures.empty_figure(""), view, ""  # hidden; the banner or header says why
    assert selection is not None
    try:
        fig, new_view = _build_timeline(
            store_path, state, selection, rng, _uirevision(state, resets), cache=cache
        )
    except StoreError as exc:
        message = data.describe_error(exc)
        return figures.empty_figure(message), {"run": state["run"], "error": message}, ""
    except Exception as exc:
        log.exception("cannot draw run %s", state.get("run"))
        message = data.describe_error(exc)
        return figures.empty_figure(message), {"run": state["run"], "error": message}, ""
    if not new_view:
        return fig, {"run": state["run"], "error": "no samples"}, ""
    new_view["selection"] = dict(selection)
    return fig, new_view, _range_label(new_view)


def _selection_of(view: Mapping[str, Any] | None, state: Mapping[str, Any]) -> dict[str, Any]:
    if view and view.get("selection"):
        return dict(view["selection"])
    return {
        "metrics": _default_metrics(list(state.get("metrics", []))),
        "percentiles": list(layout.DEFAULT_PERCENTILES),
        "server": [],
        **({"window": state.get("window")} if state.get("probe") else {}),
    }


def _live_update(
    store_path: Path | str, state: Mapping[str, Any], view: Mapping[str, Any]
) -> tuple[Any, ...]:
    """Extend the drawn traces with the points written since the last update (a ``Patch``), or redraw."""
    run_id = int(view["run"])
    selection = _selection_of(view, state)
    with data.open_store(store_path) as store:
        run = store.get_run(run_id)
        live = run.is_live()
        span = store.time_range(run_id)
        if span is None:
            raise PreventUpdate
        window = data.Window.from_dict(view["window"])
        whole = not view.get("range")
        needs_redraw = not live  # the run ended: one last full draw, with its final seconds
        if whole and view.get("live_window"):
            # A probe's window ends now: slide it (a full redraw) once it has moved a tenth of its length.
            lo, hi = live_view.live_range(span, view["live_window"], live=live, now=time.time())
            seconds = live_view.LIVE_WINDOWS[view["live_window"]][1]
            if data.plan_window(lo, hi).bucket != window.bucket or lo - view["live_from"] > seconds / 10:
                needs_redraw = True
        elif whole and data.plan_window(span[0], span[1] + 1).bucket != window.bucket:
            needs_redraw = True  # the run outgrew the resolution: re-plan the whole-run view
        cursor = float(view["cursor"]) if view.get("cursor") is not None else float(span[1])
        until = float(span[1])
        if not needs_redraw:
            if until <= cursor:
                raise PreventUpdate
            series = _selected_series(
                store, run_id, window, span, selection, state, since=cursor, until=until
            )
            points, unknown = figures.extend_points(series, view["keys"])
            alerted = series["family"].eq("events") & series["name"].isin(_ALERT_KINDS)
            needs_redraw = bool(unknown) or bool(alerted.any())  # an alert fired or resolved: re-shade
    if needs_redraw:
        fig, new_view = _build_timeline(
            store_path, state, selection, view.get("range"), view.get("uirev", "run")
        )
        new_view["selection"] = selection
        return fig, new_view, not new_view.get("live", False), _range_label(new_view)
    patch = Patch()
    for index, attributes in points.items():
        for path, values in attributes.items():
            target = patch["data"][index]
            for part in path.split("."):
                target = target[part]
            target.extend(values)
    new_view = dict(view)
    new_view["cursor"] = until
    new_view["span"] = list(span)
    new_view["drawn_at"] = time.time()
    return patch, new_view, no_update, _range_label(new_view)


def _store_status(store_path: Path | str) -> str:
    """``missing`` (no store yet, or a file still empty), ``error``, ``empty`` (no runs) or ``ok``."""
    try:
        with data.open_store(store_path) as store:
            return "ok" if store.latest_run_id() is not None else "empty"
    except StoreNotFound:
        return "missing"
    except StoreError:
        return "missing" if _is_empty_file(store_path) else "error"
    except Exception:
        log.exception("cannot open the run store %s", redacted(store_path))
        return "error"


def _is_empty_file(path: Path | str) -> bool:
    if is_url(path):
        return False
    try:
        return Path(path).stat().st_size == 0
    except OSError:
        return False


def _waiting_for_store(store_path: Path | str) -> str:
    where = redacted(store_path)
    return (
        f"No run store {'in' if is_url(store_path) else 'at'} {where} yet: waiting for a load test to write "
        f"it (locust -f loadtest ... --results {where}); runs appear here as soon as it does."
    )


def html_message(message: str) -> Any:
    """A message box in the page, where a chart or table would be."""
    return html.Div(message, className="message", role="status")


def html_pill(metric: str) -> Any:
    """A metric's label in the message-type picker, with its colour."""
    return html.Span(
        [html.Span(className="swatch", style={"background": figures.type_colour(metric)}), metric],
        className="pill-label",
    )
