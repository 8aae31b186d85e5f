"""How much run store a probe needs per day: simulated probe hours through the real core and store code.

The probe's own check logic (``probe._checks.ProbeChecks``, replies answered at a fixed 2 ms) runs on a
simulated clock at the default 5 s interval with the notification check on; every simulated second is
drained and written with ``RunStore.write_samples`` / ``write_events`` exactly as the probe's writer thread
does. Prints bytes per simulated day by table (per-second rows and per-minute roll-ups), and, when the
store has ``apply_retention``, the steady-state size under the default policy.

    python3 bench/probe_store_size.py [--hours 2] [--interval 5]
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from pathlib import Path

from probe._checks import Notify, ProbeChecks, Send
from probe._runs import open_probe_run
from probe._writer import RetentionPolicy, StoreEvent
from runstore.samples import SampleAggregator
from runstore.store import RunStore

T0 = 1_800_000_000


def simulate(store: RunStore, run_id: int, hours: float, interval: float, batch_s: int = 60) -> None:
    now = [float(T0)]
    agg = SampleAggregator(clock=lambda: now[0])
    checks = ProbeChecks(["probe-a", "probe-b"], agg, notify=True)
    checks.connection_up(0, now[0], 1500.0)
    checks.connection_up(1, now[0], 1500.0)
    next_round = float(T0)
    for second in range(T0, T0 + int(hours * 3600)):
        now[0] = second + 0.0
        if second >= next_round:
            next_round += interval
            reply_at = second + 0.002
            for action in checks.start_round(float(second)):
                if isinstance(action, Notify):
                    checks.http_done(action.token, 201, reply_at)
                    push = {"type": "notification_update", "data": {"title": action.body["title"]}}
                    checks.receive(1, push, reply_at)
                    continue
                assert isinstance(action, Send)
                frame = action.frame
                if frame["type"] == "ping":
                    checks.receive(action.user, {"type": "pong", "requestId": frame["requestId"]}, reply_at)
                elif frame["type"] == "chat_message":
                    checks.receive(0, {"type": "ack", "requestId": frame["requestId"]}, reply_at)
                    checks.receive(1, {"type": "new_message", "data": frame["message"]}, reply_at)
                else:
                    sync = {"type": "progress_sync", "data": frame["progress"]}
                    checks.receive(0, sync, reply_at)
                    checks.receive(0, {"type": "ack", "requestId": frame["requestId"]}, reply_at)
        checks.snapshot(second + 0.5, [0, 0])
        if (second + 1) % batch_s == 0:  # the writer thread writes each second; batching only saves fsyncs
            samples, events = agg.drain(before=second + 1)
            store.write_samples(run_id, samples)
            store.write_events(run_id, [StoreEvent(e.ts, e.user, e.kind, e.detail) for e in events])
    samples, events = agg.drain()
    store.write_samples(run_id, samples)
    store.write_events(run_id, [StoreEvent(e.ts, e.user, e.kind, e.detail) for e in events])


def table_bytes(path: Path) -> dict[str, int]:
    """Bytes per table and index (SQLite's dbstat), after a VACUUM."""
    db = sqlite3.connect(path)
    try:
        db.execute("VACUUM")
        rows = db.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name").fetchall()
    except sqlite3.OperationalError:  # SQLite built without dbstat: the whole file only
        rows = [("(file)", path.stat().st_size)]
    finally:
        db.close()
    return {name: int(size) for name, size in rows}


def store_bytes(store: RunStore) -> int:
    """Bytes in use after a VACUUM (pages minus free pages)."""
    db = store._db
    db.execute("VACUUM")
    page = db.execute("PRAGMA page_size").fetchone()[0]
    return (
        db.execute("PRAGMA page_count").fetchone()[0] - db.execute("PRAGMA freelist_count").fetchone()[0]
    ) * page


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--hours", type=float, default=4.0)
    parser.add_argument("--interval", type=float, default=5.0)
    args = parser.parse_args()
    policy = RetentionPolicy()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "probe.sqlite3"
        store = RunStore.open(path)
        run_id, _ = open_probe_run(store, "bench", "ws://127.0.0.1:1/ws", {}, {})
        empty = store_bytes(store)
        started = time.perf_counter()
        simulate(store, run_id, args.hours, args.interval)
        took = time.perf_counter() - started
        per_day = 24.0 / args.hours
        end = T0 + int(args.hours * 3600)
        everything = store_bytes(store) - empty
        print(f"simulated {args.hours:g} h at a {args.interval:g} s interval in {took:.1f} s")
        if not hasattr(store, "apply_retention"):
            print(f"all rows: {everything * per_day / 1e6:.2f} MB/day (this store has no retention)")
            return
        for table in ("latency", "counters", "gauges"):
            counts = store._db.execute(
                f"SELECT resolution, COUNT(*) FROM {table} WHERE run_id = ? GROUP BY resolution", (run_id,)
            ).fetchall()
            print(f"{table} rows per day by resolution:", {r: round(n * per_day) for r, n in counts})
        hour_latency_bytes = store._db.execute(
            "SELECT SUM(length(hist)) FROM latency WHERE run_id = ? AND resolution = 3600", (run_id,)
        ).fetchone()[0]
        print(f"per-hour latency histograms: {(hour_latency_bytes or 0) * per_day / 1e3:.1f} kB/day (blobs)")
        store.apply_retention(run_id, keep_seconds=0, keep_minutes=None, now=end)
        without_seconds = store_bytes(store) - empty
        store.apply_retention(run_id, keep_seconds=0, keep_minutes=0, now=end)
        hours_only = store_bytes(store) - empty
        store.close()
    seconds_day = (everything - without_seconds) * per_day / 1e6
    minutes_day = (without_seconds - hours_only) * per_day / 1e6
    hours_day = hours_only * per_day / 1e6
    keep_s, keep_m = policy.keep_seconds_s / 86400, policy.keep_minutes_s / 86400
    print(f"per-second rows: {seconds_day:7.2f} MB/day")
    print(f"per-minute rows: {minutes_day:7.2f} MB/day")
    print(f"per-hour rows + events: {hours_day:7.3f} MB/day")
    steady = seconds_day * keep_s + minutes_day * keep_m
    print(
        f"default retention ({keep_s:g} d seconds, {keep_m:g} d minutes, hours kept): {steady:.1f} MB"
        f" + {hours_day:.3f} MB per day of the probe's life ({hours_day * 365:.1f} MB a year)"
    )


if __name__ == "__main__":
    main()
