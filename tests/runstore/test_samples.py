from __future__ import annotations

import pytest

from runstore.names import ack_metric, sent_counter
from runstore.samples import (
    GaugeStat,
    SampleAggregator,
    SampleFormatError,
    SecondSample,
    merge_samples,
)


class FakeClock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_aggregator_buckets_by_second_and_drains_closed_seconds() -> None:
    clock = FakeClock(100.2)
    agg = SampleAggregator(clock)
    agg.record_latency("pong", 250)
    agg.incr(sent_counter("ping"))
    clock.t = 101.7
    agg.record_latency("pong", 900)
    agg.event("connected", "u1")
    samples, events = agg.drain(before=101.9)
    assert [s.second for s in samples] == [100]
    assert samples[0].latency["pong"].get_total_count() == 1
    assert samples[0].counters == {"sent.ping": 1}
    assert [e.kind for e in events] == ["connected"]
    rest, _ = agg.drain()
    assert [s.second for s in rest] == [101]
    assert agg.drain() == ([], [])


def test_gauge_snapshot_in_same_second_replaces() -> None:
    agg = SampleAggregator(FakeClock(5.0))
    agg.set_gauge("queue_size", [1, 2, 3])
    agg.set_gauge("queue_size", [4, 4])
    (sample,), _ = agg.drain()
    g = sample.gauges["queue_size"]
    assert (g.sum, g.count, g.min, g.max) == (8, 2, 4, 4)


def test_clamped_latency_is_counted() -> None:
    agg = SampleAggregator(FakeClock(5.0))
    agg.record_latency("connect", 10**13)
    (sample,), _ = agg.drain()
    assert sample.counters["latency_clamped"] == 1 and agg.clamped == 1


def test_unknown_event_kind_rejected() -> None:
    with pytest.raises(ValueError):
        SampleAggregator().event("exploded", "u1")


def _worker_sample(second: int, latencies: list[int], sent: int, queue: list[float]) -> SecondSample:
    agg = SampleAggregator(FakeClock(second + 0.5))
    for v in latencies:
        agg.record_latency(ack_metric("chat_message"), v)
    agg.incr(sent_counter("chat_message"), sent)
    agg.set_gauge("queue_size", queue)
    (sample,), _ = agg.drain()
    return sample


def test_wire_round_trip_and_exact_merge() -> None:
    a = _worker_sample(10, [100, 200, 300], 3, [0, 2])
    b = _worker_sample(10, [400, 5000], 2, [7])
    c = _worker_sample(11, [50], 1, [])
    wire = [SecondSample.from_wire(s.to_wire()) for s in (a, b, c)]
    merged = merge_samples(wire)
    assert [s.second for s in merged] == [10, 11]
    ten = merged[0]
    hist = ten.latency["ack:chat_message"]
    assert hist.get_total_count() == 5
    assert hist.get_value_at_percentile(100) == pytest.approx(5000, rel=1e-3)
    assert ten.counters["sent.chat_message"] == 5
    g = ten.gauges["queue_size"]
    assert (g.sum, g.count, g.min, g.max) == (9, 3, 0, 7)
    assert g.mean == 3
    eleven = merged[1].gauges["queue_size"]
    assert eleven.count == 0 and eleven.mean == 0.0
    assert merged[1] is wire[2]  # a second in one piece is passed through, not copied
    assert wire[0].latency["ack:chat_message"].get_total_count() == 3  # the pieces merged are left alone
    assert wire[0].counters["sent.chat_message"] == 3 and wire[0].gauges["queue_size"].count == 2


def test_empty_gauge_merges_neutrally() -> None:
    g = GaugeStat.of([])
    g.merge(GaugeStat.of([3.0]))
    assert (g.min, g.max, g.count) == (3.0, 3.0, 1)


@pytest.mark.parametrize(
    "bad",
    [
        {},
        {"second": "x", "latency": {}, "counters": {}, "gauges": {}},
        {"second": 1, "latency": {"pong": "garbage"}, "counters": {}, "gauges": {}},
        {"second": 1, "latency": {}, "counters": {"a": "b"}, "gauges": {}},
        {"second": 1, "latency": {}, "counters": {}, "gauges": {"q": [1]}},
        {"second": 1, "latency": [], "counters": {}, "gauges": {}},
    ],
)
def test_from_wire_rejects_malformed(bad: dict) -> None:
    with pytest.raises(SampleFormatError):
        SecondSample.from_wire(bad)
