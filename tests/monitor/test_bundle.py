"""The vendored plotly.js partial bundle: the right version, loaded instead of Dash's full one."""

from __future__ import annotations

import re
from pathlib import Path

from plotly.offline import get_plotlyjs_version

from monitor.app import _ASSETS, PLOTLY_BASIC, create_app
from monitor.figures import make_spectrum, make_timeline, timeline_rows


def test_the_vendored_basic_bundle_is_plotly_pys_plotly_js_version() -> None:
    head = (_ASSETS / PLOTLY_BASIC).read_text(encoding="utf-8")[:300]
    match = re.search(r"plotly\.js \(basic - minified\) v(\S+)", head)
    assert match, head
    # plotly.py's figures are written for its own plotly.js: refresh the bundle when plotly is upgraded
    # (npm pack plotly.js-basic-dist-min@VERSION, see docs/monitor.md "First paint").
    assert match.group(1) == get_plotlyjs_version()
    assert f"plotly-basic-{get_plotlyjs_version()}.min.js" == PLOTLY_BASIC


def test_every_trace_type_the_monitor_draws_is_in_the_basic_bundle() -> None:
    import pandas as pd

    series = pd.DataFrame(
        {
            "family": ["latency", "throughput", "errors", "queue", "connections", "events"],
            "name": ["pong", "sent.ping", "ping.timeout", "queue", "connected", "connected"],
            "stat": ["p99", "rate", "rate", "mean", "users", "count"],
            "t": [1.0] * 6,
            "value": [1.0] * 6,
        }
    )
    fig = make_timeline(series, rows=timeline_rows(server=False, send_lag=False), bucket=1)
    spectrum = make_spectrum(
        pd.DataFrame({"metric": ["pong"] * 2, "percentile": [50.0, 99.0], "value": [1.0, 2.0]})
    )
    kinds = {t.type for t in fig.data} | {t.type for t in spectrum.data}
    assert kinds and kinds <= {"scatter", "bar"}  # plotly.js-basic: scatter, bar, pie


def test_the_page_loads_the_basic_bundle_and_full_plotly_only_when_asked(tmp_path: Path) -> None:
    basic = create_app(tmp_path / "runs.sqlite3").server.test_client().get("/").get_data(as_text=True)
    full = create_app(tmp_path / "runs.sqlite3", plotly_js="full").server.test_client().get("/")
    assert PLOTLY_BASIC in basic
    assert PLOTLY_BASIC not in full.get_data(as_text=True)
