"""How store_v1.sqlite3 was made, by the schema-v1 store code (commit 664ba66), from the repo root."""

import random
from pathlib import Path

from runstore.samples import SampleAggregator
from runstore.store import RunInfo, RunStore

p = Path("tests/runstore/data/store_v1.sqlite3")
p.unlink(missing_ok=True)
rng = random.Random(7)
with RunStore.open(p) as s:
    start = 1_700_001_234  # mid-hour: the run spans three hours
    run = s.create_run(
        RunInfo(
            name="v1-run",
            target="ws://127.0.0.1:1/ws",
            options={"users": 2},
            versions={"wsgauge": "0.1.0"},
            machine={"hostname": "oldbox", "cpus": 2},
            git_commit="abc1234",
            started_at=float(start),
        )
    )
    agg = SampleAggregator()
    for sec in range(start, start + 7800):
        if sec % 29:
            continue
        at = sec + 0.5
        agg.record_latency("pong", rng.lognormvariate(6, 0.5), at=at)
        agg.record_latency("ack:chat_message", rng.lognormvariate(7, 0.5), at=at)
        agg.incr("sent.chat_message", 2, at=at)
        agg.set_gauge("users.connected", [1, 1], at=at)
        agg.set_gauge("queue_size", [rng.randint(0, 3), 0], at=at)
    agg.event("connected", "u0", at=start + 0.1)
    samples, events = agg.drain()
    s.write_samples(run, samples)
    s.write_events(run, events)
    s.write_server_metrics(run, start + 5, {"wsgauge_connections_open": 2.0})
    s.finish_run(run, "completed", ended_at=float(start + 7800), summary={"ok": True})
    s.create_run(
        RunInfo(name="v1-live", target="x", machine={"hostname": "oldbox"}, started_at=float(start + 8000))
    )
s2 = RunStore.open(p)
s2.vacuum()
s2.close()
print(p.stat().st_size)
