"""The aggregator's buffered latencies: the drained histograms equal one ``record_value`` per sample."""

from __future__ import annotations

import random

import pytest

from runstore import histogram as hdr
from runstore.samples import SampleAggregator


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_drained_histograms_equal_per_sample_recording() -> None:
    rng = random.Random(17)
    agg = SampleAggregator(Clock(0.0))
    expected: dict[tuple[int, str], object] = {}
    clamped: dict[int, int] = {}
    # Out of order seconds too: kernel-stamped replies may belong to an earlier second than the last call.
    for _ in range(30_000):
        at = 1000 + rng.random() * 3
        metric = rng.choice(["pong", "send_lag", "ack:chat_message"])
        value = rng.lognormvariate(6, 1)
        if rng.random() < 0.01:  # the odd one: long, sub-microsecond or negative, out of range
            value = rng.choice([rng.lognormvariate(6, 2), rng.uniform(-10, 5), 1e13])
        agg.record_latency(metric, value, at=at)
        hist = expected.setdefault((int(at), metric), hdr.new_histogram())
        if not hdr.record_us(hist, value):  # type: ignore[arg-type]
            clamped[int(at)] = clamped.get(int(at), 0) + 1
    samples, _ = agg.drain()
    assert [s.second for s in samples] == [1000, 1001, 1002]
    for sample in samples:
        assert sorted(sample.latency) == sorted(m for s, m in expected if s == sample.second)
        for metric, hist in sample.latency.items():
            reference = expected[(sample.second, metric)]
            assert hist.encode() == reference.encode()  # type: ignore[attr-defined]
            assert hist.get_max_value() == reference.get_max_value()  # type: ignore[attr-defined]
            assert hist.get_min_value() == reference.get_min_value()  # type: ignore[attr-defined]
        assert sample.counters.get("latency_clamped", 0) == clamped.get(sample.second, 0)
    assert agg.clamped == sum(clamped.values()) > 0


def test_current_second_recorded_after_a_drain_is_kept() -> None:
    clock = Clock(50.2)
    agg = SampleAggregator(clock)
    agg.record_latency("pong", 100)
    agg.incr("sent.ping")
    (first,), _ = agg.drain()  # drains second 50 while it is the cached one
    agg.record_latency("pong", 200)
    agg.incr("sent.ping")
    (again,), _ = agg.drain()
    assert first.second == again.second == 50
    assert first.latency["pong"].get_total_count() == again.latency["pong"].get_total_count() == 1
    assert again.latency["pong"].get_max_value() == 200
    assert first.counters == again.counters == {"sent.ping": 1}


def test_partial_drain_keeps_open_seconds() -> None:
    clock = Clock(10.5)
    agg = SampleAggregator(clock)
    agg.record_latency("pong", 1)
    clock.t = 11.5
    agg.record_latency("pong", 2)
    closed, _ = agg.drain(before=11.6)
    assert [s.second for s in closed] == [10]
    agg.record_latency("pong", 3)
    (rest,), _ = agg.drain()
    assert rest.second == 11 and rest.latency["pong"].get_total_count() == 2


def test_a_latency_that_is_no_number_is_refused_at_once() -> None:
    agg = SampleAggregator(Clock(1.0))
    with pytest.raises(TypeError):
        agg.record_latency("pong", "12")  # type: ignore[arg-type]
    assert agg.drain()[0][0].latency["pong"].get_total_count() == 0
