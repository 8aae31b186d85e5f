"""Locust's web UI with wsgauge: the live monitor is mounted at ``/wsgauge/`` and linked from the UI."""

from __future__ import annotations

import json
import socket
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.chromium import MISSING, page
from tests.loadtest.locust_runs import reap, start_locust, wait_for_log

pytestmark = [pytest.mark.browser, pytest.mark.skipif(MISSING is not None, reason=MISSING or "")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post_form(url: str, fields: dict[str, str]) -> dict[str, object]:
    body = urllib.parse.urlencode(fields).encode()
    with urllib.request.urlopen(urllib.request.Request(url, data=body, method="POST"), timeout=10) as reply:
        return json.loads(reply.read())


def test_reports_tab_links_to_the_mounted_monitor(tmp_path: Path) -> None:
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "locust.log"
    locust = start_locust(
        *("--web-host", "127.0.0.1", "--web-port", str(port), "--results", str(tmp_path / "w.sqlite3")),
        *("--report", "false"),
        log=log,
        headless=False,
    )
    try:
        wait_for_log(log, "wsgauge monitor: /wsgauge/")
        # Start a small, bounded run the way the start form does: Locust shows its tabs once a test runs.
        started = _post_form(f"{base}/swarm", {"user_count": "2", "spawn_rate": "2", "run_time": "20s"})
        assert started.get("success") is True, started
        with page(1280, 900) as browser:
            browser.driver.get(f"{base}/?tab=reports")
            link = browser.wait_for_element_by_css_selector('a[href="./wsgauge/"]', timeout=30)
            # (loadtest._integration is not imported here: it would import Locust, which monkeypatches.)
            assert link.text.startswith("wsgauge live monitor") and link.is_displayed(), link.text
            link.click()
            browser.wait_for_element_by_css_selector("#react-entry-point", timeout=30)
            assert browser.driver.current_url == f"{base}/wsgauge/"
            assert "wsgauge" in browser.driver.title.lower(), browser.driver.title
        _post_form(f"{base}/stop", {})
    finally:
        reap(locust)
    assert "Traceback" not in log.read_text(), log.read_text()[-4000:]
