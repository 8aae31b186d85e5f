"""Bucketed counter and gauge reads give the same numbers as aggregating the per-second rows."""

from __future__ import annotations

import numpy as np

from runstore.store import RunStore
from tests.synthetic_runs import write_synthetic_run


def test_bucketed_reads_match_per_second_rows(location: str) -> None:
    path = location
    run = write_synthetic_run(path, seconds=150, rate=3, error_every=7, outage=(70, 80))
    with RunStore.open(path, readonly=True) as store:
        raw = store.counters(run.run_id)
        raw["b"] = raw["t"] // 60 * 60
        expected = raw.groupby(["name", "b"], as_index=False)["value"].sum()
        got = store.counters_bucketed(run.run_id, 60)
        assert got["name"].tolist() == expected["name"].tolist()
        assert got["t"].tolist() == expected["b"].tolist()
        assert got["value"].tolist() == expected["value"].tolist()
        errors = store.counters_bucketed(run.run_id, 60, prefix="errors.", start=run.start + 60)
        assert set(errors["name"]) == {"errors.chat_message.rate_limited"}
        in_range = raw[(raw["name"] == "errors.chat_message.rate_limited") & (raw["t"] >= run.start + 60)]
        assert errors["value"].sum() == in_range["value"].sum()

        gauges = store.gauges(run.run_id, ["queue_size", "users.connected"])
        gauges["b"] = gauges["t"] // 60 * 60
        agg = gauges.groupby(["name", "b"], as_index=False).agg(
            sum=("sum", "sum"), count=("count", "sum"), max=("max", "max"), seconds=("t", "size")
        )
        got = store.gauges_bucketed(run.run_id, 60, ["queue_size", "users.connected"])
        assert got["t"].tolist() == agg["b"].tolist()
        np.testing.assert_allclose(got["sum"], agg["sum"])
        np.testing.assert_allclose(got["max"], agg["max"])
        assert got["seconds"].tolist() == agg["seconds"].tolist()
        np.testing.assert_allclose(got["mean"], agg["sum"] / agg["count"])
        assert store.gauges_bucketed(run.run_id, 60, []).empty


def test_bucketed_events_and_server_metrics(location: str) -> None:
    path = location
    run = write_synthetic_run(path, seconds=130, rate=2, outage=(70, 80))
    with RunStore.open(path) as store:
        for i in range(5, 125):
            store.write_server_metrics(
                run.run_id,
                run.start + i + 0.3,
                {"wsgauge_frames_in_total": 10.0 * i, "wsgauge_event_loop_lag_seconds": (i % 7) / 1000},
            )
    with RunStore.open(path, readonly=True) as store:
        events = store.events_bucketed(run.run_id, 60)
        raw = store.events(run.run_id)
        assert events["count"].sum() == len(raw)
        assert set(events["kind"]) == set(raw["kind"])
        assert "wsgauge_frames_in_total" in store.server_metric_names(run.run_id)
        got = store.server_metrics_bucketed(run.run_id, 60, ["wsgauge_frames_in_total"])
        frames = store.server_metrics(run.run_id, ["wsgauge_frames_in_total"])
        frames["b"] = frames["t"] // 60 * 60
        last = frames.groupby("b").last()
        assert got["t"].tolist() == last.index.tolist()
        assert got["last_t"].tolist() == last["t"].tolist()
        assert got["last"].tolist() == last["value"].tolist()
        assert got["max"].tolist() == frames.groupby("b")["value"].max().tolist()
        assert store.server_metrics_bucketed(run.run_id, 60, []).empty
