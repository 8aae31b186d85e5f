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


def simulate(store: RunStore, run_id: int, hours: float, interval: float) -> None:
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
        samples, events = agg.drain(before=second + 1)
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


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--hours", type=float, default=2.0)
    parser.add_argument("--interval", type=float, default=5.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "probe.sqlite3"
        store = RunStore.open(path)
        run_id, _ = open_probe_run(store, "bench", "ws://127.0.0.1:1/ws", {}, {})
        empty = table_bytes(path)
        started = time.perf_counter()
        simulate(store, run_id, args.hours, args.interval)
        took = time.perf_counter() - started
        full = table_bytes(path)
        per_day = 24.0 / args.hours
        print(f"simulated {args.hours:g} h at a {args.interval:g} s interval in {took:.1f} s")
        print(f"{'table/index':40s} {'MB/day':>8s}")
        for name in sorted(full):
            grown = (full[name] - empty.get(name, 0)) * per_day / 1e6
            if grown > 0.005:
                print(f"{name:40s} {grown:8.2f}")
        total = (sum(full.values()) - sum(empty.values())) * per_day / 1e6
        print(f"{'total':40s} {total:8.2f}")
        minute_rows = store._db.execute(
            "SELECT COUNT(*) FROM latency WHERE run_id = ? AND resolution = 60", (run_id,)
        ).fetchone()[0]
        second_rows = store._db.execute(
            "SELECT COUNT(*) FROM latency WHERE run_id = ? AND resolution = 1", (run_id,)
        ).fetchone()[0]
        print(
            f"latency rows per day: {second_rows * per_day:,.0f} per-second,"
            f" {minute_rows * per_day:,.0f} per-minute"
        )
        policy = RetentionPolicy()
        if hasattr(store, "apply_retention"):
            policy.apply(store, run_id)
            print("after apply_retention:", sum(table_bytes(path).values()) / 1e6, "MB")
        store.close()


if __name__ == "__main__":
    main()
