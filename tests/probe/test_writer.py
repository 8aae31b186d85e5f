"""The store writer thread and the probe's run, on real SQLite files."""

from __future__ import annotations

import io
import time
from pathlib import Path

from probe._backoff import Backoff
from probe._runs import open_probe_run
from probe._writer import RetentionPolicy, StoreEvent, StoreWriter
from runstore.samples import SampleAggregator
from runstore.store import RunInfo, RunStore

T0 = 1_800_000_000


def _seconds(first: int, n: int):
    agg = SampleAggregator(clock=lambda: float(first))
    for s in range(first, first + n):
        agg.record_latency("pong", 1000.0 + s - first, at=s + 0.5)
        agg.incr("sent.ping", at=s + 0.5)
        agg.set_gauge("users.connected", [1.0, 1.0], at=s + 0.5)
    samples, _ = agg.drain()
    return samples


def _wait(predicate, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("timed out")


def test_one_run_per_probe_name_continued_on_reopen(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    with RunStore.open(path) as store:
        first, continued = open_probe_run(store, "prod", "ws://h/ws", {}, {})
        assert not continued
        other, _ = open_probe_run(store, "staging", "ws://h2/ws", {}, {})
        store.create_run(RunInfo(name="prod", target="x"))  # a load run of the same name
    with RunStore.open(path) as store:
        again, continued = open_probe_run(store, "prod", "ws://h/ws", {}, {})
        assert continued and again == first and other != first  # a load run named "prod" is not the probe's
        assert store.get_run(first).kind == "probe"


def test_writes_samples_and_events_then_survives_a_full_disk_and_catches_up(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    store = RunStore.open(path)
    run_id, _ = open_probe_run(store, "p", "ws://h/ws", {}, {})
    err = io.StringIO()
    writer = StoreWriter(store, run_id, err=err, backoff=Backoff(base=0.05, cap=0.2, jitter=0.0))
    writer.start()
    writer.submit(_seconds(T0, 5), [StoreEvent(T0 + 1, "probe-a", "connected")])
    _wait(lambda: writer.written_batches == 1)

    # The disk fills up (SQLite's own SQLITE_FULL, by capping the file at its current size).
    pages = store._db.execute("PRAGMA page_count").fetchone()[0]
    store._db.execute(f"PRAGMA max_page_count = {pages}")
    writer.submit(_seconds(T0 + 5, 200), [StoreEvent(T0 + 6, "disconnected > 30s", "alert_firing", "{}")])
    _wait(lambda: writer.failing)
    writer.submit(_seconds(T0 + 205, 5), [])
    time.sleep(0.5)  # several retries, all failing
    assert err.getvalue().count("cannot write the run store") == 1  # said once, not once per retry
    assert "full" in err.getvalue()

    store._db.execute("PRAGMA max_page_count = 1073741823")  # space again
    _wait(lambda: not writer.failing and writer.written_batches == 3)
    writer.stop()
    assert "run store writes resumed (0 s of samples were dropped)" in err.getvalue()

    with RunStore.open(path, readonly=True) as reader:
        latency = reader.latency(run_id, ["pong"])
        events = reader.events(run_id)
        run = reader.get_run(run_id)
    assert list(latency.t) == list(range(T0, T0 + 210))  # nothing lost
    assert list(events.kind) == ["connected", "alert_firing"]
    assert run.status == "running"  # resumable by the next start


def test_retention_is_applied_when_the_store_has_it_and_said_once_when_not(tmp_path: Path) -> None:
    calls = []

    class V2Store:
        def apply_retention(self, run_id, *, keep_seconds, keep_minutes):
            calls.append((run_id, keep_seconds, keep_minutes))

    policy = RetentionPolicy(keep_seconds_s=10.0, keep_minutes_s=20.0)
    assert policy.apply(V2Store(), 7) is True  # type: ignore[arg-type]
    assert calls == [(7, 10.0, 20.0)]
    with RunStore.open(tmp_path / "s.sqlite3") as store:
        assert policy.apply(store, 1) is hasattr(store, "apply_retention")


def test_the_writer_applies_retention_to_the_real_store(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    store = RunStore.open(path)
    run_id, _ = open_probe_run(store, "p", "ws://h/ws", {}, {})
    old = int(time.time()) // 3600 * 3600 - 3 * 3600  # three hours ago, on an hour
    policy = RetentionPolicy(keep_seconds_s=3600.0, keep_minutes_s=7200.0, every_s=0.0)
    writer = StoreWriter(store, run_id, retention=policy, err=io.StringIO())
    writer.submit(_seconds(old, 120), [])
    writer.start()
    writer.stop()
    with RunStore.open(path, readonly=True) as reader:
        seconds = reader.latency(run_id, ["pong"])
        minutes = reader.latency(run_id, ["pong"], resolution=60)
        hours = reader.latency(run_id, ["pong"], resolution=3600)
    assert seconds.empty  # older than an hour: gone
    assert minutes.empty  # older than two hours: gone too; the hour roll-up answers
    assert list(hours.t) == [old] and hours["count"].sum() == 120  # nothing of the counts lost
