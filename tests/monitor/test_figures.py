"""Figure builders: traces, keys, rows and live extension, from hand-made frames."""

from __future__ import annotations

import numpy as np
import pandas as pd

from monitor import figures


def _frame(rows: list[tuple[str, str, str, list[float], list[float]]]) -> pd.DataFrame:
    parts = [
        pd.DataFrame(
            {"family": f, "name": n, "stat": s, "t": np.asarray(t, float), "value": np.asarray(v, float)}
        )
        for f, n, s, t, v in rows
    ]
    return pd.concat(parts, ignore_index=True)


SERIES = _frame(
    [
        ("latency", "pong", "p99", [0.5, 1.5, 2.5], [1.0, np.nan, 2.0]),
        ("latency", "pong", "p50", [0.5, 1.5, 2.5], [0.5, 0.6, 0.7]),
        ("throughput", "chat_message", "sent", [0.5, 1.5, 2.5], [10, 10, 0]),
        ("errors", "chat_message.timeout", "rate", [1.5], [1.0]),
        ("queue", "queue", "mean", [0.5, 1.5], [1, 2]),
        ("connections", "connected", "users", [0.5, 1.5], [8, 7]),
        ("connections", "reconnecting", "users", [0.5, 1.5], [0, 1]),
        ("events", "reconnecting", "count", [1.5], [1]),
    ]
)


def test_timeline_has_a_row_per_family_and_keys_per_trace() -> None:
    rows = figures.timeline_rows(server=False, send_lag=False)
    assert [r.family for r in rows] == ["latency", "throughput", "errors", "queue", "connections"]
    fig = figures.make_timeline(SERIES, rows=rows, bucket=1, uirevision="r1")
    uids = [figures.trace_key(t) for t in fig.data]
    assert all(t.uid.isalnum() for t in fig.data)  # Plotly makes CSS selectors of uids
    assert uids[:2] == [
        "connections/connected/users",
        "connections/reconnecting/users",
    ]  # stack: connected first
    assert "latency/pong/p50" in uids and "latency/pong/p99" in uids
    assert uids.index("latency/pong/p50") < uids.index("latency/pong/p99")
    assert {t.xaxis for t in fig.data} == {"x"}  # one shared time axis: linked zoom and crosshair
    assert fig.layout.hoversubplots == "axis" and fig.layout.xaxis.showspikes
    assert fig.layout.uirevision == "r1"
    assert fig.layout.yaxis.type == "log"
    p99 = next(t for t in fig.data if figures.trace_key(t) == "latency/pong/p99")
    assert list(p99.x) == [500.0, 1500.0, 2500.0] and np.isnan(p99.y[1])  # epoch ms; NaN → gap
    plain = figures.jsonable(fig)
    sent_json = next(t for t in plain["data"] if t["meta"] == ["latency/pong/p99"])
    assert sent_json["x"] == [500.0, 1500.0, 2500.0] and sent_json["y"][1] != sent_json["y"][1]  # lists
    # a message type has one colour everywhere
    sent = next(t for t in fig.data if figures.trace_key(t) == "throughput/chat_message/sent")
    assert sent.line.color == figures.type_colour("ack:chat_message") == figures.type_colour("chat_message")
    events = next(t for t in fig.data if figures.trace_key(t) == "events/reconnecting/count")
    assert events.yaxis == f"y{len(rows) + 1}" and list(events.customdata) == [1]


def test_every_latency_metric_has_its_own_colour() -> None:
    """ack:chat_message and delivery:chat were both blue: one colour per metric, from charts.palette."""
    from runstore.names import LATENCY_METRICS

    series = _frame([("latency", m, "p99", [0.5, 1.5], [1.0, 2.0]) for m in LATENCY_METRICS])
    fig = figures.make_timeline(series, rows=figures.timeline_rows(server=False, send_lag=True), bucket=1)
    colours = {t.name: t.line.color for t in fig.data}
    assert len(set(colours.values())) == len(LATENCY_METRICS), colours
    assert colours["ack:chat_message"] != colours["delivery:chat"]


def test_server_gauges_get_a_row_of_their_own() -> None:
    rows = figures.timeline_rows(server=True, send_lag=False)
    rates = _frame([("server", "wsgauge_frames_in_total", "ping", [0.5, 1.5], [10.0, 12.0])])
    fig = figures.make_timeline(rates, rows=rows, bucket=1)
    titles = " ".join(a.text for a in fig.layout.annotations)
    assert "Server metrics" in titles and "Server gauges" not in titles  # no gauge chosen: no empty row
    both = pd.concat([rates, _frame([("server_gauge", "wsgauge_connections_open", "gauge", [0.5], [7.0])])])
    fig = figures.make_timeline(both, rows=rows, bucket=1)
    axes = {t.name: t.yaxis for t in fig.data}
    assert axes["frames_in ping"] != axes["connections_open"]
    assert "Server gauges" in " ".join(a.text for a in fig.layout.annotations)


def test_compare_run_is_overlaid_fainter() -> None:
    rows = figures.timeline_rows(server=False, send_lag=False)
    fig = figures.make_timeline(SERIES, rows=rows, bucket=1, compare=SERIES)
    compared = [t for t in fig.data if figures.trace_key(t).startswith(figures.COMPARE_PREFIX)]
    assert "B:latency/pong/p99" in {figures.trace_key(t) for t in compared}
    assert all(t.opacity < 1 for t in compared)
    assert not any(
        figures.trace_key(t).startswith("B:errors") for t in compared
    )  # stacked bars of two runs would mislead


def test_empty_rows_say_so() -> None:
    rows = figures.timeline_rows(server=True, send_lag=True)
    fig = figures.make_timeline(SERIES[SERIES["family"] != "errors"], rows=rows, bucket=1)
    texts = [a.text for a in fig.layout.annotations]
    assert "No errors" in texts and "No data in this range" in texts


def test_extend_points_finds_traces_and_reports_new_series() -> None:
    keys = ["latency/pong/p99", "events/reconnecting/count"]
    new = _frame(
        [
            ("latency", "pong", "p99", [3.5], [np.nan]),
            ("events", "reconnecting", "count", [3.5], [5]),
            ("errors", "chat_message.rate_limited", "rate", [3.5], [1]),
        ]
    )
    points, unknown = figures.extend_points(new, keys)
    assert points[0] == {"x": [3500.0], "y": [None]}
    assert points[1]["customdata"] == [5] and len(points[1]["marker.size"]) == 1
    assert unknown == {"errors/chat_message.rate_limited/rate"}


def test_spectrum_on_the_inverse_tail_axis() -> None:
    spectrum = pd.DataFrame(
        {"metric": "pong", "percentile": [0.0, 50.0, 90.0, 99.0, 100.0], "value": [0.1, 0.5, 1.0, 3.0, 9.0]}
    )
    fig = figures.make_spectrum(spectrum, compare=spectrum, title="t")
    assert fig.layout.xaxis.type == "log" and fig.layout.yaxis.type == "log"
    main = fig.data[0]
    assert np.allclose(main.x[:4], [1, 2, 10, 100])
    assert main.x[-1] == 1000  # the max, one decade past the last percentile
    assert len(fig.data) == 2 and fig.data[1].line.dash == "dot"
    empty = figures.make_spectrum(spectrum.iloc[0:0])
    assert empty.layout.annotations[0].text.startswith("No latency")
