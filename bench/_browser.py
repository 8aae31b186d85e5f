"""The monitor served on loopback and a headless Chromium to open it: shared by the monitor benches."""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Callable, Iterable
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
    // Plotly's own draw time: wrap Plotly.react / Plotly.newPlot (dcc.Graph's entry points) as soon as
    // plotly.js has defined window.Plotly; each call is recorded with its start and the time its promise
    // settles (Plotly's rendering, automargin redraws included).
    window.__wsgaugeDraws = [];
    function wrap() {
        const P = window.Plotly;
        if (!P || !P.react) { return requestAnimationFrame(wrap); }
        window.__wsgaugePlotlyReady = performance.now();  // the first frame with plotly.js evaluated
        for (const name of ['react', 'newPlot']) {
            const original = P[name];
            P[name] = function () {
                const gd = arguments[0];
                const id = (gd && gd.id) || (gd && gd.parentElement && gd.parentElement.id) || '';
                const row = {name: name, id: id, start: performance.now(), end: null};
                window.__wsgaugeDraws.push(row);
                const result = original.apply(this, arguments);
                Promise.resolve(result).then(() => { row.end = performance.now(); });
                return result;
            };
        }
    }
    wrap();
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


class RequestLog:
    """WSGI middleware recording each request's path, Dash callback outputs, server seconds and body bytes.

    The server side of a page load's profile (:func:`page_profile` is the browser's side): which
    ``_dash-update-component`` calls a load makes, what each costs the server, and how large its answer is.
    """

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app
        self.rows: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        started = time.perf_counter()
        output = ""
        if environ.get("PATH_INFO", "").endswith("_dash-update-component"):
            size = int(environ.get("CONTENT_LENGTH") or 0)
            body = environ["wsgi.input"].read(size)
            environ["wsgi.input"] = _Body(body)
            try:
                output = str(json.loads(body).get("output", ""))
            except ValueError:
                output = "?"
        status: list[str] = []

        def recording_start(code: str, headers: Any, *rest: Any) -> Any:
            status.append(code)
            return start_response(code, headers, *rest)

        chunks = list(self.app(environ, recording_start))  # the whole answer: its full server time
        with self._lock:
            self.rows.append(
                {
                    "path": environ.get("PATH_INFO", ""),
                    "output": output[:80],
                    "status": (status or ["?"])[0].split(" ", 1)[0],
                    "server_s": round(time.perf_counter() - started, 4),
                    "bytes": sum(len(c) for c in chunks),
                    "started": started,
                }
            )
        return chunks

    def take(self) -> list[dict[str, Any]]:
        """The rows recorded since the last call (and forget them)."""
        with self._lock:
            rows, self.rows = self.rows, []
        return rows


class _Body:
    """A request body already read, handed back to the app as ``wsgi.input``."""

    def __init__(self, data: bytes) -> None:
        import io

        self._stream = io.BytesIO(data)

    def read(self, size: int = -1) -> bytes:
        return self._stream.read(size)

    def readline(self, size: int = -1) -> bytes:
        return self._stream.readline(size)


def page_profile(driver: Any) -> dict[str, Any]:
    """The browser's side of the current page load: every request (start, first byte and end, ms from the
    navigation start), Plotly's draw calls (start and end) and the first paint."""
    return driver.execute_script(
        """
        const nav = performance.getEntriesByType('navigation')[0];
        return {
            paint: window.__wsgaugeFirstPaint || null,
            html: nav ? [0, nav.responseStart, nav.responseEnd, nav.domContentLoadedEventEnd] : null,
            resources: performance.getEntriesByType('resource').map(e => ({
                name: e.name.replace(location.origin, ''), start: e.startTime, first_byte: e.responseStart,
                end: e.responseEnd, bytes: e.decodedBodySize, transfer: e.transferSize,
            })),
            draws: window.__wsgaugeDraws || [],
            plotly_ready: window.__wsgaugePlotlyReady || null,
        };
        """
    )
