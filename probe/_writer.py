"""The store writer: a thread that owns the run store, so SQLite never blocks the probe's event loop.

The event loop hands it closed seconds and events (:meth:`StoreWriter.submit`, never blocks); the thread
writes them, heartbeats the run and applies the retention policy. When a write fails mid-run (disk full, file
gone read-only) it says so once on stderr, keeps what it could not write in a bounded buffer, and retries
with backoff; when writes succeed again it says so and catches up. It never raises into the probe.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import sqlite3
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from probe._backoff import Backoff
from runstore.location import redacted
from runstore.samples import SecondSample
from runstore.store import RunStore, StoreError

__all__ = ["HEARTBEAT_S", "RetentionPolicy", "StoreEvent", "StoreWriter"]

log = logging.getLogger(__name__)

HEARTBEAT_S = 2.0
"""How often the run's heartbeat is written (readers call a run stale after 15 s without one)."""


@dataclass(frozen=True)
class StoreEvent:
    """A row of the events table: connection events and the probe's ``alert_firing``/``alert_resolved``."""

    ts: float
    user: str
    kind: str
    detail: str = ""


@dataclass(frozen=True)
class RetentionPolicy:
    """How long each resolution of a probe's series is kept.

    Per-second rows for ``keep_seconds_s`` (default 1 day: the monitor's 15-minute and 24-hour windows at
    full resolution), per-minute roll-ups for ``keep_minutes_s`` (default 30 days: the 7-day window);
    the store keeps per-hour roll-ups for ever. Checked every ``every_s``. ``docs/probe.md`` gives the
    store size this bounds.
    """

    keep_seconds_s: float = 86400.0
    keep_minutes_s: float = 30 * 86400.0
    every_s: float = 3600.0

    def apply(self, store: RunStore, run_id: int) -> bool:
        """Apply the policy through the store's ``apply_retention``; ``False`` if this store has none."""
        apply_retention: Callable[..., Any] | None = getattr(store, "apply_retention", None)
        if apply_retention is None:
            return False
        apply_retention(run_id, keep_seconds=self.keep_seconds_s, keep_minutes=self.keep_minutes_s)
        return True


_Batch = tuple[Sequence[SecondSample], Sequence[StoreEvent]]


class StoreWriter:
    """Writes a run's samples and events from a thread of its own.

    Args:
        store: the open (writable) store; from now on only this writer's thread uses it.
        run_id: the probe's run.
        retention: the retention policy.
        buffer_seconds: at most this many unwritten batches are kept while writes fail (oldest dropped).
        err: where problems are reported for the operator.
        finish_status: the run's status after :meth:`stop` (``None``: leave it ``running``, for a store
            that cannot reopen a finished run).
    """

    def __init__(
        self,
        store: RunStore,
        run_id: int,
        *,
        retention: RetentionPolicy | None = None,
        buffer_seconds: int = 3600,
        err: TextIO = sys.stderr,
        backoff: Backoff | None = None,
        finish_status: str | None = None,
    ) -> None:
        self.store = store
        self.run_id = run_id
        self.retention = retention or RetentionPolicy()
        self._queue: queue.SimpleQueue[_Batch | None] = queue.SimpleQueue()
        self._unwritten: deque[_Batch] = deque(maxlen=buffer_seconds)
        self._err = err
        self._backoff = backoff or Backoff(base=1.0, cap=60.0)
        self._thread = threading.Thread(target=self._run, name="wsgauge-probe-store", daemon=True)
        self.failing = False
        self.written_batches = 0
        self.dropped_batches = 0
        self._retry_at = 0.0
        self._last_heartbeat = 0.0
        self._last_retention = 0.0
        self._retention_missing_said = False
        self._finish_status = finish_status

    def start(self) -> None:
        self._thread.start()

    def submit(self, samples: Iterable[SecondSample], events: Iterable[StoreEvent]) -> None:
        """Queue closed seconds and events for writing; returns at once (call from the event loop)."""
        batch = (list(samples), list(events))
        if batch[0] or batch[1]:
            self._queue.put(batch)

    def stop(self, timeout: float = 10.0) -> None:
        """Write what is queued (one last try), then stop the thread and close the store."""
        self._queue.put(None)
        self._thread.join(timeout)

    # --- the thread -------------------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while True:
                try:
                    item = self._queue.get(timeout=0.5)
                except queue.Empty:
                    item = ()  # type: ignore[assignment]
                if item is None:
                    self._drain_queue()
                    self._flush(final=True)
                    if self._finish_status is not None and not self.failing:
                        self.store.finish_run(self.run_id, self._finish_status)
                    return
                if item:
                    if len(self._unwritten) == self._unwritten.maxlen:
                        self.dropped_batches += 1
                    self._unwritten.append(item)
                self._flush()
        except (sqlite3.Error, StoreError, OSError) as exc:
            self._say(f"wsgauge-probe: cannot finish the run in {redacted(self.store.location)}: {exc}")
        finally:
            with contextlib.suppress(sqlite3.Error):
                self.store.close()

    def _drain_queue(self) -> None:
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item:
                self._unwritten.append(item)

    def _flush(self, final: bool = False) -> None:
        now = time.time()
        if self.failing and now < self._retry_at and not final:
            return
        try:
            while self._unwritten:
                samples, events = self._unwritten[0]
                if samples:
                    self.store.write_samples(self.run_id, samples)
                if events:
                    self.store.write_events(self.run_id, events)
                self._unwritten.popleft()
                self.written_batches += 1
            if now - self._last_heartbeat >= HEARTBEAT_S or final:
                self.store.heartbeat(self.run_id)
                self._last_heartbeat = now
            if now - self._last_retention >= self.retention.every_s:
                self._last_retention = now
                if not self.retention.apply(self.store, self.run_id) and not self._retention_missing_said:
                    self._retention_missing_said = True
                    self._say(
                        "wsgauge-probe: this run store has no retention (schema v1): the probe's series grows"
                        " without bound; upgrade wsgauge's run store"
                    )
        except (sqlite3.Error, StoreError, OSError) as exc:
            delay = self._backoff.next_delay()
            self._retry_at = now + delay
            if not self.failing:
                self._say(
                    f"wsgauge-probe: cannot write the run store {redacted(self.store.location)}: {exc};"
                    " probing goes on,"
                    f" keeping up to {self._unwritten.maxlen} s of samples in memory and retrying"
                    f" (next try in {delay:.0f} s)"
                )
            self.failing = True
            return
        if self.failing:
            self._say(
                f"wsgauge-probe: run store writes resumed ({self.dropped_batches} s of samples were dropped)"
            )
            self.failing = False
            self._backoff.reset()

    def _say(self, text: str) -> None:
        print(text, file=self._err, flush=True)
