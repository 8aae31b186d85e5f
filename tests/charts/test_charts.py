"""The presentation contract shared by monitor and reports: palette, windows, spectrum, server metrics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from charts import palette, server, spectrum, windows
from runstore import histogram as hdr
from runstore.names import LATENCY_METRICS, request_type


def test_one_colour_per_message_type_and_per_metric() -> None:
    colours = [palette.type_colour(m) for m in LATENCY_METRICS]
    assert len(set(colours)) == len(colours)
    assert palette.type_colour("ack:chat_message") != palette.type_colour("delivery:chat")
    # a type's counters share its metric's colour
    chat = palette.type_colour("ack:chat_message")
    assert (
        palette.type_colour("sent.chat_message") == chat == palette.type_colour("errors.chat_message.timeout")
    )
    assert palette.type_colour("recv.new_message") == palette.type_colour("delivery:chat")
    assert palette.type_colour("something:new") == palette.type_colour("something:new")  # stable fallback


def test_request_type_is_one_mapping() -> None:
    assert request_type("ack:batch") == "batch"
    assert request_type("pong") == "ping"
    assert request_type("sync:progress") == "progress_update"  # the monitor's copy lacked this one
    assert request_type("connect") == "connect"
    assert request_type("delivery:chat") is None


@pytest.mark.parametrize(
    ("duration", "minimum", "width", "label"),
    [
        (60, 1, 1, "1 s windows"),
        (600, 1, 1, "1 s windows"),
        (3600, 1, 10, "10 s windows"),
        (86_400, 60, 180, "3 min windows"),
        (7 * 86_400, 60, 1800, "30 min windows"),
    ],
)
def test_window_width_bounds_the_points(duration: int, minimum: int, width: int, label: str) -> None:
    got = windows.window_width(duration, minimum=minimum)
    assert got == width and windows.window_label(got) == label
    assert -(-duration // got) <= windows.MAX_POINTS
    assert windows.window_width(duration, max_points=300, minimum=minimum) >= got


def test_window_starts_from_the_origin() -> None:
    t = np.array([100, 101, 109, 110, 125])
    assert windows.window_starts(t, 100, 10).tolist() == [100, 100, 100, 110, 120]
    assert windows.window_of(100, 125, 10).tolist() == [100, 110, 120]


def test_spectrum_is_exact_and_stops_where_the_count_does() -> None:
    histogram = hdr.new_histogram()
    for v in range(1, 1001):
        histogram.record_value(v)
    points = spectrum.spectrum_of(histogram)
    assert points.percentile[-1] == 100.0 and points.value_us[-1] == histogram.get_max_value()
    finite = points.percentile[:-1]
    assert (1.0 / (1.0 - finite / 100.0) <= 1000 + 1e-9).all()  # p99.99 of 1,000 samples is not drawn
    for p, v in zip(points.percentile, points.value_us, strict=True):
        assert v == histogram.get_value_at_percentile(p)
    assert points.x[-1] > points.x[-2]  # the max closes the curve one decade on
    assert spectrum.spectrum_of(hdr.new_histogram()).percentile.size == 0
    values, labels = spectrum.axis_ticks()
    assert labels[0] == "0%" and labels[-1] == "99.9999%" and values[2] == pytest.approx(100.0)


def _samples(rows: list[tuple[str, int, float]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["name", "t", "value"])


def test_server_counters_become_rates_histograms_percentiles_gauges_gauges() -> None:
    rows = []
    for k in range(10):
        t = 100 + k
        rows += [
            ('wsgauge_frames_in_total{type="ping"}', t, 10.0 * k),
            ("wsgauge_frames_in_created", t, 1.0),
            ("wsgauge_connections_open", t, 5.0),
            ("wsgauge_event_loop_lag_max_seconds", t, 0.001 * k),
            ('wsgauge_handling_seconds_bucket{le="0.001"}', t, 50.0 * k),
            ('wsgauge_handling_seconds_bucket{le="0.01"}', t, 100.0 * k),
            ('wsgauge_handling_seconds_bucket{le="+Inf"}', t, 100.0 * k),
            ("wsgauge_handling_seconds_count", t, 100.0 * k),
            ("wsgauge_handling_seconds_sum", t, 0.3 * k),
        ]
    derived = server.derive(server.bucket_samples(_samples(rows), 2, origin=100))
    by = {
        (r.family, r.series): g for r, g in [(g.iloc[0], g) for _, g in derived.groupby(["family", "series"])]
    }
    rate = by[("wsgauge_frames_in_total", "ping")]
    assert set(rate["kind"]) == {"rate"} and np.allclose(rate["value"], 10.0) and len(rate) == 4
    p50 = by[("wsgauge_handling_seconds", "p50")]
    p99 = by[("wsgauge_handling_seconds", "p99")]
    assert set(p50["unit"]) == {"ms"} and np.allclose(p50["value"], 1.0)  # half the observations under 1 ms
    assert np.allclose(p99["value"], 1.0 + 9.0 * 0.98)  # histogram_quantile's interpolation
    gauge = by[("wsgauge_connections_open", "")]
    assert set(gauge["kind"]) == {"gauge"} and (gauge["value"] == 5.0).all() and len(gauge) == 5
    lag = by[("wsgauge_event_loop_lag_max_seconds", "")]
    assert np.allclose(lag["value"], [1.0, 3.0, 5.0, 7.0, 9.0])  # a *max* gauge keeps the window's max, in ms
    assert not any("created" in f or "_sum" in f or "_count" in f for f in derived["family"])
    assert list(derived["kind"].drop_duplicates()) == ["rate", "quantile", "gauge"]
    assert server.display_name("wsgauge_frames_in_total", "ping") == "frames_in ping"


def test_server_counter_reset_gives_no_rate() -> None:
    rows = [("x_total", t, v) for t, v in ((1, 10.0), (2, 20.0), (3, 5.0), (4, 15.0))]
    rate = server.derive(server.bucket_samples(_samples(rows), 1))
    assert rate["value"].tolist()[0] == 10.0 and np.isnan(rate["value"].tolist()[1])
    assert rate["value"].tolist()[2] == 10.0
    assert server.derive(server.bucket_samples(_samples([]), 5)).empty
