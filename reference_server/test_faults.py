"""TEST ONLY: faults a benchmark injects into the reference server to stand in for a slower build.

``--test-delay-ms`` slows every frame alike, which moves the median. A release gate's p99 rule needs a
candidate whose *tail* is worse while its median is not: :class:`TailDelay` hands a random share of
inbound frames a fixed extra delay (``bench/gate_aa_ab.py --penalty-shape p99`` sets it per run from the
baseline run's histogram). Pure: the connection driver asks :meth:`TailDelay.draw` per frame and queues
the frame behind its delay.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["TailDelay"]


@dataclass(frozen=True)
class TailDelay:
    """Delay a random ``share`` (0 < share ≤ 1) of inbound frames by ``delay_ms`` milliseconds."""

    share: float
    delay_ms: float

    def __post_init__(self) -> None:
        if not 0.0 < self.share <= 1.0:
            raise ValueError(f"tail delay share must be in (0, 1], not {self.share}")
        if not self.delay_ms > 0.0:
            raise ValueError(f"tail delay must be positive milliseconds, not {self.delay_ms}")

    @classmethod
    def parse(cls, text: str) -> TailDelay:
        """``"SHARE:MS"``, e.g. ``"0.03:2.5"`` (3 % of frames, 2.5 ms each); ValueError names the problem."""
        share, sep, delay = text.partition(":")
        try:
            if not sep:
                raise ValueError
            return cls(float(share), float(delay))
        except ValueError as exc:
            detail = f": {exc}" if str(exc) else ""
            raise ValueError(f"tail delay must be SHARE:MS (e.g. 0.03:2.5), not {text!r}{detail}") from None

    def draw(self, uniform: Callable[[], float] = random.random) -> float:
        """The extra delay of the next frame, in seconds: ``delay_ms`` with probability ``share``, else 0."""
        return self.delay_ms / 1000.0 if uniform() < self.share else 0.0
