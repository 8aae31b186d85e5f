"""The load generator's health over a run or a range, in numbers and in one sentence.

:func:`runstore.health.generator_bound` judges each second (or window) from the ``generator.*`` gauges;
this counts them, names the limits reached, and says it the same way in the report banner, the monitor's
header, the console summary and the gate's note. A run recorded before the gauges existed has no rows: it
gives ``None`` and nothing is flagged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from runstore.health import generator_bound

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["GATE_NOTE_SHARE", "REASON_WORDS", "GeneratorHealth", "generator_health"]

REASON_WORDS: Final = {"loop_lag_ms": "loop lag", "gc_max_pause_ms": "GC", "cpu": "CPU"}
"""How each limit of :mod:`runstore.health` is named for people."""
GATE_NOTE_SHARE: Final = 0.05
"""The gate notes a side whose runs were generator-bound in more than this share of their seconds (or
windows): beyond one second in twenty, the tail percentiles the gate compares are measurably the
generator's (a p99 is the worst 1 %; 5 % of bound seconds can hold all of it)."""


@dataclass(frozen=True)
class GeneratorHealth:
    """How many seconds (or windows) were generator-bound, and why."""

    judged: int
    """Seconds (windows) with health gauges."""
    bound: int
    """Of those, generator-bound."""
    reasons: tuple[tuple[str, int], ...]
    """``(reason word, seconds)`` per limit reached at least once, worst first (``("GC", 3)``)."""
    unit_s: int = 1
    """Seconds per judged row: 1, or the window of a coarsened report."""
    bound_t: tuple[int, ...] = ()
    """The start of every bound second (window), for shading charts."""

    @property
    def share(self) -> float:
        """Bound / judged (0 when nothing was judged)."""
        return self.bound / self.judged if self.judged else 0.0

    @property
    def units(self) -> str:
        return "seconds" if self.unit_s == 1 else f"{self.unit_s}-s windows"

    @property
    def sentence(self) -> str:
        """``latency in 6 of 40 seconds is the load generator's, not the target's: GC 4, CPU 2``;
        empty when no second was bound."""
        if not self.bound:
            return ""
        why = ", ".join(f"{word} {n:,}" for word, n in self.reasons)
        return (
            f"latency in {self.bound:,} of {self.judged:,} {self.units} is the load generator's, "
            f"not the target's: {why}"
        )


def generator_health(
    gauges: pd.DataFrame, unit_s: int = 1, *, ends_run: bool = True
) -> GeneratorHealth | None:
    """Count the generator-bound rows of ``gauges`` (``name, t, max``; other gauges ignored).

    ``ends_run``: per-second rows reach the run's end (or a live run's latest second), whose last second
    is not judged; ``False`` for a range that stops before it.

    Returns:
        ``None`` when there are no health gauges (a run recorded before they existed).
    """
    judged = generator_bound(gauges)
    if not len(judged):
        return None
    if ends_run and unit_s <= 1 and len(judged) > 1:
        # The last second is not judged, as the gate drops it too: it is partial, and holds the run's
        # stopping (users disconnecting, the final flush), which stalls the loop with no reply waiting;
        # counting it would flag "1 of 8 seconds" in every short healthy run. A window (long runs) keeps
        # its seconds: one stopping second in one of hundreds of windows is not worth hiding the rest.
        judged = judged.iloc[:-1]
    bound = judged[judged["bound"]]
    counts: dict[str, int] = {}
    for reasons in bound["reasons"]:
        for reason in str(reasons).split(","):
            if reason:
                counts[REASON_WORDS.get(reason, reason)] = counts.get(REASON_WORDS.get(reason, reason), 0) + 1
    ordered = tuple(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
    return GeneratorHealth(
        judged=len(judged),
        bound=len(bound),
        reasons=ordered,
        unit_s=int(unit_s),
        bound_t=tuple(int(t) for t in bound["t"]),
    )
