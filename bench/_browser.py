"""The monitor served on loopback and a headless Chromium to open it: shared by the monitor benches."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path
from typing import Any

PAINT_PROBE = """
// Installed before any page script (CDP Page.addScriptToEvaluateOnNewDocument): records, in ms from the
// navigation start, the first frame in which the element matching SELECTOR is a Plotly graph with data.
(function () {
    const selector = SELECTOR;
    function check() {
        const gd = document.querySelector(selector);
        if (gd && gd._fullData && gd._fullData.length && gd.querySelector('.main-svg')) {
            window.__wsgaugeFirstPaint = performance.now();
            return;
        }
        requestAnimationFrame(check);
    }
    requestAnimationFrame(check);
})();
"""


class LoopbackServer:
    """A WSGI app served by waitress (as ``python -m monitor`` serves it) on a free loopback port."""

    def __init__(self, wsgi_app: Any) -> None:
        import waitress

        self._server = waitress.create_server(wsgi_app, host="127.0.0.1", port=0, threads=4)
        self.server_port: int = int(self._server.effective_port)  # type: ignore[union-attr]
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()

    def shutdown(self) -> None:
        self._server.close()


def serve_monitor(path: Path, **options: Any) -> LoopbackServer:
    """Serve the monitor for the run store at ``path`` (``options``: :func:`monitor.app.create_app`'s)."""
    from monitor.app import create_app

    return LoopbackServer(create_app(path, **options).server)


def headless_chromium(width: int, height: int, *extra: str) -> Any:
    """A headless Chromium (Debian's ``chromium`` when installed) with a ``width`` x ``height`` window.

    Each one starts with a fresh temporary profile: an empty HTTP cache and V8 code cache (a cold load).
    """
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", *extra):
        options.add_argument(argument)
    options.add_argument(f"--window-size={width},{height}")
    chromium = shutil.which("chromium")
    if chromium:
        options.binary_location = chromium
    driver = shutil.which("chromedriver")
    return webdriver.Chrome(service=Service(driver) if driver else None, options=options)


def install_paint_probe(driver: Any, selector: str) -> None:
    """Make every page this driver opens record when ``selector`` is first drawn (see :func:`first_paint`)."""
    import json

    source = PAINT_PROBE.replace("SELECTOR", json.dumps(selector))
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": source})


def first_paint(driver: Any, url: str, timeout: float = 60.0) -> float:
    """Open ``url`` and return the seconds from the navigation start to the first drawn frame of the graph
    that :func:`install_paint_probe` watches (measured in the page, by ``performance.now()``)."""
    driver.get("about:blank")
    driver.get(url)
    started = time.perf_counter()
    while True:
        value = driver.execute_script("return window.__wsgaugeFirstPaint || null;")
        if value is not None:
            return float(value) / 1000.0
        if time.perf_counter() - started > timeout:
            raise RuntimeError(f"{url}: the graph was never drawn")
        time.sleep(0.02)


def transferred(driver: Any) -> dict[str, Any]:
    """Bytes of script the current page fetched (transfer size; 0 for what came from the HTTP cache) and
    decoded, from the Resource Timing entries."""
    entries = driver.execute_script(
        "return performance.getEntriesByType('resource')"
        ".filter(e => e.initiatorType === 'script' || e.name.endsWith('.js'))"
        ".map(e => [e.name, e.transferSize, e.decodedBodySize]);"
    )
    return {
        "script_transfer_bytes": sum(int(e[1]) for e in entries),
        "script_decoded_bytes": sum(int(e[2]) for e in entries),
        "plotly_decoded_bytes": sum(int(e[2]) for e in entries if "/plotly/package_data/" in e[0]),
    }
