"""Moving samples from the users to the run store: sampling, shipping, merging, writing.

Data flow, per process::

    users ──record──▶ SampleAggregator ◀──gauges── Sampler (1 Hz) ──drain──▶ sink
    sink = StoreSink (local run: write now)  |  Outbox (worker: ship with the next report_to_master)

and on the master::

    worker_report / wsgauge_final message ──parse_payload──▶ merge_samples ──▶ StoreSink

Only closed seconds are drained (``drain(before=now)``), each once; the store adds a second that arrives in
pieces (two workers, or a late report) to what it already holds, so nothing is held back waiting for the
slowest worker and a worker that dies loses only what it had not shipped yet.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from loadtest._health import GcPolicy, GeneratorHealth
from loadtest._process_state import Runtime
from runstore.names import CONNECTION_STATES, GAUGE_QUEUE_SIZE, state_gauge
from runstore.samples import (
    ConnectionEvent,
    SampleAggregator,
    SampleFormatError,
    SecondSample,
    merge_samples,
)
from runstore.store import RunStore

__all__ = [
    "PAYLOAD_KEY",
    "Outbox",
    "Payload",
    "StoreSink",
    "StoreThread",
    "parse_payload",
    "snapshot_gauges",
    "tick",
]

log = logging.getLogger(__name__)

PAYLOAD_KEY = "wsgauge"
"""Key of wsgauge's part in a worker's ``report_to_master`` data."""

Sink = Callable[[list[SecondSample], list[ConnectionEvent]], None]


def snapshot_gauges(aggregator: SampleAggregator, users: Iterable[Any], at: float) -> int:
    """Record this second's per-user gauges: ``queue_size`` and ``users.<state>`` (1 for its state, else 0).

    Returns:
        The number of users observed.
    """
    sizes: list[float] = []
    states: list[str] = []
    for user in list(users):
        sizes.append(float(getattr(user, "queue_size", 0) or 0))
        states.append(getattr(user, "connection_state", "disconnected"))
    aggregator.set_gauge(GAUGE_QUEUE_SIZE, sizes, at=at)
    for state in CONNECTION_STATES:
        aggregator.set_gauge(state_gauge(state), [1.0 if s == state else 0.0 for s in states], at=at)
    return len(states)


HEALTH_KEY = "generator_health"
"""Key of the process's :class:`~loadtest._health.GeneratorHealth` in ``Runtime.extra``."""


def tick(state: Runtime, sink: Sink, now: float | None = None, *, final: bool = False) -> None:
    """One sampler step: snapshot the gauges and the generator's health, drain the closed seconds (all if
    ``final``), sink them.

    On the real clock (no ``now`` given: the sampler's ticks) the first tick of a process starts its health
    probes and applies the load generator's GC policy (start-up is over: the users are being spawned), the
    next ones let the policy freeze the users once spawning settles, and the final one stops the probes. A
    given ``now`` (a replayed or simulated time) records no health: the probes measure real time only.
    """
    if now is None:
        now = time.time()
        _record_health(state, now, final)
    snapshot_gauges(state.aggregator, state.users, now)
    samples, events = state.aggregator.drain(before=None if final else now)
    if samples or events:
        sink(samples, events)


GC_POLICY_KEY = "gc_policy"
"""Key of the process's :class:`~loadtest._health.GcPolicy` in ``Runtime.extra``."""


def _record_health(state: Runtime, now: float, final: bool) -> None:
    health = state.extra.get(HEALTH_KEY)
    if health is None:
        if final:
            return
        state.extra[HEALTH_KEY] = health = GeneratorHealth()
        health.start()  # first, so that the policy's own effects are measured too
        state.extra[GC_POLICY_KEY] = policy = GcPolicy()
        policy.start()
    else:
        state.extra[GC_POLICY_KEY].settle(len(state.users))
    health.record(state.aggregator, now, final=final)
    if final:
        health.stop()


def seconds_until_next_tick(now: float, offset: float = 0.02) -> float:
    """Sleep so that ticks land just after each wall-clock second starts."""
    return max(0.0, math.floor(now) + 1.0 + offset - now)


class Outbox:
    """A worker's samples waiting for the next report to the master (as wire dicts: small, msgpack-safe).

    A batch handed to the outbox is held raw until its encoding comes back from the store thread, so the
    greenlet that handed it may be killed meanwhile (the sampler, when the run stops mid-tick: its seconds
    were already drained from the aggregator) and the batch still ships: the final :meth:`take` encodes
    whatever is still in flight.

    Args:
        run_id: the run the samples belong to.
        tag: the worker's process tag.
        thread: where to encode the histograms (a few ms per metric and second; default: inline).
    """

    def __init__(self, run_id: int, tag: str, thread: StoreThread | None = None) -> None:
        self.run_id = run_id
        self.tag = tag
        self._samples: list[dict[str, Any]] = []
        self._in_flight: list[list[SecondSample]] = []
        """Batches being encoded on the store thread (identity matters: a final take may claim one)."""
        self._events: list[list[Any]] = []
        self.shipped_samples = 0
        self.sent_final = False
        self._call = thread.call if thread is not None else _inline

    def __call__(self, samples: list[SecondSample], events: list[ConnectionEvent]) -> None:
        self._events.extend(e.to_wire() for e in events)
        if not samples:
            return
        batch = list(samples)
        self._in_flight.append(batch)
        encoded = self._call(_encode, batch)
        for i, pending in enumerate(self._in_flight):
            if pending is batch:  # not claimed by a final take meanwhile
                del self._in_flight[i]
                self._samples.extend(encoded)
                break

    def __len__(self) -> int:
        return len(self._samples) + len(self._events)

    def take(self, final: bool = False) -> dict[str, Any]:
        """Empty the outbox into one payload.

        A periodic take leaves batches still being encoded for the next one; the final take encodes them
        here, so that nothing handed to the outbox is left behind.
        """
        samples, self._samples = self._samples, []
        if final:
            in_flight, self._in_flight = self._in_flight, []
            for batch in in_flight:
                samples.extend(_encode(batch))
        events, self._events = self._events, []
        self.shipped_samples += len(samples)
        self.sent_final = self.sent_final or final
        return {"run_id": self.run_id, "tag": self.tag, "final": final, "samples": samples, "events": events}


def _encode(samples: list[SecondSample]) -> list[dict[str, Any]]:
    return [s.to_wire() for s in samples]


class Payload:
    """A parsed worker payload."""

    __slots__ = ("events", "final", "run_id", "samples", "tag")

    def __init__(
        self, run_id: int, tag: str, final: bool, samples: list[SecondSample], events: list[ConnectionEvent]
    ) -> None:
        self.run_id = run_id
        self.tag = tag
        self.final = final
        self.samples = samples
        self.events = events


def parse_payload(data: Mapping[str, Any]) -> Payload:
    """Parse what :meth:`Outbox.take` produced, on the master.

    Raises:
        SampleFormatError: if the payload is malformed.
    """
    try:
        samples = [SecondSample.from_wire(w) for w in data["samples"]]
        events = [
            ConnectionEvent(float(ts), str(user), str(kind), str(detail))
            for ts, user, kind, detail in data["events"]
        ]
        return Payload(int(data["run_id"]), str(data["tag"]), bool(data.get("final")), samples, events)
    except (KeyError, TypeError, ValueError) as exc:
        raise SampleFormatError(f"malformed wsgauge payload: {exc!r}") from exc


class StoreThread:
    """Runs the run store's calls, in order, on one native thread instead of the gevent hub.

    Writing a second of samples merges, summarises and encodes every metric's histogram twice (the second and
    its minute roll-up): 10-40 ms of SQLite, zlib and numpy per second. On the hub that would stall every
    user of the process for that long, once a second -- the send lag's p99. On a thread the hub keeps running
    (SQLite, zlib and numpy release the GIL; Python parts yield it every switch interval).

    Call :meth:`call` from a greenlet: it waits for the result cooperatively.
    """

    def __init__(self) -> None:
        from gevent.threadpool import ThreadPool

        self._pool = ThreadPool(1)

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run ``fn(*args, **kwargs)`` on the store thread and return its result (or raise its exception)."""
        return self._pool.spawn(fn, *args, **kwargs).get()

    def close(self) -> None:
        self._pool.kill()


def _inline(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return fn(*args, **kwargs)


class StoreSink:
    """Writes samples of one run into the store, merging seconds that arrive in pieces.

    Args:
        store: the run store, open for writing (one writer per run: the master or the only process).
        run_id: the run.
        thread: where to run the writes (default: inline, in the caller).
    """

    def __init__(self, store: RunStore, run_id: int, thread: StoreThread | None = None) -> None:
        self.store = store
        self.run_id = run_id
        self.seconds_written = 0
        self.events_written = 0
        self.errors = 0
        self._call = thread.call if thread is not None else _inline

    def __call__(self, samples: list[SecondSample], events: list[ConnectionEvent]) -> None:
        self._call(self._write, samples, events)

    def _write(self, samples: list[SecondSample], events: list[ConnectionEvent]) -> None:
        merged = merge_samples(samples)
        if merged:
            self.store.write_samples(self.run_id, merged)
            self.seconds_written += len(merged)
        if events:
            self.store.write_events(self.run_id, events)
            self.events_written += len(events)
