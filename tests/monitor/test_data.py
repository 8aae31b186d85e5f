"""Reading runs for the monitor: windows, downsampled series, range statistics from merged histograms."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from monitor import data
from runstore import histogram as hdr
from runstore.store import SchemaTooNew, StoreCorrupt, StoreNotFound
from tests.monitor.conftest import RATE, Stores


def _series(frame: pd.DataFrame, family: str, name: str, stat: str) -> pd.DataFrame:
    return frame[(frame["family"] == family) & (frame["name"] == name) & (frame["stat"] == stat)]


def test_plan_window_resolution_ladder() -> None:
    assert data.plan_window(100, 700) == data.Window(100, 700, 1, 1)
    day = data.plan_window(1_700_000_000, 1_700_086_400)
    assert (day.bucket, day.resolution) == (180, 60)
    assert (day.end - day.start) / day.bucket <= data.MAX_BUCKETS
    hour = data.plan_window(1_700_000_000, 1_700_003_600)
    assert (hour.bucket, hour.resolution, hour.latency_bucket) == (10, 1, 10)
    assert data.Window.from_dict(day.to_dict()) == day


def test_runs_list_newest_first_with_headline(stores: Stores) -> None:
    with data.open_store(stores.path) as store:
        rows = data.list_runs(store)
    assert [r.name for r in rows] == ["candidate", "baseline"]
    assert rows[0].users == 8 and not rows[0].live and rows[0].duration_s == 600


def test_timeline_series_match_the_synthetic_run(stores: Stores) -> None:
    run = stores.run
    with data.open_store(stores.path) as store:
        view = data.overview(store, run.run_id)
        assert view.span == (run.start, run.start + run.seconds - 1)
        window = data.plan_window(view.span[0], view.span[1] + 1)
        series = data.read_timeline(
            store,
            run.run_id,
            window,
            span=view.span,
            metrics=["pong", "ack:chat_message"],
            percentiles=["p50", "max"],
        )
    families = set(series["family"])
    assert {"latency", "throughput", "errors", "queue", "connections", "events"} <= families
    sent = _series(series, "throughput", "chat_message", "sent")
    assert len(sent) == 600
    outage = (sent["t"] >= run.start + 300) & (sent["t"] < run.start + 330)
    assert (sent.loc[outage, "value"] == 0).all() and (sent.loc[~outage, "value"] == RATE).all()
    reconnecting = _series(series, "connections", "reconnecting", "users")
    assert reconnecting.loc[reconnecting["t"].between(run.start + 300, run.start + 330), "value"].max() == 8
    errors = _series(series, "errors", "chat_message.rate_limited", "rate")
    assert errors["value"].sum() == len([o for o in range(600) if o % 7 == 0 and not 300 <= o < 330])
    pong = _series(series, "latency", "pong", "max")
    assert pong["value"].isna().sum() == 1  # the outage is a gap in the line, not a straight segment
    assert (pong["value"].dropna() > 0).all()


def test_long_windows_are_downsampled_to_the_budget(stores: Stores) -> None:
    run = stores.run
    with data.open_store(stores.path) as store:
        span = (run.start, run.start + run.seconds - 1)
        fine = data.plan_window(span[0], span[1] + 1, max_buckets=100)  # 10 s buckets over per-second rows
        coarse = data.plan_window(span[0], span[1] + 1, max_buckets=30)  # 30 s buckets: per-minute roll-ups
        assert (fine.bucket, fine.resolution) == (10, 1) and (coarse.bucket, coarse.resolution) == (30, 60)
        for window in (fine, coarse):
            series = data.read_timeline(
                store, run.run_id, window, span=span, metrics=["pong"], percentiles=["max"]
            )
            counts = series.groupby(["family", "name", "stat"]).size()
            assert counts.max() <= 2 * (600 / window.bucket + 2)
        raw = store.latency(run.run_id, ["pong"])
    # min/max buckets keep the worst second of the run
    with data.open_store(stores.path) as store:
        downsampled = data.read_timeline(
            store, run.run_id, fine, span=span, metrics=["pong"], percentiles=["max"]
        )
    worst = _series(downsampled, "latency", "pong", "max")["value"].max()
    assert worst == pytest.approx(raw["max_us"].max() / 1000)


def test_live_reads_tile_exactly(stores: Stores) -> None:
    """Reading [a, b) then [b, c) gives the same points as [a, c): what live updates rely on."""
    run = stores.run
    span = (run.start, run.start + run.seconds - 1)
    window = data.plan_window(span[0], span[1] + 1)
    kwargs = {"span": span, "metrics": ["pong"], "percentiles": ["p99"]}
    with data.open_store(stores.path) as store:
        whole = data.read_timeline(store, run.run_id, window, until=run.start + 400, **kwargs)
        first = data.read_timeline(store, run.run_id, window, until=run.start + 200, **kwargs)
        second = data.read_timeline(
            store, run.run_id, window, since=run.start + 200, until=run.start + 400, **kwargs
        )
    joined = pd.concat([first, second]).dropna()
    key = ["family", "name", "stat", "t"]
    pd.testing.assert_frame_equal(
        whole.dropna().sort_values(key).reset_index(drop=True), joined.sort_values(key).reset_index(drop=True)
    )
    assert whole["t"].max() < run.start + 400


def test_range_stats_are_read_off_merged_histograms(stores: Stores) -> None:
    run = stores.run
    span = (run.start, run.start + run.seconds - 1)
    lo, hi = run.start + 100.0, run.start + 250.0
    with data.open_store(stores.path) as store:
        stats = data.range_stats(store, run.run_id, ["ack:chat_message", "pong"], lo, hi, span)
        merged = store.merged_histogram(run.run_id, "ack:chat_message", lo, hi)
    expected = hdr.percentiles(merged, [50.0, 90.0, 99.0, 99.9])
    row = stats.table.set_index("metric").loc["ack:chat_message"]
    assert row["count"] == 150 * RATE == merged.get_total_count()
    assert row["rate"] == pytest.approx(RATE)
    for pct, column in ((50.0, "p50"), (90.0, "p90"), (99.0, "p99"), (99.9, "p99.9")):
        assert row[column] == expected[pct] / 1000
        assert row[column] == merged.get_value_at_percentile(pct) / 1000  # what HdrHistogram itself says
    errors = len([o for o in range(100, 250) if o % 7 == 0])
    assert row["errors"] == errors
    assert row["error_rate"] == pytest.approx(errors / (150 * RATE + errors))
    spectrum = stats.spectrum[stats.spectrum["metric"] == "pong"]
    assert spectrum["value"].is_monotonic_increasing
    assert spectrum["percentile"].iloc[-1] == 100.0
    assert (
        1 / (1 - spectrum["percentile"].iloc[-2] / 100) <= 150 * RATE
    )  # no percentiles finer than the count


def test_compare_is_aligned_at_start(stores: Stores) -> None:
    run, base = stores.run, stores.baseline
    span = (run.start, run.start + run.seconds - 1)
    window = data.plan_window(span[0], span[1] + 1)
    with data.open_store(stores.path) as store:
        shifted = data.read_timeline(
            store,
            base.run_id,
            window,
            span=(base.start, base.start + base.seconds - 1),
            metrics=["pong"],
            percentiles=["p50"],
            shift=run.start - base.start,
        )
    sent = _series(shifted, "throughput", "chat_message", "sent")
    assert sent["t"].min() == run.start + 0.5 and sent["t"].max() == run.start + 599.5


def test_server_series_turn_counters_into_rates() -> None:
    names = [
        'wsgauge_frames_in_total{type="ping"}',
        "wsgauge_frames_in_created",
        "wsgauge_connections_open",
        'wsgauge_handling_seconds_bucket{le="0.1"}',
        "wsgauge_handling_seconds_sum",
        "wsgauge_handling_seconds_count",
    ]
    assert data.server_families(names) == [
        "wsgauge_connections_open",
        "wsgauge_frames_in_total",
        "wsgauge_handling_seconds",
    ]


def test_server_rates_percentiles_and_gauges_from_a_store(tmp_path) -> None:
    """Counters become rates, histogram buckets p50 / p99 (ms), gauges a row of their own."""
    from runstore.store import RunStore
    from tests.synthetic_runs import write_synthetic_run

    path = tmp_path / "s.sqlite3"
    run = write_synthetic_run(path, seconds=30, rate=2)
    with RunStore.open(path) as store:
        for i in range(30):
            store.write_server_metrics(
                run.run_id,
                run.start + i,
                {
                    'wsgauge_frames_in_total{type="ping"}': 50.0 * i,
                    'wsgauge_handling_seconds_bucket{le="0.001"}': 3.0 * i,  # 3 of 4 a second under 1 ms
                    'wsgauge_handling_seconds_bucket{le="0.01"}': 4.0 * i,
                    'wsgauge_handling_seconds_bucket{le="+Inf"}': 4.0 * i,
                    "wsgauge_handling_seconds_sum": 0.002 * i,
                    "wsgauge_handling_seconds_count": 4.0 * i,
                    "wsgauge_connections_open": 7.0,
                },
            )
    span = (run.start, run.start + 29)
    with data.open_store(path) as store:
        names = store.server_metric_names(run.run_id)
        series = data.read_timeline(
            store,
            run.run_id,
            data.plan_window(*span),
            span=span,
            metrics=[],
            server=data.server_families(names),
            server_names=names,
        )
    server = series[series["family"] == "server"]
    rate = _series(server, "server", "wsgauge_frames_in_total", "ping")["value"].dropna()
    assert len(rate) >= 25 and (rate == 50.0).all()
    p50 = _series(server, "server", "wsgauge_handling_seconds", "p50")["value"].dropna()
    p99 = _series(server, "server", "wsgauge_handling_seconds", "p99")["value"].dropna()
    assert len(p50) >= 25 and np.allclose(p50, 1000 * 0.001 * 2 / 3)  # rank 2 of 3 in [0, 1 ms]
    assert np.allclose(p99, 1.0 + 9.0 * (3.96 - 3) / 1)  # rank 3.96: 96 % into the 1-10 ms bucket
    assert set(server["name"]) == {"wsgauge_frames_in_total", "wsgauge_handling_seconds"}
    gauges = series[series["family"] == "server_gauge"]
    assert (_series(gauges, "server_gauge", "wsgauge_connections_open", "gauge")["value"] == 7.0).all()


def test_bad_stores_raise_one_line_errors(stores: Stores) -> None:
    for path, error, words in (
        (stores.missing, StoreNotFound, "no run store"),
        (stores.newer, SchemaTooNew, "v99"),
        (stores.corrupt, StoreCorrupt, "not a readable"),
    ):
        with pytest.raises(error, match=words), data.open_store(path):
            pass
    with data.open_store(stores.no_samples) as store:
        view = data.overview(store, store.latest_run_id())
    assert view.span is None and view.metrics == ()
