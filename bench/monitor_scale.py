"""Monitor at scale: how fast a 24-hour, 1-second-resolution run opens, and how much reaches the browser.

Builds (once, cached in ``bench/out/monitor_24h.sqlite3``) a synthetic 24-hour run: three latency metrics at a
modest 3 samples/s each, counters, gauges, an outage with connection events, errors, and three scraped server
series every second. Then measures, in-process, the monitor's own code paths:

- ``select``: what selecting a run reads (``monitor.data.overview``);
- ``timeline``: the first-charts path, read + downsample + build the figure + serialise it to JSON, for the
  whole day, and again after zooming to one hour and to five minutes (re-resolution);
- ``range``: the spectrum and the table of the whole day (merged histograms, per-minute roll-ups);
- the same timeline *without* downsampling (every per-second row of every series), as the baseline;

and, unless ``--no-browser``, the first paint in headless Chromium (navigation start to the first drawn
timeline frame), cold (fresh browser profile) and warm (HTTP and V8 code caches filled), median of
``--repeat``, for the monitor as shipped (plotly.js's basic partial bundle), the same monitor with Dash's full
plotly.js (the code before), and a blank Dash page with one graph (the floor), all in the same run.

Usage::

    python bench/monitor_scale.py [--rebuild] [--no-browser] [--repeat 5]
    python bench/monitor_scale.py --paint-only [--before REV]     # first paint of the 24-hour run only
    python bench/monitor_scale.py --probe-only [--before REV]     # the probe week's 7-day Live view
    python bench/monitor_scale.py --profile [--probe-only]        # where warm page loads go

Results are printed and written to ``bench/out/monitor_scale.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
# One OpenBLAS thread: with a thread per core, every np.dot of the store's histogram summaries fights the
# other processes on a shared machine (50 ms a summary instead of 2, measured), which is not what this
# bench measures. Set before numpy is imported.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import plotly.graph_objects as go  # noqa: E402
import plotly.io as pio  # noqa: E402

from monitor import data, figures  # noqa: E402
from runstore.store import RunStore  # noqa: E402
from tests.synthetic_runs import write_synthetic_run  # noqa: E402

OUT = REPO / "bench" / "out"
STORE = OUT / "monitor_24h.sqlite3"
DAY = 86_400
START = 1_700_000_000


def build(path: Path) -> float:
    """Write the 24-hour run (about 3 minutes); returns the seconds it took."""
    path.unlink(missing_ok=True)
    started = time.perf_counter()
    run = write_synthetic_run(
        path,
        name="soak-24h",
        start=START,
        seconds=DAY,
        rate=3,
        users=50,
        error_every=97,
        outage=(40_000, 40_120),
        chunk_seconds=3600,
    )
    with RunStore.open(path) as store:
        for offset in range(0, DAY):
            store.write_server_metrics(
                run.run_id,
                START + offset + 0.2,
                {
                    'wsgauge_frames_in_total{type="chat_message"}': 3.0 * offset,
                    "wsgauge_connections_open": 0.0 if 40_000 <= offset < 40_120 else 50.0,
                    "wsgauge_event_loop_lag_max_seconds": 0.001 + (offset % 600 == 0) * 0.05,
                },
            )
        store.finish_run(run.run_id, "completed", ended_at=float(START + DAY))
    return time.perf_counter() - started


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """Median wall time over ``repeat`` calls (the first call included: caches are the OS's only)."""
    times, result = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), result


def first_charts(
    path: Path, run_id: int, view: data.RunOverview, rng: tuple[float, float] | None = None
) -> dict[str, Any]:
    """The draw-timeline path of the monitor after a run is selected (``view``: what selecting it read):
    read, downsample, build the figure, serialise it to JSON."""
    with data.open_store(path) as store:
        store.get_run(run_id)
        span = view.span
        assert span is not None
        if rng:
            margin = (rng[1] - rng[0]) * 0.25
            window = data.plan_window(max(rng[0] - margin, span[0]), min(rng[1] + margin, span[1] + 1))
        else:
            window = data.plan_window(span[0], span[1] + 1)
        names = list(view.server_names)
        series = data.read_timeline(
            store,
            run_id,
            window,
            span=span,
            metrics=[m for m in view.metrics if m != "send_lag"],
            percentiles=["p50", "p99", "max"],
            server=[f for f in view.server_families if "frames_in" in f][:1],  # the page's default family
            server_names=names,
        )
    rows = figures.timeline_rows(server=True, send_lag=False)
    fig = figures.make_timeline(series, rows=rows, bucket=window.bucket)
    payload = pio.to_json(fig, validate=False)
    points = [len(t.x) for t in fig.data]
    return {"bucket": window.bucket, "bytes": len(payload), "traces": len(points), "points": points}


def range_panel(path: Path, run_id: int, view: data.RunOverview) -> dict[str, Any]:
    """The spectrum-and-table path for the whole run."""
    with data.open_store(path) as store:
        stats = data.range_stats(store, run_id, list(view.metrics), None, None, view.span)
    fig = figures.make_spectrum(stats.spectrum)
    return {"bytes": len(pio.to_json(fig, validate=False)), "rows": len(stats.table)}


def undownsampled(path: Path, run_id: int) -> dict[str, Any]:
    """Baseline: every per-second row of every series, straight into the same kind of figure."""
    with RunStore.open(path, readonly=True) as store:
        latency = store.latency(run_id)
        counters = store.counters(run_id)
        gauges = store.gauges(run_id)
        server = store.server_metrics(run_id)
    fig = go.Figure()
    for metric, group in latency.groupby("metric"):
        x = figures.to_ms_list(group["t"].to_numpy(dtype=np.float64))
        for column in ("p50_us", "p99_us", "max_us"):
            fig.add_trace(go.Scatter(x=x, y=(group[column] / 1000).tolist(), name=f"{metric} {column}"))
    for frame in (counters, gauges.rename(columns={"mean": "value"}), server):
        for name, group in frame.groupby("name"):
            x = figures.to_ms_list(group["t"].to_numpy(dtype=np.float64))
            fig.add_trace(go.Scatter(x=x, y=group["value"].astype(float).tolist(), name=str(name)))
    payload = pio.to_json(fig, validate=False)
    points = [len(t.x) for t in fig.data]
    return {"bytes": len(payload), "traces": len(points), "points": points}


PAINTED = "#timeline .js-plotly-plot"
VARIANTS: dict[str, dict[str, Any] | None] = {
    "blank Dash page": None,
    "before (checkout)": {"checkout": True},
    "after, no run cache": {"run_cache": 0},
    "after, no preload": {"preload_plotly": False},
    "after (shipped)": {},
}
"""What the browser part compares, each in the same run: a Dash page with one graph and nothing to read
(the floor: Dash's own boot and a first Plotly frame, with the basic bundle); the monitor of the code before
(``--before``, default the merge base with ``main``: a ``git archive`` of it served by its own
``python -m monitor``); this code with its run cache off (what the first open of a run costs, each load);
this code without the preload of plotly.js; and this code as shipped (the cache filled by the variant's
first load)."""
CHECKOUTS = OUT / "checkouts"


def blank_app() -> Any:
    """A Dash page with one graph drawing one point: no store, no callback (the baseline's floor)."""
    import dash
    from dash import dcc, html

    from monitor import plotly_bundle
    from monitor.app import _ASSETS

    app = dash.Dash(__name__, assets_folder=str(_ASSETS), compress=False)
    app.layout = html.Div(
        [dcc.Graph(id="timeline", figure=go.Figure(go.Scatter(x=[0, 1], y=[0, 1])).to_plotly_json())]
    )
    plotly_bundle.install(app.server, "/")
    return app


class CheckoutServer:
    """``python -m monitor`` of another commit (a ``git archive`` of it in ``bench/out/checkouts/``) on a free
    loopback port: the code before, served as it shipped, in the same run as this code."""

    def __init__(self, rev: str, store: Path) -> None:
        import subprocess

        sha = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", rev], check=True, capture_output=True, text=True
        ).stdout.strip()
        self.sha = sha
        root = CHECKOUTS / sha[:12]
        if not (root / "monitor").is_dir():
            root.mkdir(parents=True, exist_ok=True)
            archive = subprocess.run(
                ["git", "-C", str(REPO), "archive", sha], check=True, capture_output=True
            ).stdout
            subprocess.run(["tar", "-x", "-C", str(root)], input=archive, check=True)
        env = {**os.environ, "PYTHONPATH": str(root), "OPENBLAS_NUM_THREADS": "1"}
        self._process = subprocess.Popen(
            [sys.executable, "-m", "monitor", "--results", str(store), "--port", "0"],
            cwd=root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self._process.stdout is not None
        line = self._process.stdout.readline()  # "wsgauge-monitor: serving STORE at http://127.0.0.1:PORT/"
        if " at http://127.0.0.1:" not in line:
            self._process.kill()
            raise RuntimeError(f"the checkout's monitor did not start: {line!r}")
        self.server_port = int(line.rsplit(":", 1)[1].strip().rstrip("/"))

    def shutdown(self) -> None:
        self._process.terminate()
        self._process.wait(timeout=10)


def _serve(name: str, options: dict[str, Any] | None, path: Path, before: str) -> Any:
    from bench._browser import LoopbackServer, serve_monitor

    if options is None:
        return LoopbackServer(blank_app().server)
    if options.get("checkout"):
        return CheckoutServer(before, path)
    return serve_monitor(path, **options)


_BREAKDOWN_JS = """
const updates = performance.getEntriesByType('resource')
    .filter(e => e.name.includes('_dash-update-component'));
const first = updates.length ? Math.min(...updates.map(e => e.startTime)) : null;
const figure = updates.sort((a, b) => b.decodedBodySize - a.decodedBodySize)[0];
const draws = (window.__wsgaugeDraws || []).filter(d => d.id === 'timeline' && d.end !== null);
const draw = draws.length ? draws[draws.length - 1] : null;
return {
    first_callback_ms: first,
    figure_request_ms: figure ? [figure.startTime, figure.responseEnd] : null,
    figure_bytes: figure ? figure.decodedBodySize : null,
    draw_ms: draw ? [draw.start, draw.end] : null,
    plotly_ready_ms: window.__wsgaugePlotlyReady || null,
};
"""


def _median_breakdown(loads: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over loads of :func:`_breakdown`'s times (ms from the navigation start, or durations)."""

    def med(f: Callable[[dict[str, Any]], float]) -> int:
        return round(statistics.median(f(p) for p in loads))

    return {
        "first_callback_sent": med(lambda p: p["first_callback_ms"]),
        "figure_request_sent": med(lambda p: p["figure_request_ms"][0]),
        "figure_request": med(lambda p: p["figure_request_ms"][1] - p["figure_request_ms"][0]),
        "plotly_draw": med(lambda p: p["draw_ms"][1] - p["draw_ms"][0]),
        "plotly_draw_started": med(lambda p: p["draw_ms"][0]),
        "plotly_ready": med(lambda p: p["plotly_ready_ms"] or 0),
        "figure_bytes": loads[0]["figure_bytes"],
    }


def _breakdown(driver: Any) -> dict[str, Any]:
    """Of the load just measured: when the first callback left, when the request that brought the timeline's
    figure (the largest callback answer) left and arrived, and Plotly's last draw of the timeline."""
    return driver.execute_script(_BREAKDOWN_JS)


def browser_paint(
    path: Path,
    url_query: str,
    *,
    repeat: int = 5,
    variants: dict[str, dict[str, Any] | None] | None = None,
    before: str = "main",
) -> dict[str, dict[str, Any]]:
    """First paint in headless Chromium, cold and warm, median of ``repeat``, per variant.

    Cold: a new Chromium with a fresh profile per load (empty HTTP cache, no V8 code cache): a user's first
    visit. Warm: one Chromium, two loads to fill the HTTP and code caches (V8 writes a script's code cache on
    its second load and uses it from the third, https://v8.dev/blog/code-caching-for-devs), then ``repeat``
    measured loads: a user reopening the monitor. Paint is measured in the page (``performance.now()`` at
    the first animation frame in which the timeline is a drawn Plotly graph). Variants are interleaved
    load by load, so a change in the machine's load hits all of them alike. Each load also records when its
    first callback left, the request that brought the figure, and Plotly's draw (:func:`_breakdown`).
    """
    from bench._browser import first_paint, headless_chromium, install_paint_probe, transferred

    variants = VARIANTS if variants is None else variants
    servers = {name: _serve(name, options, path, before) for name, options in variants.items()}
    urls = {name: f"http://127.0.0.1:{s.server_port}/{url_query}" for name, s in servers.items()}
    cold: dict[str, list[float]] = {name: [] for name in variants}
    warm: dict[str, list[float]] = {name: [] for name in variants}
    parts: dict[str, list[dict[str, Any]]] = {name: [] for name in variants}
    cold_parts: dict[str, list[dict[str, Any]]] = {name: [] for name in variants}
    bytes_: dict[str, dict[str, Any]] = {}
    try:
        for _ in range(repeat):
            for name, url in urls.items():
                driver = headless_chromium(1600, 1800)
                try:
                    install_paint_probe(driver, PAINTED)
                    cold[name].append(first_paint(driver, url))
                    cold_parts[name].append(_breakdown(driver))
                    bytes_.setdefault(name, transferred(driver))
                finally:
                    driver.quit()
        drivers = {name: headless_chromium(1600, 1800) for name in variants}
        try:
            for name, driver in drivers.items():
                install_paint_probe(driver, PAINTED)
                for _ in range(2):
                    first_paint(driver, urls[name])
            for _ in range(repeat):
                for name, driver in drivers.items():
                    warm[name].append(first_paint(driver, urls[name]))
                    parts[name].append(_breakdown(driver))
        finally:
            for driver in drivers.values():
                driver.quit()
    finally:
        for server in servers.values():
            server.shutdown()
    out: dict[str, dict[str, Any]] = {}
    for name in variants:
        row: dict[str, Any] = {
            "cold_median_s": round(statistics.median(cold[name]), 3),
            "warm_median_s": round(statistics.median(warm[name]), 3),
            "cold_s": [round(v, 3) for v in cold[name]],
            "warm_s": [round(v, 3) for v in warm[name]],
            **bytes_.get(name, {}),
        }
        for label, loads in (("warm", parts[name]), ("cold", cold_parts[name])):
            done = [p for p in loads if p.get("figure_request_ms") and p.get("draw_ms")]
            if done and variants[name] is not None:
                row[f"{label}_breakdown_ms"] = _median_breakdown(done)
        if isinstance(servers[name], CheckoutServer):
            row["commit"] = servers[name].sha
        out[name] = row
    return out


def select_callback(path: Path, url_query: str, repeat: int) -> dict[str, float]:
    """Server time of the callback that selects a run and draws its timeline (overview, read, figure and
    Dash's JSON of the answer), through Flask's test client: median of ``repeat``, with the run cache off
    and with it filled (the first call fills it and is not counted)."""
    from monitor.app import create_app

    out: dict[str, float] = {}
    for label, entries in (("no_cache_s", 0), ("cached_s", 24)):
        client = create_app(path, run_cache=entries).server.test_client()
        deps = client.get("/_dash-dependencies").get_json()
        select = next(d for d in deps if d["output"].startswith("..run-state.data"))
        outputs = [
            {"id": o.split(".")[0], "property": o.split(".")[1].split("@")[0]}
            for o in select["output"].strip(".").split("...")
        ]
        values = {"url.search": url_query, "percentiles.value": ["p50", "p99"], "reset-range.n_clicks": 0}
        body = {
            "output": select["output"],
            "outputs": outputs,
            "inputs": [{**i, "value": values.get(f"{i['id']}.{i['property']}")} for i in select["inputs"]],
            "state": [{**i, "value": values.get(f"{i['id']}.{i['property']}")} for i in select["state"]],
            "changedPropIds": ["url.search"],
        }

        def call(client: Any = client, body: dict[str, Any] = body) -> None:
            reply = client.post("/_dash-update-component", json=body)
            assert reply.status_code == 200, reply.status_code

        call()
        out[label] = round(timed(call, repeat)[0], 4)
    return out


def print_paint(title: str, paint: dict[str, dict[str, Any]]) -> None:
    print(f"\n{title}: headless Chromium, navigation start to the first drawn timeline frame")
    print(
        f"{'variant':28s} {'cold median':>12s} {'warm median':>12s} {'script decoded B':>17s}"
        "  cold / warm loads"
    )
    for name, row in paint.items():
        print(
            f"{name:28s} {row['cold_median_s']:11.3f}s {row['warm_median_s']:11.3f}s "
            f"{row.get('script_decoded_bytes', 0):17,d}  {row['cold_s']} / {row['warm_s']}"
        )
    print("medians (ms from navigation start): first callback sent; figure request sent, its duration;")
    print("Plotly's draw of the timeline; bytes of the figure's answer; plotly.js evaluated; draw started")
    for label in ("cold", "warm"):
        for name, row in paint.items():
            if f"{label}_breakdown_ms" in row:
                b = row[f"{label}_breakdown_ms"]
                print(
                    f"  {label} {name:26s} {b['first_callback_sent']:6d} {b['figure_request_sent']:6d} "
                    f"{b['figure_request']:6d} {b['plotly_draw']:6d} {b['figure_bytes'] or 0:9,d}"
                    f" {b['plotly_ready']:6d} {b['plotly_draw_started']:6d}"
                    + (f"  ({row['commit'][:10]})" if "commit" in row else "")
                )


def profile_load(path: Path, url_query: str, *, loads: int = 3, **options: Any) -> list[dict[str, Any]]:
    """Where a warm page load's time goes: one Chromium, two loads to fill its caches, then ``loads`` loads,
    each profiled from both sides: the browser's requests (Resource Timing, ms from the navigation start),
    the server's time and bytes per request (:class:`bench._browser.RequestLog`), Plotly's draw calls."""
    from bench._browser import (
        LoopbackServer,
        RequestLog,
        first_paint,
        headless_chromium,
        install_paint_probe,
        page_profile,
    )
    from monitor.app import create_app

    log = RequestLog(create_app(path, **options).server)
    server = LoopbackServer(log)
    url = f"http://127.0.0.1:{server.server_port}/{url_query}"
    driver = headless_chromium(1600, 1800)
    out = []
    try:
        install_paint_probe(driver, PAINTED)
        for _ in range(2):
            first_paint(driver, url)
        time.sleep(1.0)
        log.take()
        for _ in range(loads):
            first_paint(driver, url)
            time.sleep(1.5)  # the callbacks after the paint (spectrum, table, badges) finish too
            out.append({"browser": page_profile(driver), "server": log.take()})
    finally:
        driver.quit()
        server.shutdown()
    return out


def print_profile(profiles: list[dict[str, Any]]) -> None:
    """One table per load: the page's requests in order, with the server's time and bytes of each."""
    for number, load in enumerate(profiles, 1):
        browser, server = load["browser"], sorted(load["server"], key=lambda r: r["started"])
        updates = [r for r in server if r["path"].endswith("_dash-update-component")]
        html = ", ".join(f"{v:.0f}" for v in browser["html"] or [])
        print(
            f"\nload {number}: first paint {browser['paint']:.0f} ms; page (start, first byte, end, DOM"
            f" loaded) {html}; plotly.js evaluated by {browser.get('plotly_ready') or 0:.0f} ms"
        )
        print(f"{'request':58s} {'start':>7s} {'1st B':>7s} {'end':>7s} {'server ms':>9s} {'bytes':>9s}")
        index = 0
        for entry in sorted(browser["resources"], key=lambda e: e["start"]):
            name = entry["name"][-58:]
            server_ms, size = "", entry["bytes"]
            if "_dash-update-component" in entry["name"] and index < len(updates):
                row = updates[index]
                index += 1
                name = f"cb {row['output'][:50]} [{row['status']}]"
                server_ms, size = f"{row['server_s'] * 1000:.0f}", row["bytes"]
            print(
                f"{name:58s} {entry['start']:7.0f} {entry['first_byte']:7.0f} {entry['end']:7.0f}"
                f" {server_ms:>9s} {size:9,d}"
            )
        for draw in browser["draws"]:
            end = draw["end"] if draw["end"] is not None else float("nan")
            print(f"Plotly.{draw['name']:8s} #{draw['id']:20s} {draw['start']:7.0f} -> {end:7.0f}")


PROBE_STORE = OUT / "monitor_probe_7d.sqlite3"
WEEK = 7 * DAY
PROBE_PERIOD = 60
"""Seconds between the simulated probe's rounds. A real probe's default is 5 s; a week-wide window reads only
roll-ups (latency per minute, counters and gauges per minute or hour), one row a minute either way, so
the 7-day paint is the same, and the week builds in minutes instead of hours (the store summarises each
second's histograms as it writes them)."""


def build_probe(path: Path) -> float:
    """Write a simulated week of a probe (a round every :data:`PROBE_PERIOD` s, 3 users, a 20-minute outage
    with its alert firing and resolving) through the real store code; returns the seconds it took."""
    from tests.monitor.synthetic_probe import write_synthetic_probe

    path.unlink(missing_ok=True)
    started = time.perf_counter()
    write_synthetic_probe(
        path,
        start=START,
        seconds=WEEK,
        period=PROBE_PERIOD,
        outage=(5 * DAY, 5 * DAY + 1200),
        chunk_seconds=6 * 3600,
    )
    return time.perf_counter() - started


def probe_week(repeat: int, browser: bool, rebuild: bool, before: str = "main") -> dict[str, Any]:
    """The Live view of a week-long probe with its 7-day window: server side in-process, then first paint."""
    from monitor import live

    result: dict[str, Any] = {}
    if rebuild or not PROBE_STORE.exists():
        print(f"building the simulated probe week in {PROBE_STORE} ...", flush=True)
        result["build_s"] = round(build_probe(PROBE_STORE), 1)
        print(f"  built in {result['build_s']} s")
    with RunStore.open(PROBE_STORE, readonly=True) as store:
        run_id = store.latest_run_id()
        assert run_id is not None
        run = store.get_run(run_id)
        assert live.is_probe(run), "the probe store's run is not of kind probe"
    result["store_bytes"] = PROBE_STORE.stat().st_size

    def server_side() -> dict[str, Any]:
        with data.open_store(PROBE_STORE) as store:
            view = data.overview(store, run_id)
            assert view.span is not None
            lo, hi = live.live_range(view.span, "7d", live=False, now=time.time())
            window = data.plan_window(lo, hi)
            series = data.read_timeline(
                store, run_id, window, span=view.span, metrics=list(view.metrics), percentiles=["p50", "p99"]
            )
            status = live.read_status(store, view.run, float(view.span[1]))
        fig = figures.make_timeline(
            series, rows=figures.timeline_rows(server=False, send_lag=False), bucket=window.bucket
        )
        shapes, labels = figures.alert_shading(status.alerts, float(window.end))
        fig.update_layout(
            shapes=[*fig.layout.shapes, *shapes], annotations=[*fig.layout.annotations, *labels]
        )
        payload = pio.to_json(fig, validate=False)
        return {"bucket": window.bucket, "bytes": len(payload), "points": [len(t.x) for t in fig.data]}

    seconds, info = timed(server_side, repeat)
    result["select_callback"] = select_callback(PROBE_STORE, f"?run={run_id}&window=7d", repeat)
    print(f"select-and-draw callback, in-process (median of {repeat}): {result['select_callback']}")
    result["server_side"] = {
        "seconds": round(seconds, 3),
        "bytes": info["bytes"],
        "bucket_s": info["bucket"],
        "max_points_per_trace": max(info["points"]),
    }
    print(
        f"\nprobe week, 7-day window, server side (overview, read, status, figure, JSON): {seconds:.3f} s, "
        f"{info['bytes']:,} B, {info['bucket']} s buckets, at most {max(info['points'])} points a trace"
    )
    if browser:
        paint = browser_paint(PROBE_STORE, f"?run={run_id}&window=7d", repeat=repeat, before=before)
        result["browser_paint"] = paint
        print_paint("probe week, Live view, 7-day window", paint)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rebuild", action="store_true", help="rebuild the cached 24-hour run")
    parser.add_argument("--no-browser", action="store_true", help="skip the headless Chromium page load")
    parser.add_argument("--repeat", type=int, default=5, help="timings are the median of this many runs")
    parser.add_argument(
        "--probe", action="store_true", help="also the Live view of a simulated probe week (7-day window)"
    )
    parser.add_argument("--probe-only", action="store_true", help="only the probe week")
    parser.add_argument(
        "--paint-only", action="store_true", help="of the 24-hour run, only the first paint in Chromium"
    )
    parser.add_argument(
        "--before",
        default=None,
        help="the commit whose monitor is the 'before' variant (default: the merge base of HEAD and main)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="where warm page loads go (requests, server time, bytes, Plotly draws): the 24-hour run, and "
        "the probe week with --probe-only",
    )
    args = parser.parse_args()
    if args.before is None:
        import subprocess

        args.before = subprocess.run(
            ["git", "-C", str(REPO), "merge-base", "HEAD", "main"], check=True, capture_output=True, text=True
        ).stdout.strip()
    OUT.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "load_average": os.getloadavg()}}
    if args.profile:
        store, query = (PROBE_STORE, "?run=1&window=7d") if args.probe_only else (STORE, "?run=1")
        profiles = profile_load(store, query, loads=args.repeat)
        print_profile(profiles)
        (OUT / "monitor_profile.json").write_text(json.dumps(profiles, indent=2, default=float))
        return 0
    if args.probe or args.probe_only:
        result["probe_week"] = probe_week(args.repeat, not args.no_browser, args.rebuild, args.before)
        if args.probe_only:
            (OUT / "monitor_scale_probe.json").write_text(json.dumps(result, indent=2, default=float))
            print(f"\nwritten to {OUT / 'monitor_scale_probe.json'}")
            return 0
    if args.rebuild or not STORE.exists():
        print(f"building the 24-hour run in {STORE} ...", flush=True)
        result["build_s"] = round(build(STORE), 1)
        print(f"  built in {result['build_s']} s")
    with RunStore.open(STORE, readonly=True) as store:
        run_id = store.latest_run_id()
        assert run_id is not None
        counts = {
            "latency_rows_1s": len(store.latency(run_id)),
            "latency_rows_60s": len(store.latency(run_id, resolution=60)),
        }
    result["store"] = {"bytes": STORE.stat().st_size, **counts}
    repeat = args.repeat
    if args.paint_only:
        result["select_callback"] = select_callback(STORE, f"?run={run_id}", repeat)
        print(f"select-and-draw callback, in-process (median of {repeat}): {result['select_callback']}")
        paint = browser_paint(STORE, f"?run={run_id}", repeat=repeat, before=args.before)
        result["browser_paint"] = paint
        print_paint("24-hour run", paint)
        (OUT / "monitor_scale_paint.json").write_text(json.dumps(result, indent=2, default=float))
        print(f"\nwritten to {OUT / 'monitor_scale_paint.json'}")
        return 0

    def select() -> data.RunOverview:
        with data.open_store(STORE) as store:
            return data.overview(store, run_id)

    t_select, view = timed(select, repeat)
    t_day, day = timed(lambda: first_charts(STORE, run_id, view), repeat)
    hour = (START + 36_000.0, START + 39_600.0)
    t_hour, zoom_hour = timed(lambda: first_charts(STORE, run_id, view, hour), repeat)
    five = (START + 40_000.0, START + 40_300.0)
    t_five, zoom_five = timed(lambda: first_charts(STORE, run_id, view, five), repeat)
    t_range, panel = timed(lambda: range_panel(STORE, run_id, view), repeat)
    t_base, base = timed(lambda: undownsampled(STORE, run_id), max(1, repeat // 2))

    def describe(name: str, seconds: float, info: dict[str, Any]) -> dict[str, Any]:
        points = info.get("points", [])
        row = {
            "seconds": round(seconds, 3),
            "bytes": info["bytes"],
            "traces": info.get("traces"),
            "max_points_per_trace": max(points) if points else None,
            "total_points": sum(points) if points else None,
            "bucket_s": info.get("bucket"),
        }
        result[name] = row
        return row

    rows = [
        ("select run (overview)", t_select, {"bytes": 0}),
        ("timeline, whole day", t_day, day),
        ("timeline, zoom 1 h", t_hour, zoom_hour),
        ("timeline, zoom 5 min", t_five, zoom_five),
        ("spectrum + table, whole day", t_range, panel),
        ("baseline: timeline not downsampled", t_base, base),
    ]
    print(
        f"\n24-hour run: {counts['latency_rows_1s']:,} per-second latency rows, "
        f"store {STORE.stat().st_size:,} B"
    )
    print(
        f"{'path':38s} {'median s':>9s} {'JSON bytes':>12s} {'traces':>7s} {'max pts/trace':>14s}"
        f" {'bucket':>7s}"
    )
    for name, seconds, info in rows:
        row = describe(name, seconds, info)
        print(
            f"{name:38s} {row['seconds']:9.3f} {row['bytes']:12,d} {row['traces'] or '':>7} "
            f"{row['max_points_per_trace'] or '':>14} {row['bucket_s'] or '':>7}"
        )
    result["first_charts_server_s"] = round(t_select + t_day, 3)
    print(
        f"\nfirst charts, server side: select + timeline = {t_select + t_day:.3f} s "
        f"(then spectrum + table: {t_range:.3f} s)"
    )
    print(
        f"vs. not downsampled: {t_base / t_day:.1f}x faster, "
        f"{base['bytes'] / day['bytes']:.1f}x fewer bytes, "
        f"{max(base['points']) / max(day['points']):.0f}x fewer points in the largest trace"
    )
    result["ratios_vs_undownsampled"] = {
        "time": round(t_base / t_day, 1),
        "bytes": round(base["bytes"] / day["bytes"], 1),
        "max_points": round(max(base["points"]) / max(day["points"]), 1),
    }
    if not args.no_browser:
        paint = browser_paint(STORE, f"?run={run_id}", repeat=repeat, before=args.before)
        result["browser_paint"] = paint
        print_paint("24-hour run", paint)
    (OUT / "monitor_scale.json").write_text(json.dumps(result, indent=2, default=float))
    print(f"\nwritten to {OUT / 'monitor_scale.json'}")
    assert all(math.isfinite(v) for v in (t_day, t_range))
    return 0


if __name__ == "__main__":
    sys.exit(main())
