"""Which seconds of a run the load generator, not the target, limited: one pure function over stored gauges.

A stalled generator sends late (in the open model every latency counts from the schedule, so the stall is in
it), offers less load than asked (closed model), and -- where the kernel does not stamp arrivals (TLS, not
Linux) -- reads replies late: what it measured in such a second is partly its own. The generating processes
store their health per second (``generator.*`` gauges of :mod:`runstore.names`, one observation per
process); a second is *generator-bound* when its worst process crossed any of these limits:

* :data:`LOOP_LAG_LIMIT_MS`: an event-loop lag of 5 ms or more. An idle gevent hub wakes 0-1 ms late; 5 ms
  is as large as a loopback round trip's p99 at moderate load, so a reply read in such a second may carry as
  much generator delay as target latency.
* :data:`GC_PAUSE_LIMIT_MS`: a single garbage collection of 5 ms or more (the lag probe wakes every 10 ms and
  can miss a pause shorter than that, so pauses are judged on their own).
* :data:`CPU_LIMIT`: a process using 90 % of a core or more (Locust's own warning level): replies queue
  behind the generator's work, and the lag probe, itself queued, understates it.

The monitor, the report, the console summary and the gate call :func:`generator_bound` on
``RunStore.gauges(run_id, GENERATOR_GAUGES)`` (or ``gauges_bucketed``: a bucket is bound when any second in
it was, since ``max`` is kept exactly).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import numpy as np

from runstore.lazy import LazyModule
from runstore.names import (
    GAUGE_GENERATOR_CPU,
    GAUGE_GENERATOR_GC_MAX_PAUSE,
    GAUGE_GENERATOR_LOOP_LAG,
)

if TYPE_CHECKING:
    import pandas as pd
else:
    pd = LazyModule("pandas")  # imported by the first summary, not by a load generator's start

__all__ = ["CPU_LIMIT", "GC_PAUSE_LIMIT_MS", "LOOP_LAG_LIMIT_MS", "generator_bound"]

LOOP_LAG_LIMIT_MS: Final = 5.0
"""Worst event-loop lag of a second (ms) from which the second is generator-bound."""
GC_PAUSE_LIMIT_MS: Final = 5.0
"""Longest garbage collection of a second (ms) from which the second is generator-bound."""
CPU_LIMIT: Final = 0.9
"""CPU share of one core, in the busiest process, from which the second is generator-bound."""

_LIMITS: Final = (
    (GAUGE_GENERATOR_LOOP_LAG, LOOP_LAG_LIMIT_MS, "loop_lag_ms"),
    (GAUGE_GENERATOR_GC_MAX_PAUSE, GC_PAUSE_LIMIT_MS, "gc_max_pause_ms"),
    (GAUGE_GENERATOR_CPU, CPU_LIMIT, "cpu"),
)


def generator_bound(gauges: pd.DataFrame) -> pd.DataFrame:
    """Judge every second (or bucket) that has generator health gauges.

    Args:
        gauges: rows ``name, t, max`` (what ``RunStore.gauges`` or ``gauges_bucketed`` return; other
            gauges are ignored).

    Returns:
        One row per ``t``, ordered: ``t``, the worst process's ``loop_lag_ms``, ``gc_max_pause_ms`` and
        ``cpu`` (NaN where not recorded), ``bound`` (any limit reached) and ``reasons`` (the limits reached,
        comma-separated, e.g. ``"loop_lag_ms,cpu"``; empty when not bound). Empty when the run has no health
        gauges (recorded before they existed): nothing is known, nothing is flagged.
    """
    columns = ["t", *(label for _, _, label in _LIMITS), "bound", "reasons"]
    names = [name for name, _, _ in _LIMITS]
    rows = gauges[gauges["name"].isin(names)] if len(gauges) else gauges
    if not len(rows):
        return pd.DataFrame(columns=columns)
    wide = rows.pivot_table(index="t", columns="name", values="max", aggfunc="max").sort_index()
    out = pd.DataFrame({"t": wide.index.to_numpy()})
    reached = []
    for name, limit, label in _LIMITS:
        values = wide[name].to_numpy(dtype=np.float64) if name in wide else np.full(len(wide), np.nan)
        out[label] = values
        reached.append((label, values >= limit))  # NaN >= limit is False
    out["bound"] = np.logical_or.reduce([hit for _, hit in reached])
    out["reasons"] = [",".join(label for label, hit in reached if hit[i]) for i in range(len(out))]
    return out[columns]
