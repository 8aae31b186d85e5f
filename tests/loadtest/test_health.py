"""The generator's own health: real GC callbacks, a really blocked hub, gauges that merge across workers."""

from __future__ import annotations

import gc
import socket
import sys
import time
from pathlib import Path

import gevent
import pytest

from loadtest._health import GC_THRESHOLDS, SWITCH_INTERVAL, GcPolicy, GeneratorHealth
from runstore.health import generator_bound
from runstore.names import (
    GAUGE_GENERATOR_CPU,
    GAUGE_GENERATOR_GC_MAX_PAUSE,
    GAUGE_GENERATOR_GC_PAUSE,
    GAUGE_GENERATOR_LOOP_LAG,
    GENERATOR_GAUGES,
    generator_gc_counter,
)
from runstore.samples import SampleAggregator, merge_samples
from runstore.store import RunInfo, RunStore


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_closed_seconds_become_one_observation_per_process() -> None:
    wall, cpu = Clock(100.0), Clock(5.0)
    health = GeneratorHealth(clock=wall, cpu_clock=cpu)
    health.observe_lag(0.002, at=100.3)
    health.observe_lag(0.007, at=100.6)
    health.observe_gc(0, 0.001, at=100.4)
    health.observe_gc(2, 0.012, at=100.5)
    health.observe_lag(0.001, at=101.2)  # the open second stays
    agg = SampleAggregator(wall)
    wall.t, cpu.t = 101.5, 5.6
    health.record(agg, 101.5)
    (sample,), _ = agg.drain(before=101.0)
    assert sample.second == 100
    assert sample.gauges[GAUGE_GENERATOR_LOOP_LAG].max == 7.0
    assert abs(sample.gauges[GAUGE_GENERATOR_GC_PAUSE].sum - 13.0) < 1e-9
    assert sample.gauges[GAUGE_GENERATOR_GC_MAX_PAUSE].max == 12.0
    assert sample.counters == {generator_gc_counter(0): 1, generator_gc_counter(2): 1}
    cpu_stat = sample.gauges[GAUGE_GENERATOR_CPU]  # 0.6 s of CPU over 1.5 s of wall, mid-point 100.75
    assert cpu_stat.count == 1 and abs(cpu_stat.max - 0.4) < 1e-9
    health.record(agg, 101.6, final=True)
    rest, _ = agg.drain()
    assert [s.second for s in rest] == [101]
    assert rest[0].gauges[GAUGE_GENERATOR_LOOP_LAG].max == 1.0


def test_workers_merge_to_the_worst_and_the_mean() -> None:
    samples = []
    for lag, share in ((0.003, 0.5), (0.020, 0.95)):
        health = GeneratorHealth(clock=Clock(10.0), cpu_clock=Clock(0.0))
        health.observe_lag(lag, at=10.5)
        agg = SampleAggregator(Clock(10.0))
        health.record(agg, 11.0)
        agg.set_gauge(GAUGE_GENERATOR_CPU, [share], at=10.5)
        samples += agg.drain()[0]
    (merged,) = merge_samples(samples)
    lag = merged.gauges[GAUGE_GENERATOR_LOOP_LAG]
    assert (lag.count, lag.max) == (2, 20.0)
    cpu = merged.gauges[GAUGE_GENERATOR_CPU]
    assert cpu.max == 0.95 and abs(cpu.mean - 0.725) < 1e-9


def test_real_collections_and_a_blocked_hub_are_seen() -> None:
    health = GeneratorHealth()
    health.start()
    try:
        gevent.sleep(0.05)  # let the probe run
        garbage = []
        for _ in range(2000):
            a: list[object] = []
            a.append(a)  # cycles: only the collector frees them
            garbage.append(a)
        del garbage
        gc.collect()
        time.sleep(0.08)  # blocks the hub: the probe wakes at least this late
        gevent.sleep(0.03)
    finally:
        health.stop()
    agg = SampleAggregator()
    health.record(agg, final=True)
    samples, _ = agg.drain()
    lags = [s.gauges[GAUGE_GENERATOR_LOOP_LAG].max for s in samples if GAUGE_GENERATOR_LOOP_LAG in s.gauges]
    assert max(lags) >= 60.0
    assert sum(s.counters.get(generator_gc_counter(2), 0) for s in samples) >= 1
    assert max(s.gauges[GAUGE_GENERATOR_GC_MAX_PAUSE].max for s in samples if s.gauges) > 0.0


def test_generator_bound_names_the_limits_reached(tmp_path: Path) -> None:
    agg = SampleAggregator(Clock(0.0))
    values = {
        200: (1.0, 0.5, 0.4),  # healthy
        201: (12.0, 0.5, 0.4),  # loop lag
        202: (2.0, 8.0, 0.95),  # a long collection and a saturated core
    }
    for t, (lag, pause, share) in values.items():
        agg.set_gauge(GAUGE_GENERATOR_LOOP_LAG, [lag], at=t)
        agg.set_gauge(GAUGE_GENERATOR_GC_MAX_PAUSE, [pause], at=t)
        agg.set_gauge(GAUGE_GENERATOR_CPU, [share], at=t)
    agg.set_gauge("queue_size", [3.0], at=203)  # not health: ignored
    with RunStore.open(tmp_path / "runs.sqlite3") as store:
        run_id = store.create_run(RunInfo(name="h", target="t", options={}, versions={}, machine={}))
        store.write_samples(run_id, agg.drain()[0])
        frame = generator_bound(store.gauges(run_id, list(GENERATOR_GAUGES)))
        bucketed = generator_bound(store.gauges_bucketed(run_id, 10))
        legacy = generator_bound(store.gauges(run_id, ["queue_size"]))
    assert frame["t"].tolist() == [200, 201, 202]
    assert frame["bound"].tolist() == [False, True, True]
    assert frame["reasons"].tolist() == ["", "loop_lag_ms", "gc_max_pause_ms,cpu"]
    assert bucketed["bound"].tolist() == [True] and bucketed["loop_lag_ms"].tolist() == [12.0]
    assert legacy.empty and "bound" in legacy.columns


def test_a_real_run_stores_its_generators_health(real_run_store: tuple[Path, int]) -> None:
    store_path, run_id = real_run_store
    with RunStore.open(store_path, readonly=True) as store:
        gauges = store.gauges(run_id, list(GENERATOR_GAUGES))
        counters = store.counters(run_id, prefix="generator.gc.")
    assert set(gauges["name"]) == set(GENERATOR_GAUGES)
    assert set(gauges["count"]) == {1}  # one process, one observation per second
    lag = gauges[gauges["name"] == GAUGE_GENERATOR_LOOP_LAG]
    assert len(lag) >= 5 and (lag["max"] >= 0).all()
    cpu = gauges[gauges["name"] == GAUGE_GENERATOR_CPU]
    assert (cpu["max"] > 0).any() and (cpu["max"] < 4).all()
    assert set(counters["name"]) <= {generator_gc_counter(g) for g in range(3)}


def test_workers_report_one_observation_each(tmp_path: Path) -> None:
    from tests.loadtest.locust_runs import run_locust

    with socket.socket() as probe:  # a free master port: other runs may hold Locust's default 5557
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    run = run_locust(
        tmp_path / "wsgauge.sqlite3",
        *("--processes", "2", "--master-bind-port", str(port), "--master-port", str(port)),
        *("-u", "4", "-r", "4", "-t", "5s", "--think-scale", "0.3"),
        *("--run-name", "health-two-workers", "--report", "false"),
        timeout=120,
    )
    assert run.returncode == 0, run.output
    with RunStore.open(run.store_path, readonly=True) as store:
        (record,) = store.list_runs()
        lag = store.gauges(record.id, [GAUGE_GENERATOR_LOOP_LAG])
    assert lag["count"].max() == 2  # both workers in a second: the worst is max, the mean sum / count
    assert (lag["max"] >= lag["mean"]).all()


def test_the_gc_policy_freezes_start_up_then_the_settled_users(monkeypatch: pytest.MonkeyPatch) -> None:
    thresholds = gc.get_threshold()
    interval = sys.getswitchinterval()
    try:
        policy = GcPolicy()
        policy.start()
        assert gc.get_threshold() == GC_THRESHOLDS and policy.freezes == 1
        assert sys.getswitchinterval() == pytest.approx(SWITCH_INTERVAL)
        frozen = gc.get_freeze_count()
        kept = [[i] for i in range(1000)]  # tracked objects made after the first freeze
        for users in (10, 50, 50, 50):  # spawning, then settled
            policy.settle(users)
        assert policy.freezes == 2 and gc.get_freeze_count() >= frozen + len(kept)
        policy.settle(50)
        policy.settle(20)  # users left: freeze again once it holds
        policy.settle(20)
        assert policy.freezes == 3
        monkeypatch.setenv("WSGAUGE_GC_POLICY", "default")
        untouched = GcPolicy()
        gc.set_threshold(*thresholds)
        sys.setswitchinterval(interval)
        untouched.start()
        untouched.settle(5)
        untouched.settle(5)
        assert untouched.freezes == 0 and gc.get_threshold() == thresholds
        assert sys.getswitchinterval() == interval
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
        sys.setswitchinterval(interval)
