"""The fixed check schedule: when each round of checks is due, independent of how long checks take.

Open model, as in the load test: a check's latency counts from the time it was *due*, so a probe process
that stalled (GC, a busy host) shows the stall instead of hiding it (no coordinated omission).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["CheckScheduler", "Due"]


@dataclass(frozen=True)
class Due:
    """A round of checks that is due."""

    at: float
    """The scheduled time (unix seconds): latencies count from here."""
    skipped: int
    """Earlier rounds that were missed entirely (the process was suspended for more than an interval)."""


class CheckScheduler:
    """Rounds every ``interval`` seconds from ``start``: ``start, start + interval, ...``.

    Args:
        interval: seconds between rounds (> 0).
        start: the time of the first round.
    """

    def __init__(self, interval: float, start: float) -> None:
        if not interval > 0 or not math.isfinite(interval):
            raise ValueError("the check interval must be a positive number of seconds")
        self.interval = interval
        self._start = start
        self._next = 0

    @property
    def next_at(self) -> float:
        """When the next round is due."""
        return self._start + self._next * self.interval

    def poll(self, now: float) -> Due | None:
        """The round due at or before ``now`` (once), or ``None`` if none is due yet.

        Rounds more than one interval late are not run late: only the newest is, and the others are
        counted in :attr:`Due.skipped`.
        """
        if now < self.next_at:
            return None
        newest = math.floor((now - self._start) / self.interval)
        skipped = newest - self._next
        self._next = newest + 1
        return Due(self._start + newest * self.interval, skipped)
