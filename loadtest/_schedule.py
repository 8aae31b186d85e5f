"""When users act: the open model's fixed-rate schedule, think-time distributions (pure, seeded), and how
the back end's notification rate is shared between Locust processes.

Closed model (Locust's default): a user waits a think time *after* each reply, so a slow server slows the
offered load down and hides its own slowness ("coordinated omission"). Open model (``--open-rate``): each
user sends on a schedule fixed in advance, whatever the server does. Latency is measured from the
*scheduled* send time, so time spent waiting behind a slow reply or a busy generator counts, and the send lag
(actual - scheduled) is recorded: when the generator itself saturates, the lag grows and shows it.

Nothing here reads a clock or sleeps; the user passes the times in.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping

__all__ = ["OpenSchedule", "ThinkTime", "rate_shares", "students_per_worker"]


class OpenSchedule:
    """A fixed-rate send schedule for one user.

    Args:
        rate: sends per second (> 0).
        start: time of the first send, on the caller's clock (unix seconds in the users).
        rng: seeded random source; with ``poisson=True`` it draws exponential gaps, and it also picks the
            phase of the first send so that users of one spawn wave do not all send in the same instant.
        poisson: ``False``: exactly ``1/rate`` apart (deterministic); ``True``: a Poisson process
            of that rate.

    A schedule never skips: if the caller falls behind, :meth:`next_send_at` keeps returning times in the
    past, and the caller sends them back to back. That backlog is the send lag the open model exists to show.
    """

    def __init__(self, rate: float, start: float, rng: random.Random, *, poisson: bool = False) -> None:
        if not (rate > 0 and math.isfinite(rate)):
            raise ValueError(f"rate must be a positive number, got {rate!r}")
        self.rate = rate
        self.interval = 1.0 / rate
        self.poisson = poisson
        self._rng = rng
        self._next = start + rng.uniform(0.0, self.interval)
        self.count = 0
        """Sends handed out so far."""

    def peek(self) -> float:
        """The next scheduled send time, without consuming it."""
        return self._next

    def next_send_at(self) -> float:
        """Return the next scheduled send time and advance the schedule past it."""
        at = self._next
        gap = self._rng.expovariate(self.rate) if self.poisson else self.interval
        self._next = at + gap
        self.count += 1
        return at

    def behind(self, now: float) -> int:
        """How many scheduled sends are already due at ``now`` (0 when on time)."""
        if now < self._next:
            return 0
        if self.poisson:
            return 1  # gaps are random: at least the next one is due
        return int((now - self._next) * self.rate) + 1

    @staticmethod
    def lag(actual: float, scheduled: float) -> float:
        """Send lag: how late the send went out (>= 0; early sends count as on time)."""
        return actual - scheduled if actual > scheduled else 0.0


class ThinkTime:
    """Think times from realistic distributions, scaled by ``--think-scale`` and seeded per user.

    Human pauses are right-skewed: most are short, a few are long. :meth:`lognormal` suits "time to type and
    send the next message" (parametrised by its median), :meth:`exponential` suits memoryless waits such as
    "time until the user looks at a notification".

    Args:
        rng: the user's seeded random source.
        scale: multiplies every draw (``0``: no thinking at all).
        cap: no single think time exceeds ``cap`` seconds (before scaling), so a rare draw never
            parks a user for the rest of a short run.
    """

    def __init__(self, rng: random.Random, scale: float = 1.0, cap: float = 60.0) -> None:
        if scale < 0 or not math.isfinite(scale):
            raise ValueError(f"scale must be a number >= 0, got {scale!r}")
        self._rng = rng
        self.scale = scale
        self.cap = cap

    def lognormal(self, median: float, sigma: float = 0.6) -> float:
        """A lognormal pause with the given median (seconds) and shape ``sigma``."""
        if self.scale == 0:
            return 0.0
        value = self._rng.lognormvariate(math.log(median), sigma)
        return min(value, self.cap) * self.scale

    def exponential(self, mean: float) -> float:
        """An exponential pause with the given mean (seconds)."""
        if self.scale == 0:
            return 0.0
        value = self._rng.expovariate(1.0 / mean)
        return min(value, self.cap) * self.scale


def rate_shares(total_rate: float, students: Mapping[str, int]) -> dict[str, float]:
    """Split ``total_rate`` over processes in proportion to their students (none: 0 for everyone).

    Every student is equally likely to get the next notification, wherever it runs, and the shares add up
    to ``total_rate`` whenever there is a student at all.
    """
    total = sum(max(0, n) for n in students.values())
    if total <= 0 or total_rate <= 0:
        return {name: 0.0 for name in students}
    return {name: total_rate * max(0, n) / total for name, n in students.items()}


def students_per_worker(
    user_classes_count: Mapping[str, Mapping[str, int]], students: frozenset[str]
) -> dict[str, int]:
    """``{worker id: students}`` from each worker's ``{user class name: count}``."""
    return {
        worker: sum(int(n) for name, n in counts.items() if name in students)
        for worker, counts in user_classes_count.items()
    }
