"""Runs with the load generator's health gauges (and optionally a load shape), written through the store.

Each second gets ``ack:chat_message`` latencies, ``sent`` / ``recv`` counters, connected users and the
``generator.*`` gauges of :mod:`runstore.names` as one process records them; ``gc_seconds`` /
``cpu_seconds`` / ``lag_seconds`` (offsets) are made generator-bound by a 20 ms collection, 97 % of a core
or a 12 ms loop lag. ``health=False`` writes a run as recorded before health gauges existed.
"""

from __future__ import annotations

import math
import random
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runstore.names import (
    GAUGE_GENERATOR_CPU,
    GAUGE_GENERATOR_GC_MAX_PAUSE,
    GAUGE_GENERATOR_GC_PAUSE,
    GAUGE_GENERATOR_LOOP_LAG,
    ack_metric,
    received_counter,
    sent_counter,
    state_gauge,
)
from runstore.samples import SampleAggregator
from runstore.store import RunInfo, RunStore
from tests.synthetic_runs import write_drained

__all__ = ["TWO_STEPS", "HealthRun", "write_health_run"]

TWO_STEPS: Mapping[str, Any] = {
    "class": "TwoSteps",
    "stages": [
        {"duration": 3, "users": 2, "spawn_rate": 10},
        {"duration": 8, "users": 4, "spawn_rate": 10},
    ],
    "planned_peak_users": 4,
    "use_common_options": False,
}
"""What the lifecycle stores for tests/loadtest/shapes/two_steps.py."""


@dataclass(frozen=True)
class HealthRun:
    run_id: int
    start: int
    seconds: int


def write_health_run(
    path: Path,
    *,
    name: str = "health",
    start: int = 1_700_000_000,
    seconds: int = 40,
    users: int = 4,
    shape: Mapping[str, Any] | None = None,
    peak_users: int | None = None,
    health: bool = True,
    gc_seconds: Collection[int] = (),
    cpu_seconds: Collection[int] = (),
    lag_seconds: Collection[int] = (),
    seed: int = 1,
    incomplete: str | None = None,
) -> HealthRun:
    """Write one finished run and return where it is."""
    rng = random.Random(seed)
    options: dict[str, Any] = {"shape": dict(shape) if shape else None}
    options |= {"num_users": None, "spawn_rate": None} if shape else {"num_users": users, "spawn_rate": 2.0}
    with RunStore.open(path) as store:
        run_id = store.create_run(
            RunInfo(name=name, target="ws://127.0.0.1:8765/ws", options=options, started_at=float(start))
        )
        agg = SampleAggregator()
        for offset in range(seconds):
            at = start + offset + 0.5
            for _ in range(50):
                agg.record_latency(
                    ack_metric("chat_message"), rng.lognormvariate(math.log(900.0), 0.4), at=at
                )
            agg.incr(sent_counter("chat_message"), 50, at=at)
            agg.incr(received_counter("new_message"), 50, at=at)
            agg.set_gauge(state_gauge("connected"), [1.0] * users, at=at)
            if health:
                gc = 20.0 if offset in gc_seconds else 0.4
                agg.set_gauge(GAUGE_GENERATOR_GC_MAX_PAUSE, [gc], at=at)
                agg.set_gauge(GAUGE_GENERATOR_GC_PAUSE, [gc * 1.5], at=at)
                agg.set_gauge(GAUGE_GENERATOR_CPU, [0.97 if offset in cpu_seconds else 0.3], at=at)
                agg.set_gauge(GAUGE_GENERATOR_LOOP_LAG, [12.0 if offset in lag_seconds else 0.8], at=at)
        write_drained(store, run_id, agg)
        summary: dict[str, Any] = {"peak_users": peak_users if peak_users is not None else users}
        if incomplete:
            summary["incomplete"] = incomplete  # as the master marks a run missing a worker's last samples
        store.finish_run(run_id, "completed", ended_at=float(start + seconds), summary=summary)
    return HealthRun(run_id, start, seconds)
