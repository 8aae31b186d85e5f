"""What the monitor derived from runs that are no longer written, kept between requests: :class:`RunCache`.

Opening a finished 24-hour run reads and downsamples about 600,000 rows (0.4-0.5 s of server time on the
first-paint path); the answer cannot change while nothing writes the run, so a second page load, another
user or the same view after a zoom round trip is served from memory. Entries are keyed by the store's
identity and the run's record as read in the request (:func:`run_key`): every write to a run moves its
heartbeat, a finished run's end and status are fixed, and a store replaced by another file has another
inode, so a key never names data that has changed since. Live runs are never cached (:func:`run_key` is
``None``). ``max_age_s`` bounds what an out-of-band change (retention applied to a finished run, say) can
leave in view. The cache itself is pure: no I/O, thread safe (waitress serves requests on four threads).
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any, Final, TypeVar

from runstore.location import is_url

__all__ = ["DEFAULT_ENTRIES", "RunCache", "run_key", "store_identity"]

T = TypeVar("T")

DEFAULT_ENTRIES: Final = 24
"""Entries kept: a 24-hour run's timeline figure is 0.25 MB of JSON, 0.7 MB as Python objects."""
DEFAULT_MAX_AGE_S: Final = 600.0


def store_identity(location: Path | str) -> Hashable:
    """What names one store: a URL as given; a file by its path and inode (a store replaced by a new file
    at the same path, rebuilt or restored, is another store). ``None`` when the file cannot be stat'ed."""
    if is_url(location):
        return str(location)
    try:
        st = os.stat(location)
    except OSError:
        return None
    return (os.fspath(location), st.st_dev, st.st_ino)


def run_key(store: Hashable, run: Any, now: float | None = None) -> Hashable:
    """A cache key for what is derived from ``run`` (a :class:`runstore.store.RunRecord`), or ``None`` when
    the run is still being written (live) or the store has no identity: nothing about it may be cached."""
    if store is None or run.is_live(now):
        return None
    return (store, run.id, run.started_at, run.status, run.ended_at, run.heartbeat_at)


class RunCache:
    """A bounded, least-recently-used map from keys (built on :func:`run_key`) to derived values.

    ``entries=0`` disables it (every :meth:`get_or_make` computes): the first-paint benchmark's baseline.
    Values are shared between requests: callers must not mutate what they get (copy first).
    """

    def __init__(
        self,
        entries: int = DEFAULT_ENTRIES,
        max_age_s: float = DEFAULT_MAX_AGE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if entries < 0:
            raise ValueError("entries must be 0 (off) or more")
        self.entries = entries
        self.max_age_s = max_age_s
        self._clock = clock
        self._items: OrderedDict[Hashable, tuple[float, Any]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable) -> Any | None:
        """The value stored under ``key`` (and mark it recently used), or ``None``."""
        if key is None or not self.entries:
            return None
        with self._lock:
            item = self._items.get(key)
            if item is None or self._clock() - item[0] > self.max_age_s:
                self._items.pop(key, None)
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return item[1]

    def put(self, key: Hashable, value: Any) -> None:
        """Store ``value`` under ``key`` (a ``None`` key stores nothing), dropping the least recently used."""
        if key is None or not self.entries:
            return
        with self._lock:
            self._items[key] = (self._clock(), value)
            self._items.move_to_end(key)
            while len(self._items) > self.entries:
                self._items.popitem(last=False)

    def get_or_make(self, key: Hashable, make: Callable[[], T]) -> T:
        """The cached value of ``key``, or ``make()`` (stored unless ``key`` is ``None``)."""
        value = self.get(key)
        if value is None:
            value = make()
            self.put(key, value)
        return value

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        return len(self._items)
