"""The gate's note on runs whose load generator, not the target, set a share of the latency.

The note never changes the verdict: the gate already drops the seconds the open model fell behind its
schedule (``send_lag``), and a generator-bound second still measured the target too (the stall adds to its
latency; it does not replace it). What the note says is that a tail percentile compared here is partly the
generator's, so a regression (or a pass) near the limit is worth a rerun on a quieter machine before it is
believed. Runs recorded before health gauges existed give no note.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from charts.health import GATE_NOTE_SHARE, GeneratorHealth, generator_health
from reports.data import RunData

__all__ = ["generator_note", "incomplete_note", "run_health"]


def run_health(data: RunData) -> GeneratorHealth | None:
    """The run's generator health per row of its gauges: per second as the store keeps them, per window
    in a coarsened report's block (a very long run read from the store has per-minute latency rows but
    per-second gauges, so the unit is read off the gauges themselves)."""
    t = data.gauges["t"].to_numpy(dtype=np.int64)
    unit = data.resolution if len(t) and not np.any(t % max(data.resolution, 1)) else 1
    return generator_health(data.gauges, unit)


def generator_note(role: str, runs: Sequence[RunData]) -> str | None:
    """The note for one side (``baseline`` / ``candidate``) when its runs, together, were generator-bound
    in more than :data:`~charts.health.GATE_NOTE_SHARE` of the seconds (windows) judged; else ``None``."""
    judged = [(data, h) for data in runs if (h := run_health(data)) is not None]
    total = sum(h.judged for _, h in judged)
    bound = sum(h.bound for _, h in judged)
    if not total or bound / total <= GATE_NOTE_SHARE:
        return None
    reasons: dict[str, int] = {}
    for _, h in judged:
        for word, n in h.reasons:
            reasons[word] = reasons.get(word, 0) + n
    why = ", ".join(f"{word} {n:,}" for word, n in sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0])))
    units = {h.units for _, h in judged}
    unit = units.pop() if len(units) == 1 else "seconds or windows"
    where = judged[0][0].label if len(judged) == 1 else f"{len(judged)} runs"
    return (
        f"{role}: latency in {bound:,} of {total:,} {unit} ({bound / total:.0%}, {where}) is the load "
        f"generator's, not the target's: {why}; above {GATE_NOTE_SHARE:.0%} its tail percentiles are partly "
        "the generator's (the verdict is unchanged; rerun on a quieter machine to be sure)"
    )


def incomplete_note(role: str, runs: Sequence[RunData]) -> str | None:
    """The note for one side whose runs include an incomplete one (a worker's last samples never reached the
    master): its counts and throughput undercount, so a throughput or error-count rule may fire on what is
    missing, not on the target. A note, like the generator's: the verdict is unchanged."""
    short = [
        (data.label, reason) for data in runs if (reason := (data.run.get("summary") or {}).get("incomplete"))
    ]
    if not short:
        return None
    which = "; ".join(f"{label}: {reason}" for label, reason in short)
    return (
        f"{role}: {len(short)} of {len(runs)} runs incomplete ({which}); their counts and throughput"
        " undercount (the verdict is unchanged; rerun to be sure)"
    )
