"""The load generator's own health, per second: event-loop lag, garbage-collection pauses, CPU share.

No tuning removes every stall of a Python load generator, so each generating process says, second by second,
how much of what it measured may be its own: a stalled gevent hub sends late (in the open model, every
latency counts from the schedule) and, where the kernel does not stamp arrivals, reads replies late.
:class:`GeneratorHealth` collects, in the process that measures:

* **loop lag**: a probe greenlet asks to wake every :attr:`GeneratorHealth.probe_interval` seconds and
  records how late it woke (the worst per second). An idle hub wakes 0-1 ms late (``epoll_wait``'s timeout
  has millisecond resolution); a hub busy with a long callback, a GC pause or a CPU-starved process wakes
  later by the length of the stall.
* **GC pauses**: ``gc.callbacks`` time every collection (``perf_counter`` at ``start`` and ``stop``): the
  total and the longest pause per second, and collections per generation.
* **CPU share**: process CPU time (all threads) over wall time between two samples; 1.0 is one full core.

Each closed second becomes gauges of the process's :class:`~runstore.samples.SampleAggregator` (one
observation per process and second, names in :mod:`runstore.names`), so workers merge as gauges do: ``max``
is the worst worker, ``sum / count`` the mean worker, ``count`` the workers reporting. Which seconds to
distrust is :func:`runstore.health.generator_bound`'s job, on the stored gauges.

:class:`GcPolicy` is the interpreter policy of a load generator: garbage collection and the GIL's switch
interval (see its docstring).
"""

from __future__ import annotations

import gc
import math
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import gevent

from runstore.names import (
    GAUGE_GENERATOR_CPU,
    GAUGE_GENERATOR_GC_MAX_PAUSE,
    GAUGE_GENERATOR_GC_PAUSE,
    GAUGE_GENERATOR_LOOP_LAG,
    generator_gc_counter,
)
from runstore.samples import SampleAggregator

__all__ = ["GC_THRESHOLDS", "SWITCH_INTERVAL", "GcPolicy", "GeneratorHealth"]

GC_THRESHOLDS = (5000, 20, 100)
"""``gc.set_threshold`` of a load generator (CPython's defaults: 700, 10, 10).

A young collection (generation 0) scans the objects allocated since the last one that are still alive. In
steady state a message's allocations (frames, dicts, tuples) die by reference counting before any pass sees
them, so a higher first threshold means fewer passes over few survivors; while users are being spawned most
young objects survive, and a pass costs in proportion to the threshold (20,000 took 6-13 ms; 5,000 takes a
quarter of that). The higher second and third thresholds keep the older passes rare; after
:meth:`GcPolicy.settle` froze the users and their connections, the old generations hold little to scan.
"""

SWITCH_INTERVAL = 0.0005
"""``sys.setswitchinterval`` of a load generator, in seconds (CPython's default: 0.005).

A second thread of the process (the store writer, a worker's histogram encoder: a few ms of numpy, hdrh and
SQLite bindings a second) keeps the GIL until the hub has waited a whole switch interval for it: with the
default, the hub -- every user of the process -- can stand still up to 5 ms once a second, the send lag's
p99 at tens of thousands of sends a second. At 0.5 ms the thread's work is cut into slices the schedule
absorbs; the hub, which rarely waits for the GIL otherwise, pays nothing.
"""

_POLICY_ENV = "WSGAUGE_GC_POLICY"
"""``default`` keeps CPython's collector as it is (to measure what the policy buys: bench/truth_wire.py)."""


class GcPolicy:
    """A load generator's interpreter policy: freeze what start-up and spawning made, collect less, and take
    the GIL back from other threads sooner (:data:`SWITCH_INTERVAL`).

    CPython's full collections scan every tracked object of the process: 15-40 ms (up to 240 ms measured) in
    a worker holding hundreds of connections, a stall of every user at once. ``gc.freeze()`` moves every
    object alive at that moment to a permanent generation that no collection scans again (reference
    counting still frees them): the modules, classes and Locust's machinery at start-up, then the users,
    greenlets and sockets once spawning has settled. Freezing is a constant-time list splice, so it never
    pauses; cyclic garbage made before a freeze is kept (a load generator's start-up makes little).

    ``WSGAUGE_GC_POLICY=default`` leaves the collector and the switch interval untouched.
    """

    def __init__(self) -> None:
        self.enabled = os.environ.get(_POLICY_ENV, "").strip().lower() != "default"
        self._frozen_users = -1
        self._last_users = -1
        self.freezes = 0

    def start(self) -> None:
        """Apply the policy (at the first sample tick: start-up is over, spawning is under way)."""
        if not self.enabled:
            return
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)
        sys.setswitchinterval(SWITCH_INTERVAL)
        self.freezes += 1

    def settle(self, users: int) -> None:
        """Called once a second with the live user count: freeze again once a changed count holds still."""
        if not self.enabled:
            return
        if users == self._last_users and users != self._frozen_users:
            gc.freeze()
            self._frozen_users = users
            self.freezes += 1
        self._last_users = users


class GeneratorHealth:
    """Per-second loop lag, GC pauses and CPU share of this process (see the module docstring).

    Args:
        clock: unix time (which second a measurement belongs to).
        cpu_clock: process CPU seconds, all threads.
        probe_interval: seconds between loop-lag probes (100 wake-ups a second cost ~0.5 % of a core).
    """

    def __init__(
        self,
        clock: Callable[[], float] = time.time,
        cpu_clock: Callable[[], float] = time.process_time,
        probe_interval: float = 0.01,
    ) -> None:
        self._clock = clock
        self._cpu_clock = cpu_clock
        self.probe_interval = probe_interval
        self._seconds: dict[int, list[float]] = {}  # second -> [worst lag s, gc total s, gc max s]
        self._collections: dict[int, list[int]] = {}  # second -> collections per generation
        self._gc_start = 0.0
        self._probe: gevent.Greenlet | None = None
        self._last_wall = clock()
        self._last_cpu = cpu_clock()

    # -- collecting ------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the lag probe and the GC timing (idempotent)."""
        if self._on_gc not in gc.callbacks:
            gc.callbacks.append(self._on_gc)
        if self._probe is None or self._probe.dead:
            self._probe = gevent.spawn(self._probe_loop)
        self._last_wall = self._clock()
        self._last_cpu = self._cpu_clock()

    def stop(self) -> None:
        """Stop collecting (what was collected stays until :meth:`record`)."""
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)
        probe, self._probe = self._probe, None
        if probe is not None and probe is not gevent.getcurrent():
            probe.kill(block=False)

    def _bucket(self, second: int) -> list[float]:
        bucket = self._seconds.get(second)
        if bucket is None:
            self._seconds[second] = bucket = [0.0, 0.0, 0.0]
        return bucket

    def observe_lag(self, lag: float, at: float) -> None:
        """Note an event-loop lag of ``lag`` seconds observed at unix time ``at``."""
        bucket = self._bucket(math.floor(at))
        if lag > bucket[0]:
            bucket[0] = lag

    def observe_gc(self, generation: int, pause: float, at: float) -> None:
        """Note a collection of ``generation`` that paused the process ``pause`` seconds, at unix ``at``."""
        second = math.floor(at)
        bucket = self._bucket(second)
        bucket[1] += pause
        if pause > bucket[2]:
            bucket[2] = pause
        counts = self._collections.get(second)
        if counts is None:
            self._collections[second] = counts = [0, 0, 0]
        counts[min(generation, 2)] += 1

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_start = time.perf_counter()
        else:
            self.observe_gc(info["generation"], time.perf_counter() - self._gc_start, self._clock())

    def _probe_loop(self) -> None:
        interval = self.probe_interval
        perf = time.perf_counter
        while True:
            due = perf() + interval
            gevent.sleep(interval)
            lag = perf() - due
            self.observe_lag(lag if lag > 0.0 else 0.0, self._clock())

    # -- reporting -------------------------------------------------------------------------------------------

    def record(self, aggregator: SampleAggregator, now: float | None = None, *, final: bool = False) -> None:
        """Write the health of every closed second (all of them if ``final``) as gauges and counters.

        Called by the sampler once a second. CPU share is measured over the time since the last call and
        belongs to the second in the middle of it.
        """
        now = self._clock() if now is None else now
        cpu = self._cpu_clock()
        wall = now - self._last_wall
        if wall > 0:
            mid = self._last_wall + wall / 2
            aggregator.set_gauge(GAUGE_GENERATOR_CPU, [(cpu - self._last_cpu) / wall], at=mid)
        self._last_wall, self._last_cpu = now, cpu
        limit = math.inf if final else math.floor(now)
        for second in sorted(s for s in self._seconds if s < limit):
            lag, total, longest = self._seconds.pop(second)
            aggregator.set_gauge(GAUGE_GENERATOR_LOOP_LAG, [lag * 1e3], at=second)
            aggregator.set_gauge(GAUGE_GENERATOR_GC_PAUSE, [total * 1e3], at=second)
            aggregator.set_gauge(GAUGE_GENERATOR_GC_MAX_PAUSE, [longest * 1e3], at=second)
            for generation, count in enumerate(self._collections.pop(second, ())):
                if count:
                    aggregator.incr(generator_gc_counter(generation), count, at=second)
