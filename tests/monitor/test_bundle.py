"""The vendored plotly.js partial bundle: the right version, served where dcc.Graph fetches plotly.js."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import pandas as pd
from plotly.offline import get_plotlyjs_version

from monitor import plotly_bundle
from monitor.app import MonitorAuth, create_app
from monitor.figures import make_spectrum, make_timeline, timeline_rows

URL = "/" + plotly_bundle.DASH_PLOTLY_PATH


def test_the_vendored_basic_bundle_is_plotly_pys_plotly_js_version() -> None:
    head = plotly_bundle.BUNDLE.read_text(encoding="utf-8")[:300]
    match = re.search(r"plotly\.js \(basic - minified\) v(\S+)", head)
    assert match, head
    # plotly.py's figures are written for its own plotly.js: refresh the bundle when plotly is upgraded
    # (npm pack plotly.js-basic-dist-min@VERSION, see docs/monitor.md "First paint").
    assert match.group(1) == get_plotlyjs_version()
    assert f"plotly-basic-{get_plotlyjs_version()}.min.js" == plotly_bundle.BUNDLE.name


def test_every_trace_type_the_monitor_draws_is_in_the_basic_bundle() -> None:
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


def test_dash_plotly_url_serves_the_basic_bundle_gzipped_cached_and_revalidated(tmp_path: Path) -> None:
    client = create_app(tmp_path / "runs.sqlite3").server.test_client()
    body = plotly_bundle.BUNDLE.read_bytes()
    packed = client.get(URL, headers={"Accept-Encoding": "gzip, deflate, br"})
    assert packed.status_code == 200 and packed.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(packed.data) == body and len(packed.data) < len(body) / 2
    assert "max-age=86400" in packed.headers["Cache-Control"] and packed.headers["Vary"] == "Accept-Encoding"
    plain = client.get(URL)
    assert plain.data == body and "Content-Encoding" not in plain.headers
    again = client.get(URL, headers={"If-None-Match": plain.headers["ETag"]})
    assert again.status_code == 304 and not again.data


def test_full_plotly_only_when_asked_and_mounted_under_its_prefix_behind_credentials(tmp_path: Path) -> None:
    full = create_app(tmp_path / "runs.sqlite3", plotly_js="full").server.test_client().get(URL)
    assert full.status_code == 200 and len(full.data) > 3 * plotly_bundle.BUNDLE.stat().st_size
    import flask

    host = flask.Flask("host")
    create_app(tmp_path / "runs.sqlite3", server=host, url_base_pathname="/m/", auth=MonitorAuth(token="t"))
    client = host.test_client()
    assert client.get("/m" + URL).status_code == 401
    served = client.get("/m" + URL, headers={"Authorization": "Bearer t"})
    assert served.data == plotly_bundle.BUNDLE.read_bytes()


def test_the_page_preloads_plotly_js_from_where_dcc_graph_fetches_it(tmp_path: Path) -> None:
    link = '<link rel="preload" href="/monitor/' + plotly_bundle.DASH_PLOTLY_PATH + '" as="script">'
    mounted = create_app(tmp_path / "runs.sqlite3", url_base_pathname="/monitor/").server.test_client()
    page = mounted.get("/monitor/").text
    assert link in page and page.index(link) < page.index("<body>")  # in the head, before Dash's scripts
    assert mounted.get("/monitor/" + plotly_bundle.DASH_PLOTLY_PATH).status_code == 200
    plain = create_app(tmp_path / "runs.sqlite3", preload_plotly=False).server.test_client()
    assert 'rel="preload"' not in plain.get("/").text
