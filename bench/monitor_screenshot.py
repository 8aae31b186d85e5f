"""Screenshot of the monitor's main page for the docs (``docs/monitor.png``).

Writes a demo store (``bench/out/monitor_demo.sqlite3``: a 30-minute release candidate with an outage, errors
and server metrics, and the baseline it is compared with), serves the monitor on loopback, opens the
candidate in headless Chromium, selects the baseline in "Compare with" and saves a full-page screenshot.

Usage::

    python bench/monitor_screenshot.py [--out docs/monitor.png] [--store PATH] [--width 1366]

The default width, 1366 px, is the narrowest common laptop screen: the page must fit it without
horizontal scrolling.

``--store PATH`` photographs an existing store instead (its newest run, nothing compared).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from runstore.store import RunStore  # noqa: E402
from tests.synthetic_runs import write_synthetic_run  # noqa: E402

OUT = REPO / "bench" / "out"


def demo_store(path: Path) -> int:
    """Write the demo runs; returns the candidate's run id."""
    path.unlink(missing_ok=True)
    seconds = 1800
    baseline = write_synthetic_run(
        path,
        name="baseline 2.3.1",
        start=1_764_000_000,
        seconds=seconds,
        rate=60,
        users=200,
        error_every=240,
        seed=2,
    )
    candidate = write_synthetic_run(
        path,
        name="release candidate 2.4.0",
        start=1_764_090_000,
        seconds=seconds,
        rate=60,
        users=200,
        error_every=45,
        outage=(1000, 1045),
        latency_factor=1.18,
        seed=3,
    )
    with RunStore.open(path) as store:
        for run, slow in ((baseline, 1.0), (candidate, 1.18)):
            chat = 0.0
            for offset in range(seconds):
                down = run is candidate and 1000 <= offset < 1045
                chat += 0.0 if down else 60.0
                store.write_server_metrics(
                    run.run_id,
                    run.start + offset + 0.2,
                    {
                        'wsgauge_frames_in_total{type="chat_message"}': chat,
                        'wsgauge_frames_in_total{type="ping"}': 20.0 * offset,
                        "wsgauge_event_loop_lag_max_seconds": 0.0008 * slow + (offset % 300 == 7) * 0.01,
                        "wsgauge_connections_open": 0.0 if down else 200.0,
                    },
                )
    return candidate.run_id


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--out", default=str(REPO / "docs" / "monitor.png"))
    parser.add_argument("--store", default=None, help="photograph this store instead of the demo")
    parser.add_argument("--width", type=int, default=1366, help="window width in px (default: %(default)s)")
    args = parser.parse_args()

    from bench._browser import headless_chromium, serve_monitor

    OUT.mkdir(parents=True, exist_ok=True)
    if args.store:
        path = Path(args.store)
        with RunStore.open(path, readonly=True) as store:
            run_id = store.latest_run_id()
    else:
        path = OUT / "monitor_demo.sqlite3"
        run_id = demo_store(path)
    server = serve_monitor(path)
    driver = headless_chromium(args.width, 1200, "--hide-scrollbars")
    try:
        driver.get(f"http://127.0.0.1:{server.server_port}/?run={run_id}")
        ready = (
            "const gd = document.querySelector('#timeline .js-plotly-plot');"
            "return gd && gd.data && gd.data.length;"
        )
        deadline = time.monotonic() + 30
        while not driver.execute_script(ready) and time.monotonic() < deadline:
            time.sleep(0.1)
        if not args.store:
            driver.find_element("css selector", "#compare-run").click()
            time.sleep(0.3)
            driver.find_element("css selector", ".dash-dropdown-option").click()
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not driver.find_elements("css selector", "tr.row-delta"):
                time.sleep(0.1)
        time.sleep(1.5)
        for _ in range(3):  # the page grows as the table fills in; headless windows cannot outgrow the screen
            height = driver.execute_script(
                "const main = document.querySelector('.main');"
                "return Math.ceil(main.getBoundingClientRect().bottom + window.scrollY);"
            )
            driver.execute_cdp_cmd(
                "Emulation.setDeviceMetricsOverride",
                {"width": args.width, "height": height + 24, "deviceScaleFactor": 1, "mobile": False},
            )
            time.sleep(1.0)
        if not args.store:  # show the crosshair: hover the latency row a little after the outage
            from selenium.webdriver.common.action_chains import ActionChains

            drag = driver.find_element("css selector", "#timeline .nsewdrag")
            ActionChains(driver).move_to_element(drag).move_by_offset(
                int(drag.size["width"] * 0.12), 0
            ).perform()
            time.sleep(0.8)
        driver.save_screenshot(args.out)
        print(f"saved {args.out}")
    finally:
        driver.quit()
        server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
