"""A report opened in headless Chromium with the network off: every chart renders (plotly.js is inside)."""

from __future__ import annotations

from pathlib import Path

import pytest

from reports.figures import FIGURE_TITLES
from tests.chromium import MISSING, chrome
from tests.health_runs import write_health_run
from tests.reports.conftest import Runs

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser():
    if MISSING:
        pytest.skip(MISSING)
    driver = chrome(
        1300,
        900,
        "--host-resolver-rules=MAP * ~NOTFOUND",  # no name resolves: nothing can be fetched
        "--proxy-server=http://127.0.0.1:9",  # and anything by address goes to a closed port
    )
    # Belt and braces: the DevTools network emulation says offline too.
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd(
        "Network.emulateNetworkConditions",
        {"offline": True, "latency": 0, "downloadThroughput": 0, "uploadThroughput": 0},
    )
    yield driver
    driver.quit()


_RENDERED = """
return Array.from(document.querySelectorAll('.js-plotly-plot')).map(function (div) {
  return {id: div.id, svg: div.querySelectorAll('svg.main-svg').length,
          traces: (div.data || []).length,
          drawn: div.querySelectorAll('.scatterlayer .trace, .barlayer .trace').length};
});
"""


def _rendered(driver, path: Path) -> dict[str, dict]:
    driver.get(path.resolve().as_uri())
    from selenium.webdriver.support.ui import WebDriverWait

    expected = driver.execute_script("return document.querySelectorAll('.plotly-graph-div').length")
    WebDriverWait(driver, 30).until(
        lambda d: (
            len(d.execute_script(_RENDERED)) == expected
            and all(f["svg"] for f in d.execute_script(_RENDERED))
        )
    )
    assert driver.execute_script("return typeof window.Plotly") == "object"
    return {f["id"]: f for f in driver.execute_script(_RENDERED)}


def test_report_charts_render_offline(browser, runs: Runs) -> None:
    figures = _rendered(browser, runs.report)
    # The synthetic run has server metrics and send lag; only comparisons of several runs have fig-runs; it
    # has no load-generator health gauges (a run from before they existed: test_shape_and_health.py).
    assert set(figures) == set(FIGURE_TITLES) - {"fig-runs", "fig-generator"}
    for figure_id, figure in figures.items():
        assert figure["svg"] >= 1, figure_id
        if figure_id != "fig-server":  # one scrape only: said in words (test_scale.py)
            assert figure["traces"] >= 1 and figure["drawn"] >= 1, figure


def test_comparison_charts_render_offline(browser, runs: Runs, tmp_path: Path) -> None:
    from reports.__main__ import main

    diff = tmp_path / "diff.html"
    code = main(
        [
            "compare",
            str(runs.base.run_id),
            str(runs.shift20.run_id),
            "--results",
            str(runs.store),
            "-o",
            str(diff),
        ]
    )
    assert code == 1
    page = diff.read_text()
    assert page.count('<section class="headline"') == 2  # both runs at a glance, before any chart
    assert page.rindex('<section class="headline"') < page.index("Plotly.newPlot")
    figures = _rendered(browser, diff)
    assert "fig-latency-spectrum" in figures
    # Both runs overlaid: twice the traces of one run's spectrum.
    assert figures["fig-latency-spectrum"]["traces"] == 2 * 4  # chat, connect, delivery, pong
    # Several runs per side: every run's statistic per rule, baseline and candidate markers.
    ids = (f"{runs.base.run_id}-{runs.same.run_id}", f"{runs.shift2.run_id}-{runs.shift20.run_id}")
    assert main(["compare", *ids, "--results", str(runs.store), "-o", str(diff)]) in (0, 1)
    figures = _rendered(browser, diff)
    assert figures["fig-runs"]["traces"] == 2 and figures["fig-runs"]["drawn"] >= 1


_HEADLINE = """
var section = document.querySelector('section.headline');
var first = document.querySelector('.js-plotly-plot');
return {verdict: section.querySelector('.verdict').innerText,
        above: section.getBoundingClientRect().bottom <= first.getBoundingClientRect().top,
        texts: Array.from(document.querySelectorAll('.js-plotly-plot .annotation-text'))
                    .map(e => e.textContent)};
"""


@pytest.mark.parametrize("length", ["1 min", "1 h", "24 h"])
def test_reports_of_a_minute_an_hour_and_a_day_render(browser, scale_reports, length: str) -> None:
    scale = scale_reports[length]
    figures = _rendered(browser, scale.report)
    assert set(figures) == set(FIGURE_TITLES) - {"fig-runs", "fig-send-lag", "fig-generator"}
    for figure_id, figure in figures.items():
        if figure_id != "fig-errors" or length != "1 h":
            assert figure["traces"] >= 1 and figure["drawn"] >= 1, (figure_id, figure)
    page = browser.execute_script(_HEADLINE)
    assert page["verdict"] == "HEALTHY" and page["above"]  # the verdict is read before any chart
    if length == "1 h":
        assert "no errors in 3,600 s" in page["texts"]


def test_the_load_generator_panel_and_banner_render(browser, tmp_path: Path) -> None:
    from reports.build import build_report

    store = tmp_path / "health.sqlite3"
    run = write_health_run(store, gc_seconds={3, 9}, cpu_seconds={20})
    figures = _rendered(browser, build_report(store, run.run_id, tmp_path / "health.html"))
    assert figures["fig-generator"]["traces"] == 3 and figures["fig-generator"]["drawn"] >= 1
    banner = browser.execute_script("return document.querySelector('.generator-bound').innerText")
    assert "latency in 3 of 39 seconds is the load generator's, not the target's: GC 2, CPU 1" in banner
