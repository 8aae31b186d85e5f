"""The Live view of a probe run, and the runs list's host/tag/build filters, in headless Chromium.

A synthetic probe (``tests/monitor/synthetic_probe.py``, written through the real store code) that has been
running for 26 hours and is in an outage right now: its users disconnected, a ``disconnected > 30 s`` alert
firing. Two load-test-like probes on other hosts give the filters something to filter.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench._browser import serve_monitor
from monitor.live import LIVE_WINDOWS
from tests.chromium import MISSING, Page, page
from tests.monitor.synthetic_probe import DISCONNECTED_RULE, store_has_kinds, write_synthetic_probe

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(MISSING is not None, reason=MISSING or ""),
    pytest.mark.skipif(not store_has_kinds(), reason="the run store has no run kinds (schema v1)"),
]

HOURS = 26
WAIT = 60.0
"""Seconds to wait for the page (generous: a loaded 2-core machine; nothing here is a timing assertion)."""
X_SPAN_JS = """
const gd = document.querySelector('#timeline .js-plotly-plot');
if (!gd || !gd._fullData || !gd._fullData.length) return null;
const xs = gd.data.filter(t => t.x && t.x.length && t.meta && String(t.meta[0]).startsWith('latency/'))
    .flatMap(t => [t.x[0], t.x[t.x.length - 1]]);
return [Math.min(...xs) / 1000, Math.max(...xs) / 1000,
        (gd.layout.shapes || []).filter(s => (s.name || '').startsWith('alert ')).length,
        gd.data.filter(t => t.name === 'alert_firing events').length];
"""


@pytest.fixture(scope="module")
def probe_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, float]:
    path = tmp_path_factory.mktemp("probe") / "probe.sqlite3"
    now = time.time()
    seconds = HOURS * 3600
    start = int(now) - seconds
    write_synthetic_probe(path, name="other-1", seconds=120, host="ci-7", tag="nightly", build="2.3.0")
    probe = write_synthetic_probe(
        path,
        name="probe prod-eu",
        start=start,
        seconds=seconds,
        period=60,  # one probe round a minute: the store's summaries are slow on a loaded machine
        outage=(seconds - 600, seconds),
        resolved=False,
        heartbeat_at=now + 3600,  # live for the whole module
        host="probe-eu-1",
        tag="production",
        build="2.4.1",
    )
    write_synthetic_probe(path, name="other-2", seconds=120, host="ci-8", tag="nightly", build="2.4.1")
    return path, probe.run_id, float(start)


@pytest.fixture(scope="module")
def browser(probe_store: tuple[Path, int, float]) -> Iterator[tuple[Page, str]]:
    server = serve_monitor(probe_store[0])
    try:
        with page(1400, 1400) as p:
            yield p, f"http://127.0.0.1:{server.server_port}/"
    finally:
        server.shutdown()


def _wait(p: Page, script: str, timeout: float = WAIT) -> Any:
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = p.driver.execute_script(script)
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {script[:60]!r}")


def _text(p: Page, selector: str) -> str:
    """The element's text, read in one script (the runs list is re-rendered every 5 s: no stale handles)."""
    script = f"const e = document.querySelector({selector!r}); return e ? e.innerText : null;"
    return str(_wait(p, script))


def test_live_view_of_a_probe_in_an_outage(
    browser: tuple[Page, str], probe_store: tuple[Path, int, float]
) -> None:
    p, url = browser
    _path, run_id, start = probe_store
    p.driver.get(f"{url}?run={run_id}")
    p.wait_for_contains_text("#range-label", "Last 24 h", timeout=WAIT)
    p.wait_for_contains_text("#live-badges", "alert firing", timeout=WAIT)
    assert p.find_element("#live-bar").is_displayed()
    badges = p.driver.execute_script(  # in one script: the badges are re-rendered with every live tick
        "return [document.querySelector('#live-badges .status').dataset.state,"
        " [...document.querySelectorAll('#live-badges .alert-firing')].map(b => b.dataset.rule)];"
    )
    assert badges == ["disconnected", [DISCONNECTED_RULE]]
    lo, hi, alert_shapes, alert_markers = _wait(p, X_SPAN_JS)
    end = start + HOURS * 3600
    bucket = 180  # a day's window: 3-minute buckets
    assert end - 86_400 - bucket <= lo <= end - 86_400 + bucket, (lo, end - 86_400)
    assert end - 600 - 2 * bucket <= hi <= end, (hi, end)  # no latency during the outage
    assert alert_shapes == 1 and alert_markers == 1
    # The runs list says where each run came from.
    facets = _text(p, ".run-item.selected .run-facets")
    assert "probe-eu-1" in facets and "production" in facets and "2.4.1" in facets
    assert _text(p, ".run-item.selected .badge-probe").lower() == "probe"


@pytest.mark.parametrize(("window", "seconds"), [("15m", 900), ("7d", HOURS * 3600)])
def test_live_windows(
    browser: tuple[Page, str], probe_store: tuple[Path, int, float], window: str, seconds: int
) -> None:
    p, url = browser
    _path, run_id, start = probe_store
    p.driver.get(f"{url}?run={run_id}")
    p.wait_for_contains_text("#range-label", "Last 24 h", timeout=WAIT)
    label = LIVE_WINDOWS[window][0]
    option = next(e for e in p.find_elements("#live-window label") if e.text == label)
    option.click()
    p.wait_for_contains_text("#range-label", label[0].upper() + label[1:], timeout=WAIT)
    lo, hi, _shapes, _markers = _wait(p, X_SPAN_JS)
    end = start + HOURS * 3600
    if window == "15m":
        # The last 15 minutes: 5 before the outage (one probe round a minute), then no latency at all.
        assert end - 900 - 60 <= lo and hi <= end - 600 + 60, (lo - end, hi - end)
    else:
        assert lo <= start + 3600, (lo, start)  # the whole 26 h: less than the 7 days
        assert seconds < LIVE_WINDOWS[window][1]
    # ?window= opens a window directly (a shareable link).
    p.driver.get(f"{url}?run={run_id}&window={window}")
    p.wait_for_contains_text("#range-label", label[0].upper() + label[1:], timeout=WAIT)


def test_runs_filtered_by_host_tag_and_build(browser: tuple[Page, str]) -> None:
    p, url = browser
    p.driver.get(url)
    p.wait_for_element_by_css_selector("#runs-list .run-item", timeout=WAIT)
    _wait(p, "return document.querySelectorAll('#runs-list .run-item').length === 3")
    assert p.find_element("#runs-filter").is_displayed()
    p.select_dcc_dropdown("#runs-filter-tag", 0)  # "nightly" (sorted: nightly, production)
    _wait(p, "return document.querySelectorAll('#runs-list .run-item').length === 2")
    names = sorted(e.text for e in p.find_elements("#runs-list .run-name"))
    assert names == ["other-1", "other-2"]
    p.select_dcc_dropdown("#runs-filter-build", 1)  # "2.4.1" (sorted: 2.3.0, 2.4.1)
    _wait(p, "return document.querySelectorAll('#runs-list .run-item').length === 1")
    assert [e.text for e in p.find_elements("#runs-list .run-name")] == ["other-2"]
