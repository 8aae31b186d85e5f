"""Successful replies logged into Locust's stats in batches, when nothing but those stats listens.

Locust records a request by firing ``events.request``; its runner's listener then logs it twice (the named
entry and the total), each log a handful of Python calls: at tens of thousands of replies a second that was a
sixth of a worker core, the largest cost after the socket writes. :class:`StatsBatch` logs each successful
reply once, into a private :class:`locust.stats.StatsEntry` per name, and a few times a second merges those
into the named entry and the total with Locust's own :meth:`~locust.stats.StatsEntry.extend`: the same
counts, response-time buckets, min/max, sums, requests per second and content lengths as one event per reply,
at most :attr:`StatsBatch.interval` later.

It does so only while the runner's own stats listener is the request event's only listener: a plugin, a
custom listener or a test that listens gets every event, as always. Failures always fire events (they carry
the exception, and are rare).

Locust is not imported here (importing it monkey-patches the process, and the client works without): an
environment whose ``stats`` are Locust's has imported it already.
"""

from __future__ import annotations

import logging
import sys
import weakref
from typing import Any

__all__ = ["StatsBatch", "flush_all", "stats_batch"]

logger = logging.getLogger(__name__)

_LOCUST_RUNNER = "locust.runners"


def _request_stats_class() -> type | None:
    module = sys.modules.get("locust.stats")
    return getattr(module, "RequestStats", None)


def _is_request_stats(stats: object) -> bool:
    cls = _request_stats_class()
    return cls is not None and isinstance(stats, cls)


class StatsBatch:
    """Batched success logging for one Locust ``Environment`` (see the module docstring).

    Args:
        environment: the Locust environment whose ``stats`` receive the batches.
        request_type: the ``request_type`` (Locust's method column) of every batched request.

    Callers check :attr:`active` before :meth:`log`; something must call :meth:`flush` regularly (the
    client's timeout sweeper does, every :attr:`interval` seconds) and at the end of a test (registered on
    ``test_stop`` and ``quitting`` here).
    """

    interval = 0.25

    def __init__(self, environment: Any, request_type: str) -> None:
        self.environment = environment
        self.request_type = request_type
        self._pending: dict[str, Any] = {}  # name -> locust.stats.StatsEntry
        self._entry_class = sys.modules["locust.stats"].StatsEntry
        self.active = False
        """Log successes here instead of firing events; re-checked at every :meth:`flush`."""
        self._check()
        events = environment.events
        events.test_stop.add_listener(lambda **_: self.flush())
        events.quitting.add_listener(lambda **_: self.flush())

    def _check(self) -> None:
        stats = getattr(self.environment, "stats", None)
        handlers = getattr(self.environment.events.request, "_handlers", None)
        self.active = (
            _is_request_stats(stats)
            and bool(handlers)
            and all(getattr(h, "__module__", None) == _LOCUST_RUNNER for h in handlers)
        )

    def log(self, name: str, response_time: float, length: int) -> None:
        """Log one successful request of ``name`` (milliseconds, bytes), as Locust's listener would."""
        entry = self._pending.get(name)
        if entry is None:
            stats = self.environment.stats
            self._pending[name] = entry = self._entry_class(stats, name, self.request_type)
        entry.log(response_time, length)

    def flush(self) -> None:
        """Merge what was logged into Locust's stats; then re-check whether batching still applies."""
        pending, self._pending = self._pending, {}
        stats = self.environment.stats
        for name, entry in pending.items():
            if _is_request_stats(stats):
                stats.get(name, self.request_type).extend(entry)
                stats.total.extend(entry)
        self._check()


_batches: weakref.WeakKeyDictionary[Any, StatsBatch | None] = weakref.WeakKeyDictionary()


def stats_batch(environment: Any, request_type: str) -> StatsBatch | None:
    """The environment's :class:`StatsBatch` (one per environment), or ``None`` if it has no Locust stats."""
    try:
        return _batches[environment]
    except KeyError:
        pass
    except TypeError:  # not weak-referenceable: no batching
        return None
    batch = None
    if _is_request_stats(getattr(environment, "stats", None)):
        batch = StatsBatch(environment, request_type)
    _batches[environment] = batch
    return batch


def flush_all() -> None:
    """Flush every environment's batch (the client's sweeper calls this a few times a second)."""
    for batch in list(_batches.values()):
        if batch is not None:
            try:
                batch.flush()
            except Exception:  # Locust's stats must not stop the sweeper's timeouts
                logger.exception("merging batched Locust stats failed")
