"""Component ids of the monitor page, in one place (layout and callbacks import them from here)."""

from __future__ import annotations

from typing import Final

__all__ = [
    "BANNER",
    "COMPARE",
    "GENERATOR_FLAG",
    "LIVE_BADGES",
    "LIVE_BAR",
    "LIVE_INTERVAL",
    "LIVE_WINDOW",
    "METRICS",
    "PERCENTILES",
    "RANGE_LABEL",
    "RESET_RANGE",
    "RUNS_FILTER",
    "RUNS_FILTER_BUILD",
    "RUNS_FILTER_HOST",
    "RUNS_FILTER_TAG",
    "RUNS_INTERVAL",
    "RUNS_LIST",
    "RUN_BODY",
    "RUN_HEADER",
    "RUN_STATE",
    "SERVER_FAMILIES",
    "SERVER_PICKER",
    "SPECTRUM",
    "STORE_PATH",
    "STORE_STATUS",
    "SUMMARY_TABLE",
    "TIMELINE",
    "URL",
    "VIEW_STATE",
    "X_RANGE",
]

URL: Final = "url"
STORE_PATH: Final = "store-path"
BANNER: Final = "banner"
RUNS_LIST: Final = "runs-list"
RUNS_INTERVAL: Final = "runs-interval"
RUN_HEADER: Final = "run-header"
RUN_BODY: Final = "run-body"
"""Everything below the run header (controls, timeline, spectrum, table); hidden while nothing is drawn."""
COMPARE: Final = "compare-run"
METRICS: Final = "metrics"
PERCENTILES: Final = "percentiles"
SERVER_PICKER: Final = "server-picker"
SERVER_FAMILIES: Final = "server-families"
RESET_RANGE: Final = "reset-range"
RANGE_LABEL: Final = "range-label"
GENERATOR_FLAG: Final = "generator-flag"
TIMELINE: Final = "timeline"
SPECTRUM: Final = "spectrum"
SUMMARY_TABLE: Final = "summary-table"
LIVE_INTERVAL: Final = "live-interval"
LIVE_BAR: Final = "live-bar"
"""A probe run's Live view controls: the window picker and the status badges (hidden for load tests)."""
LIVE_WINDOW: Final = "live-window"
LIVE_BADGES: Final = "live-badges"
RUNS_FILTER: Final = "runs-filter"
RUNS_FILTER_HOST: Final = "runs-filter-host"
RUNS_FILTER_TAG: Final = "runs-filter-tag"
RUNS_FILTER_BUILD: Final = "runs-filter-build"
RUN_STATE: Final = "run-state"
"""dcc.Store: the selected run, its compared run and what they contain (set when the selection changes)."""
VIEW_STATE: Final = "view-state"
"""dcc.Store: the timeline's window, selected range, live cursor and trace keys (set on every redraw)."""
STORE_STATUS: Final = "store-status"
"""dcc.Store: ``missing``, ``error``, ``empty`` or ``ok``; set by ``watch_store`` when it changes while the
page shows a problem instead of a run, so that a store (or a first run) appearing while the page waits
selects its run."""
X_RANGE: Final = "x-range"
"""dcc.Store: the time axis's last zoom/pan/reset (``relayoutData`` filtered in the browser)."""
