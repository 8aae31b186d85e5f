"""A synthetic probe run (kind ``probe``) with known properties, written through the real run-store API.

What ``wsgauge-probe`` writes (issue 13): a few probe users, one round of probes every ``period`` seconds
(ping RTT, a chat round trip, a progress sync), the users' connection state and outbound queue, and alert
events around an outage. Used by the Live view's tests and by ``bench/monitor_scale.py`` (a simulated week).
Seeded: the same arguments give the same run.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path

from runstore.names import METRIC_DELIVERY_CHAT, METRIC_PONG, ack_metric, sent_counter
from runstore.samples import SampleAggregator
from runstore.store import RunInfo, RunStore
from tests.synthetic_runs import set_connection_gauges, write_drained

__all__ = ["PROBE_METRICS", "SyntheticProbe", "store_has_kinds", "write_synthetic_probe"]

PROBE_METRICS: tuple[str, ...] = (METRIC_PONG, ack_metric("chat_message"), METRIC_DELIVERY_CHAT)
RULE = "p99 ack:chat_message < 50 ms over 5 min"
DISCONNECTED_RULE = "disconnected > 30 s"


def store_has_kinds() -> bool:
    """Whether this wsgauge's run store records run kinds (schema v2: ``RunInfo.kind``)."""
    return "kind" in {f.name for f in dataclasses.fields(RunInfo)}


@dataclass(frozen=True)
class SyntheticProbe:
    run_id: int
    start: int
    seconds: int
    outage: tuple[int, int] | None


def write_synthetic_probe(
    path: Path,
    *,
    name: str = "probe prod-eu",
    start: int = 1_700_000_000,
    seconds: int = 3600,
    period: int = 5,
    users: int = 3,
    outage: tuple[int, int] | None = None,
    resolved: bool = True,
    host: str = "probe-host-1",
    tag: str = "production",
    build: str = "2.4.1",
    chunk_seconds: int = 3600,
    finished: bool = False,
    heartbeat_at: float | None = None,
    live: bool = False,
) -> SyntheticProbe:
    """Write a probe run of ``seconds`` to the store at ``path``.

    Args:
        period: seconds between probe rounds (one latency sample per metric per round).
        outage: ``(from, to)`` offsets where the probe users are disconnected (then reconnecting for one
            round): no latency, an ``alert_firing`` of :data:`DISCONNECTED_RULE` 30 s in, resolved at ``to``
            (unless ``resolved`` is false: still firing).
        finished: leave the run ``running`` (a probe never ends) unless true.
        heartbeat_at: the run's heartbeat (default: its last second).
        live: heartbeat now, when the run is written (a live probe, for the next 15 s).
    """
    if not store_has_kinds():
        raise RuntimeError("this run store has no run kinds (schema v1): no probe runs")
    rng = random.Random(7)
    with RunStore.open(path) as store:
        run_id = store.create_run(
            RunInfo(
                name=name,
                target="wss://chat.example.test/ws",
                options={"probe": True, "period_s": period, "users": users},
                versions={"wsgauge": "test"},
                machine={"cpus": 2, "hostname": host},
                started_at=float(start),
                kind="probe",  # type: ignore[call-arg]  # schema v2
                host=host,  # type: ignore[call-arg]
                tag=tag,  # type: ignore[call-arg]
                build=build,  # type: ignore[call-arg]
            )
        )
        agg = SampleAggregator()
        for offset in range(0, seconds, period):
            at = start + offset + 0.5
            down = outage is not None and outage[0] <= offset < outage[1]
            back = outage is not None and outage[1] <= offset < outage[1] + period
            state = "disconnected" if down else "reconnecting" if back else "connected"
            if not down:
                slow = 1.0 + 0.5 * math.sin(offset / 3600.0)  # a daily-ish wave, so the chart has a shape
                for metric in PROBE_METRICS:
                    agg.record_latency(metric, rng.lognormvariate(math.log(900.0 * slow), 0.3), at=at)
                agg.incr(sent_counter("chat_message"), 1, at=at)
                agg.incr(sent_counter("ping"), 1, at=at)
            set_connection_gauges(agg, state, [rng.randint(0, 2) for _ in range(users)], at)
            if outage is not None and offset == outage[0]:
                for u in range(users):
                    agg.event("disconnected", f"probe-{u}", at=at)
            if outage is not None and offset == outage[0] + 30 - 30 % period:
                detail = json.dumps({"value_s": 30, "threshold_s": 30})
                agg.event("alert_firing", DISCONNECTED_RULE, detail, at=at)
            if outage is not None and offset == outage[1]:
                for u in range(users):
                    agg.event("connected", f"probe-{u}", at=at + 1)
                if resolved:
                    agg.event("alert_resolved", DISCONNECTED_RULE, "{}", at=at + 1)
            if (offset // period + 1) % max(1, chunk_seconds // period) == 0:
                write_drained(store, run_id, agg)
        write_drained(store, run_id, agg)
        if finished:
            store.finish_run(run_id, "completed", ended_at=float(start + seconds))
        else:
            if live:
                heartbeat_at = time.time()
            store.heartbeat(run_id, now=float(start + seconds) if heartbeat_at is None else heartbeat_at)
    return SyntheticProbe(run_id, start, seconds, outage)
