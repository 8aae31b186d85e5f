"""Reports of a one-minute, a one-hour and a one-day run: bounded points, headline, empty states in words."""

from __future__ import annotations

import html as html_lib
import json
import re
from pathlib import Path

import pytest

from charts.windows import MAX_POINTS
from reports.build import build_report
from reports.embed import read_report
from reports.headline import headline
from runstore import histogram as hdr
from runstore.names import COUNTER_RECEIVED, COUNTER_SENT
from runstore.store import RunStore
from tests.reports.conftest import ScaleReport
from tests.reports.test_build import values
from tests.scale_runs import SCALE_METRICS, SPIKE_US, write_scaled_run

_NEW_PLOT = re.compile(r'Plotly\.newPlot\(\s*"(?P<id>[^"]+)",\s*')
_WINDOWS = {"1 min": "1 s windows", "1 h": "10 s windows", "24 h": "3 min windows"}


def plots(page: str) -> dict[str, tuple[list[dict], dict]]:
    """Figure id -> (traces, layout), parsed out of every ``Plotly.newPlot("id", traces, layout, ...)``."""
    decoder = json.JSONDecoder()
    found = {}
    for match in _NEW_PLOT.finditer(page):
        traces, end = decoder.raw_decode(page, match.end())
        end = page.index("{", end)
        layout, _ = decoder.raw_decode(page, end)
        found[match["id"]] = (traces, layout)
    return found


@pytest.mark.parametrize("length", ["1 min", "1 h", "24 h"])
def test_every_trace_has_a_bounded_number_of_points(
    scale_reports: dict[str, ScaleReport], length: str
) -> None:
    page = scale_reports[length].report.read_text()
    figures = plots(page)
    for figure_id, (traces, _layout) in figures.items():
        for trace in traces:
            n = len(values(trace.get("x")))
            # a band is one outline: each window twice (there and back), plus a break per gap
            bound = 2 * MAX_POINTS + MAX_POINTS // 2 if trace.get("fill") == "toself" else MAX_POINTS
            assert n <= bound, (figure_id, trace.get("name"), n)
    for figure_id in ("fig-latency-time", "fig-throughput", "fig-queue", "fig-connections", "fig-server"):
        assert _WINDOWS[length] in figures[figure_id][1]["title"]["text"], figure_id
    # the windows are as wide as the run needs: about 300-600 of them for an hour and a day
    latency = figures["fig-latency-time"][0]
    p99 = next(t for t in latency if t["name"].endswith(" p99"))
    expected = {"1 min": 60, "1 h": 360, "24 h": 480}[length]
    assert expected <= len(values(p99["x"])) <= expected + 1  # + a window the run starts inside


@pytest.mark.parametrize("length", ["1 h", "24 h"])
def test_a_one_second_spike_stays_visible_after_windowing(
    scale_reports: dict[str, ScaleReport], length: str
) -> None:
    latency = plots(scale_reports[length].report.read_text())["fig-latency-time"][0]
    peaks = [t for t in latency if t["name"] in {f"{m} max" for m in SCALE_METRICS}]
    assert len(peaks) == len(SCALE_METRICS)
    assert all(
        max(v for v in values(t["y"]) if v == v) == pytest.approx(SPIKE_US / 1000, rel=1e-3) for t in peaks
    )


@pytest.mark.parametrize("length", ["1 min", "1 h", "24 h"])
def test_headline_values_are_the_stores(scale_reports: dict[str, ScaleReport], length: str) -> None:
    scale = scale_reports[length]
    page = scale.report.read_text()
    section = re.search(
        r'<section class="headline" data-verdict="(?P<verdict>[^"]+)">(?P<body>.*?)</section>', page
    )
    assert section is not None and page.index('<section class="headline"') < page.index("Plotly.newPlot")
    assert section["verdict"] == "pass" and "HEALTHY" in section["body"]
    rows = re.findall(r'data-metric="([^"]+)" data-p50-us="(\d+)" data-p99-us="(\d+)"', section["body"])
    assert [r[0] for r in rows] == ["ack:chat_message", "delivery:chat", "pong", "connect"]
    with RunStore.open(scale.store, readonly=True) as store:
        for metric, p50, p99 in rows:
            merged = store.merged_histogram(scale.run.run_id, metric)
            expected = hdr.percentiles(merged, [50.0, 99.0])
            assert (int(p50), int(p99)) == (expected[50.0], expected[99.0]), metric
        counters = store.counters(scale.run.run_id)
    sent = int(counters[counters["name"].str.startswith(COUNTER_SENT)]["value"].sum())
    received = int(counters[counters["name"].str.startswith(COUNTER_RECEIVED)]["value"].sum())
    assert sent == received == scale.run.seconds * scale.run.sent_per_second
    tiles = dict(re.findall(r'data-tile="([^"]+)"><b>([^<]+)</b>', section["body"]))
    assert tiles["peak-users"] == str(scale.run.users)
    number, _, unit = tiles["sent"].partition(" ")
    shown = float(number.replace(",", "")) * {"": 1, "k": 1e3, "M": 1e6}[unit]
    assert shown == pytest.approx(sent, rel=5e-3)  # 2,400 / 144 k / 3.46 M
    line = headline(read_report(scale.report))  # the block gives the same headline
    assert line.sent == sent and line.received == received and line.errors == len(scale.run.error_seconds)
    assert f"{scale.run.seconds:,} s" in html_lib.unescape(tiles["duration"])


def test_empty_states_are_words(scale_reports: dict[str, ScaleReport], tmp_path: Path) -> None:
    hour = plots(scale_reports["1 h"].report.read_text())
    errors_traces, errors_layout = hour["fig-errors"]
    assert not errors_traces
    assert [a["text"] for a in errors_layout["annotations"]] == ["no errors in 3,600 s"]
    assert not errors_layout["xaxis"]["visible"]  # no -1…6 axis around nothing
    store = tmp_path / "quiet.sqlite3"
    run = write_scaled_run(store, seconds=30, scrape_every=None)
    quiet = plots(build_report(store, run.run_id, tmp_path / "quiet.html").read_text())
    texts = [a["text"] for a in quiet["fig-server"][1]["annotations"]]
    assert texts and texts[0].startswith("server metrics were not scraped")
    once = tmp_path / "once.sqlite3"
    run = write_scaled_run(once, seconds=30, scrape_every=100)
    single = plots(build_report(once, run.run_id, tmp_path / "once.html").read_text())["fig-server"]
    assert not single[0] and "scraped once" in single[1]["annotations"][0]["text"]  # never a lone dot


def test_server_metrics_read_as_an_operator_reads_them(scale_reports: dict[str, ScaleReport]) -> None:
    traces, layout = plots(scale_reports["1 h"].report.read_text())["fig-server"]
    names = {t["name"] for t in traces}
    assert names == {
        "frames_in chat_message", "frames_in ping", "handling_seconds p50", "handling_seconds p99",
        "connections_open",
    }  # fmt: skip
    assert not any("bucket" in n or "le=" in n for n in names)
    rate = next(t for t in traces if t["name"] == "frames_in chat_message")
    assert {round(v, 6) for v in values(rate["y"]) if v == v} == {
        40.0
    }  # 40 frames/s, the cumulative counter's slope
    p50 = next(t for t in traces if t["name"] == "handling_seconds p50")
    p99 = next(t for t in traces if t["name"] == "handling_seconds p99")
    # per 10 s: 300 of 400 observations under 1 ms, 390 under 5 ms; interpolated as histogram_quantile does
    assert {round(v, 6) for v in values(p50["y"]) if v == v} == {round(200 / 300, 6)}
    assert {round(v, 6) for v in values(p99["y"]) if v == v} == {5.0}  # beyond the last finite bucket
    gauge = next(t for t in traces if t["name"] == "connections_open")
    assert gauge["yaxis"] not in {rate["yaxis"], p99["yaxis"]} and rate["yaxis"] != p99["yaxis"]
    assert {"legend", "legend2", "legend3"} <= set(layout)  # a legend beside each row, not over the axes


def test_long_runs_embed_one_row_per_window(scale_reports: dict[str, ScaleReport]) -> None:
    for length, width in (("1 min", 1), ("1 h", 10), ("24 h", 180)):
        scale = scale_reports[length]
        data = read_report(scale.report)
        assert data.resolution == width
        with RunStore.open(scale.store, readonly=True) as store:
            for metric in data.metrics:
                merged = store.merged_histogram(scale.run.run_id, metric)
                assert data.merged(metric).get_total_count() == merged.get_total_count()
                assert hdr.percentiles(data.merged(metric), [50.0, 99.0, 99.9]) == hdr.percentiles(
                    merged, [50.0, 99.0, 99.9]
                )
            total = int(store.counters(scale.run.run_id)["value"].sum())
        assert int(data.counters["value"].sum()) == total
        assert len(data.latency) <= len(data.metrics) * MAX_POINTS


def test_unhealthy_run_says_so_first(tmp_path: Path) -> None:
    store = tmp_path / "errors.sqlite3"
    run = write_scaled_run(store, seconds=30, rate=40, errors_at=range(30))  # 1 in 40 requests fails
    page = build_report(store, run.run_id, tmp_path / "errors.html").read_text()
    section = re.search(r'<section class="headline" data-verdict="regression">(.*?)</section>', page)
    assert section is not None and "UNHEALTHY" in section[1]
    assert "errors.rate &lt; 1%" in section[1] and "breaks" in section[1]
