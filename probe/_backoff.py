"""Exponential backoff with full jitter, for reconnects, store retries and webhook retries.

No clock and no sleeping here: the caller asks for the next delay and waits it out itself.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

__all__ = ["Backoff"]


@dataclass
class Backoff:
    """Delays ``base * factor**n`` capped at ``cap``, each drawn uniformly from ``[d * (1 - jitter), d]``.

    Jitter spreads the reconnects of many probes (or users) after one outage, so they do not all hit a
    restarting server in the same millisecond ("full jitter" with a floor).

    Args:
        base: the first delay, seconds.
        cap: the longest delay, seconds.
        factor: growth per failure.
        jitter: the fraction of each delay that is random (0: none, 1: anywhere in ``[0, d]``).
        rng: the random source (a seeded ``random.Random`` in tests).
    """

    base: float = 0.5
    cap: float = 30.0
    factor: float = 2.0
    jitter: float = 0.5
    rng: random.Random = field(default_factory=random.Random)
    failures: int = 0
    """Failures since the last :meth:`reset`."""

    def __post_init__(self) -> None:
        if not 0 < self.base <= self.cap:
            raise ValueError("backoff needs 0 < base <= cap")
        if self.factor < 1 or not 0 <= self.jitter <= 1:
            raise ValueError("backoff needs factor >= 1 and 0 <= jitter <= 1")

    def ceiling(self) -> float:
        """The delay before jitter for the current number of failures."""
        return min(self.cap, self.base * self.factor ** min(self.failures, 64))

    def next_delay(self) -> float:
        """Count one more failure and return how long to wait before the next attempt."""
        ceiling = self.ceiling()
        self.failures += 1
        return ceiling * (1.0 - self.jitter * self.rng.random())

    def reset(self) -> None:
        """A success: the next failure waits ``base`` again."""
        self.failures = 0
