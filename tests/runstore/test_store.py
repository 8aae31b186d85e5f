from __future__ import annotations

import random
import sqlite3
from pathlib import Path

import pytest

from runstore import histogram as hdr
from runstore.__main__ import main as runs_cli
from runstore.names import ack_metric, state_gauge
from runstore.samples import SampleAggregator
from runstore.schema import SCHEMA_VERSION
from runstore.store import (
    RunInfo,
    RunNotFound,
    RunStore,
    SchemaTooNew,
    StoreCorrupt,
    StoreNotFound,
)

METRIC = ack_metric("chat_message")


def _samples(start: int, seconds: int, seed: int, per_second: int = 50):
    rng = random.Random(seed)
    agg = SampleAggregator()
    for s in range(start, start + seconds):
        for _ in range(per_second):
            agg.record_latency(METRIC, rng.lognormvariate(7, 1), at=s + 0.5)
        agg.incr("sent.chat_message", per_second, at=s + 0.5)
        agg.set_gauge(state_gauge("connected"), [1, 1, 0], at=s + 0.5)
        agg.event("connected", f"user-{s}", at=s + 0.1)
    return agg.drain()


@pytest.fixture
def store(location: str):
    with RunStore.open(location) as s:
        yield s


def test_round_trip_of_a_run(store: RunStore) -> None:
    run = store.create_run(RunInfo(name="smoke", target="ws://127.0.0.1:1/ws", options={"users": 3}))
    samples, events = _samples(1000, 5, seed=1)
    store.write_samples(run, samples)
    store.write_events(run, events)
    store.write_server_metrics(run, 1002.4, {"wsgauge_connections_open": 3.0, "bad": float("nan")})
    store.finish_run(run, "completed", ended_at=1005.0, summary={"requests": 250})

    record = store.get_run(run)
    assert record.status == "completed" and record.options == {"users": 3}
    assert record.summary == {"requests": 250} and not record.is_live()
    assert store.time_range(run) == (1000, 1004)
    assert store.latency_metrics(run) == [METRIC]
    frame = store.latency(run, [METRIC])
    assert list(frame["t"]) == [1000, 1001, 1002, 1003, 1004]
    assert (frame["count"] == 50).all()
    counters = store.counters(run, prefix="sent.")
    assert counters["value"].sum() == 250
    gauges = store.gauges(run, [state_gauge("connected")])
    assert (gauges["sum"] == 2).all()
    assert gauges["mean"].tolist() == pytest.approx([2 / 3] * 5)
    assert len(store.events(run)) == 5
    assert store.server_metrics(run)["name"].tolist() == ["wsgauge_connections_open"]


def test_second_written_twice_merges_exactly(store: RunStore) -> None:
    run = store.create_run(RunInfo(name="merge", target="x"))
    a, _ = _samples(2000, 1, seed=1)
    b, _ = _samples(2000, 1, seed=2)
    store.write_samples(run, a)
    store.write_samples(run, b)
    reference = hdr.new_histogram()
    reference.add(a[0].latency[METRIC])
    reference.add(b[0].latency[METRIC])
    row = store.latency(run, [METRIC]).iloc[0]
    assert row["count"] == 100
    assert row["p99_us"] == reference.get_value_at_percentile(99)
    assert store.counters(run)["value"].tolist() == [100]
    g = store.gauges(run).iloc[0]
    assert (g["sum"], g["count"]) == (4, 6)


def test_merged_histogram_uses_rollups_exactly(store: RunStore) -> None:
    run = store.create_run(RunInfo(name="long", target="x"))
    samples, _ = _samples(3590, 200, seed=3, per_second=5)  # spans minute boundaries 3600, 3660, 3720
    reference = hdr.new_histogram()
    for s in samples:
        if 3595 <= s.second < 3777:
            reference.add(s.latency[METRIC])
    store.write_samples(run, samples)
    merged = store.merged_histogram(run, METRIC, 3595, 3777)
    assert merged.get_total_count() == reference.get_total_count() == 5 * 182
    for p in (50, 90, 99, 100):
        assert merged.get_value_at_percentile(p) == reference.get_value_at_percentile(p)
    assert store.merged_histogram(run, METRIC).get_total_count() == 1000
    assert store.merged_histogram(run, METRIC, 3600, 3660).get_total_count() == 300
    assert store.merged_histogram(run, "missing").get_total_count() == 0
    minutes = store.latency(run, [METRIC], resolution=60)
    assert minutes["count"].sum() == 1000


def test_reader_follows_a_live_writer(location: str) -> None:
    path = location
    with RunStore.open(path) as writer:
        run = writer.create_run(RunInfo(name="live", target="x"))
        with RunStore.open(path, readonly=True) as reader:
            assert reader.get_run(run).is_live()
            assert reader.time_range(run) is None
            samples, _ = _samples(50, 2, seed=4)
            writer.write_samples(run, samples)
            assert reader.time_range(run) == (50, 51)
            with pytest.raises(reader._backend.database_errors):
                reader._backend.run("DELETE FROM runs")


def test_stale_run_is_detected(store: RunStore) -> None:
    run = store.create_run(RunInfo(name="dead", target="x", started_at=100.0))
    record = store.get_run(run)
    assert record.is_stale(now=1000.0) and not record.is_live(now=1000.0)


def test_errors_name_the_problem(tmp_path: Path, store: RunStore) -> None:
    with pytest.raises(StoreNotFound, match="no run store"):
        RunStore.open(tmp_path / "absent.sqlite3", readonly=True)
    garbage = tmp_path / "garbage.sqlite3"
    garbage.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreCorrupt):
        RunStore.open(garbage, readonly=True)
    other = tmp_path / "other.sqlite3"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.commit()
    with pytest.raises(StoreCorrupt, match="not a wsgauge run store"):
        RunStore.open(other, readonly=True)
    newer = tmp_path / "newer.sqlite3"
    RunStore.open(newer).close()
    db = sqlite3.connect(newer)
    db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    db.commit()
    db.close()
    with pytest.raises(SchemaTooNew, match="upgrade"):
        RunStore.open(newer, readonly=True)
    with pytest.raises(RunNotFound):
        store.get_run(12345)


def test_retention_cli(location: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = location
    with RunStore.open(path) as s:
        ids = []
        for i in range(4):
            run = s.create_run(RunInfo(name=f"run{i}", target="x", started_at=1000.0 + i))
            s.write_samples(run, _samples(1000 + i, 1, seed=i)[0])
            s.finish_run(run, "completed", ended_at=1001.0 + i)
            ids.append(run)
    assert runs_cli(["--results", str(path), "list"]) == 0
    assert "run3" in capsys.readouterr().out
    assert runs_cli(["--results", str(path), "prune", "--keep", "2", "--dry-run"]) == 0
    assert str(ids[:2][::-1]) in capsys.readouterr().out
    assert runs_cli(["--results", str(path), "prune", "--keep", "2"]) == 0
    assert runs_cli(["--results", str(path), "delete", "999"]) == 2
    assert runs_cli(["--results", str(path), "delete", str(ids[3])]) == 0
    with RunStore.open(path, readonly=True) as s:
        assert [r.id for r in s.list_runs()] == [ids[2]]
        assert s.latency(ids[0]).empty
    assert runs_cli(["--results", str(tmp_path / "nope.sqlite3"), "list"]) == 2
    assert "no run store" in capsys.readouterr().err
