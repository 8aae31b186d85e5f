"""Per-second samples: where measurements are aggregated, right where they are born.

A :class:`SampleAggregator` lives in each load-generating process. Users record latencies, counts, gauge
snapshots and connection events into it; every so often the process drains the closed seconds and ships them
(:meth:`SecondSample.to_wire`) to whoever writes the run store. Samples of the same second from different
processes merge exactly (:meth:`SecondSample.merge`): histogram counts add, counters add, gauge statistics
combine. Raw per-message rows never leave the process.

This module does no I/O and reads no clock unless it is given none.
"""

from __future__ import annotations

import math
import time
from array import array
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from hdrh.histogram import HdrHistogram

from runstore import histogram as hdr
from runstore.names import EVENT_KINDS

__all__ = [
    "ConnectionEvent",
    "GaugeStat",
    "SampleAggregator",
    "SampleFormatError",
    "SecondSample",
    "merge_samples",
]

Clock = Callable[[], float]


class SampleFormatError(ValueError):
    """A wire sample that is not well formed (from a worker of another version, or damaged)."""


@dataclass
class GaugeStat:
    """Sum, count, min and max of observations of one gauge in one second; mergeable."""

    sum: float = 0.0
    count: int = 0
    min: float = math.inf
    max: float = -math.inf

    @classmethod
    def of(cls, values: Sequence[float]) -> GaugeStat:
        """Summarise a snapshot of observations (one per user)."""
        if not values:
            return cls()
        return cls(float(sum(values)), len(values), float(min(values)), float(max(values)))

    @property
    def mean(self) -> float:
        """Mean observation, 0.0 when there were none."""
        return self.sum / self.count if self.count else 0.0

    def merge(self, other: GaugeStat) -> None:
        """Add ``other``'s observations to this one."""
        self.sum += other.sum
        self.count += other.count
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)

    def to_wire(self) -> list[float | None]:
        """``[sum, count, min, max]``; min and max are ``None`` when there were no observations."""
        if not self.count:
            return [self.sum, 0, None, None]
        return [self.sum, self.count, self.min, self.max]

    @classmethod
    def from_wire(cls, data: Sequence[Any]) -> GaugeStat:
        total, count, low, high = data
        if not count:
            return cls(float(total), 0)
        return cls(float(total), int(count), float(low), float(high))


@dataclass(frozen=True)
class ConnectionEvent:
    """One user's connection state transition."""

    ts: float
    user: str
    kind: str
    detail: str = ""

    def __post_init__(self) -> None:
        if self.kind not in EVENT_KINDS:
            raise ValueError(f"unknown event kind {self.kind!r}")

    def to_wire(self) -> list[Any]:
        return [self.ts, self.user, self.kind, self.detail]


@dataclass
class SecondSample:
    """Everything measured in one wall-clock second (``second`` = ``floor(unix time)``)."""

    second: int
    latency: dict[str, HdrHistogram] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)
    gauges: dict[str, GaugeStat] = field(default_factory=dict)

    def merge(self, other: SecondSample) -> None:
        """Add ``other`` (same second, e.g. another worker) into this sample, exactly."""
        if other.second != self.second:
            raise ValueError(f"cannot merge second {other.second} into {self.second}")
        for metric, hist in other.latency.items():
            mine = self.latency.get(metric)
            if mine is None:
                self.latency[metric] = mine = hdr.new_histogram()
            mine.add(hist)
        for name, value in other.counters.items():
            self.counters[name] = self.counters.get(name, 0) + value
        for name, stat in other.gauges.items():
            mine_stat = self.gauges.get(name)
            if mine_stat is None:
                self.gauges[name] = GaugeStat(stat.sum, stat.count, stat.min, stat.max)
            else:
                mine_stat.merge(stat)

    def to_wire(self) -> dict[str, Any]:
        """Return a msgpack/JSON-friendly dict (histograms encoded as text)."""
        return {
            "second": self.second,
            "latency": {m: hdr.encode(h).decode("ascii") for m, h in self.latency.items()},
            "counters": dict(self.counters),
            "gauges": {n: g.to_wire() for n, g in self.gauges.items()},
        }

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> SecondSample:
        """Parse :meth:`to_wire` output.

        Raises:
            SampleFormatError: if ``data`` is not a well-formed wire sample.
        """
        try:
            second = int(data["second"])
            latency = {str(m): hdr.decode(blob) for m, blob in data["latency"].items()}
            counters = {str(n): int(v) for n, v in data["counters"].items()}
            gauges = {str(n): GaugeStat.from_wire(g) for n, g in data["gauges"].items()}
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise SampleFormatError(f"malformed wire sample: {exc!r}") from exc
        return cls(second, latency, counters, gauges)


def merge_samples(samples: Iterable[SecondSample]) -> list[SecondSample]:
    """Merge samples by second (from any number of workers); returns them ordered by second.

    A second that came in one piece (every second of a single process) is returned as it is, not copied: the
    inputs are never modified, and copying cost a histogram allocation and addition per metric and second.
    """
    by_second: dict[int, list[SecondSample]] = {}
    for sample in samples:
        by_second.setdefault(sample.second, []).append(sample)
    merged = []
    for second in sorted(by_second):
        pieces = by_second[second]
        if len(pieces) == 1:
            merged.append(pieces[0])
            continue
        mine = SecondSample(second)
        for piece in pieces:
            mine.merge(piece)
        merged.append(mine)
    return merged


class SampleAggregator:
    """Collects one process's measurements into per-second samples.

    Args:
        clock: returns unix time in seconds; used when a call gives no ``at``.

    Call :meth:`drain` regularly (about once a second) and ship what it returns; memory stays bounded by the
    number of seconds between drains.

    Latencies are kept raw (8 bytes each, in an ``array``) until their second is drained, then recorded into
    its histogram in one vectorised pass (:func:`runstore.histogram.record_many`): the same histogram as one
    ``record_value`` per sample, without ~2 us of Python per sample on the hot path. The current second's
    sample and buffers are cached, so a call in the same second as the last costs two dict lookups.
    """

    def __init__(self, clock: Clock = time.time) -> None:
        self._clock = clock
        self._seconds: dict[int, SecondSample] = {}
        self._raw: dict[int, dict[str, array[float]]] = {}  # second -> metric -> latencies (us) to record
        self._events: list[ConnectionEvent] = []
        self._sample_second: int | None = None  # the last second _sample returned, and its sample
        self._sample_cached: SecondSample | None = None
        self._raw_second: int | None = None  # the last second record_latency wrote to, and its buffers
        self._raw_cached: dict[str, array[float]] = {}
        self.clamped = 0
        """Latencies outside the histogram range, clamped (also counted as ``latency_clamped``); known for a
        second once it is drained."""

    def _sample(self, at: float | None) -> SecondSample:
        second = math.floor(self._clock() if at is None else at)
        if second == self._sample_second:
            return self._sample_cached  # type: ignore[return-value]
        sample = self._seconds.get(second)
        if sample is None:
            self._seconds[second] = sample = SecondSample(second)
        self._sample_second, self._sample_cached = second, sample
        return sample

    def record_latency(self, metric: str, value_us: float, at: float | None = None) -> None:
        """Record one latency of ``metric`` in microseconds, in the second ``at`` (default: now).

        Raises:
            TypeError: ``value_us`` is not a number.
        """
        second = math.floor(self._clock() if at is None else at)
        if second == self._raw_second:
            buffers = self._raw_cached
        else:
            buffers = self._raw.get(second)  # type: ignore[assignment]
            if buffers is None:
                self._raw[second] = buffers = {}
            self._raw_second, self._raw_cached = second, buffers
        raw = buffers.get(metric)
        if raw is None:
            buffers[metric] = raw = array("d")
        raw.append(value_us)

    def incr(self, name: str, n: int = 1, at: float | None = None) -> None:
        """Add ``n`` to counter ``name`` in the second ``at`` (default: now)."""
        counters = self._sample(at).counters
        counters[name] = counters.get(name, 0) + n

    def set_gauge(self, name: str, values: Sequence[float], at: float | None = None) -> None:
        """Store this process's snapshot of gauge ``name`` (one observation per user) for a second.

        A later snapshot in the same second replaces the earlier one, so sampling jitter never double counts.
        """
        self._sample(at).gauges[name] = GaugeStat.of(values)

    def event(self, kind: str, user: str, detail: str = "", at: float | None = None) -> None:
        """Record a connection event (``kind`` from :data:`runstore.names.CONNECTION_EVENTS`)."""
        self._events.append(ConnectionEvent(self._clock() if at is None else at, user, kind, detail))

    def drain(self, before: float | None = None) -> tuple[list[SecondSample], list[ConnectionEvent]]:
        """Remove and return the samples of seconds that ended before ``before``, and all events.

        Args:
            before: a unix time; ``None`` drains everything (at the end of a run).

        Returns:
            The drained samples ordered by second, and the events in the order they were recorded.
        """
        seconds = self._seconds.keys() | self._raw.keys()
        if before is None:
            closed = sorted(seconds)
        else:
            limit = math.floor(before)
            closed = sorted(s for s in seconds if s < limit)
        samples = []
        for second in closed:
            sample = self._seconds.pop(second, None) or SecondSample(second)
            for metric, raw in self._raw.pop(second, {}).items():
                self._record(sample, metric, raw)
            samples.append(sample)
        if closed:  # the cached second may be among them: look it up afresh next time
            self._sample_second = self._raw_second = None
            self._sample_cached, self._raw_cached = None, {}
        events, self._events = self._events, []
        return samples, events

    def _record(self, sample: SecondSample, metric: str, raw: array[float]) -> None:
        hist = sample.latency.get(metric)
        if hist is None:
            sample.latency[metric] = hist = hdr.new_histogram()
        clamped = hdr.record_many(hist, np.frombuffer(raw, dtype=np.float64))
        if clamped:
            self.clamped += clamped
            sample.counters["latency_clamped"] = sample.counters.get("latency_clamped", 0) + clamped
