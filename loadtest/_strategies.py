"""The seed's client strategies, done right: pure objects with the clock passed in.

The seed (``src/lib/optimizations.ts``) ships four client-side strategies; each has a bug that loses
messages or hides load. Here each one is a small I/O-free object that a user drives:

* :class:`Debouncer` -- progress updates: the latest update per ``(subject, topic)`` wins within the window.
  (The seed debounced *all* messages through one lodash ``debounce``: an update for another subject
  silently replaced the pending one.)
* :class:`Batcher` -- the ``batch`` envelope, flushed by size or by age. Nothing is dropped: a batch that
  could not be sent goes back to the front of the queue. (The seed emptied the batch even when the socket
  was not open.)
* :class:`OfflineCache` -- messages queued while disconnected, flushed *all*, in order, on reconnect; a send
  that fails mid-flush keeps itself and the rest queued. (The seed's flush called ``sendMessage(message)``
  with one argument instead of ``(ws, message)`` and then cleared the cache: everything was lost.)
* :class:`Backoff` -- reconnect delays: exponential with full jitter, capped, with a retry limit and a seeded
  RNG. (The seed used no jitter, so every client of a restarted server came back in lock step.)

The seed's fifth "optimisation", base64 "compression", makes frames a third *larger*; it is not reproduced
(see ``docs/loadtest.md``).

Times are seconds on whatever clock the caller uses (``time.monotonic()`` in the users); no method reads a
clock. A user's outbound queue size (the seed's ``messageQueueSize``) is ``len()`` of the three queues.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Hashable, Iterable
from typing import Any, Generic, TypeVar

__all__ = ["Backoff", "Batcher", "Debouncer", "OfflineCache", "batch_envelope"]

M = TypeVar("M")


class Debouncer(Generic[M]):
    """Keep only the latest message per key until the key's window closes.

    The window of a key opens with the first message offered for it and closes ``window_s`` later; the
    latest message offered for the key by then is the one released. A steady stream of updates therefore
    sends one update per key per window (it never starves, unlike a trailing-edge debounce).

    Args:
        window_s: window length in seconds (> 0).
    """

    def __init__(self, window_s: float) -> None:
        if window_s <= 0:
            raise ValueError(f"window_s must be > 0, got {window_s!r}")
        self.window_s = window_s
        self._pending: dict[Hashable, tuple[float, M]] = {}
        self.superseded = 0
        """Messages replaced by a later one for the same key (never sent, by design)."""

    def __len__(self) -> int:
        return len(self._pending)

    def offer(self, key: Hashable, message: M, now: float) -> None:
        """Queue ``message`` for ``key``, replacing any message still pending for that key.

        After calling this, call :meth:`due` no later than :meth:`next_deadline`.
        """
        entry = self._pending.get(key)
        if entry is None:
            self._pending[key] = (now + self.window_s, message)
        else:
            self.superseded += 1
            self._pending[key] = (entry[0], message)

    def next_deadline(self) -> float | None:
        """When the earliest window closes, or ``None`` if nothing is pending."""
        if not self._pending:
            return None
        return min(deadline for deadline, _ in self._pending.values())

    def due(self, now: float) -> list[M]:
        """Remove and return the messages whose window closed by ``now``, earliest first."""
        ready = [(d, k) for k, (d, _) in self._pending.items() if d <= now]
        if not ready:
            return []
        ready.sort(key=lambda item: item[0])
        return [self._pending.pop(k)[1] for _, k in ready]

    def drain(self) -> list[M]:
        """Remove and return every pending message, earliest window first (e.g. when stopping)."""
        items = sorted(self._pending.values(), key=lambda item: item[0])
        self._pending.clear()
        return [message for _, message in items]


def batch_envelope(messages: list[dict[str, Any]]) -> dict[str, Any]:
    """The seed's ``{"type": "batch", "messages": [...]}`` envelope around ``messages``."""
    return {"type": "batch", "messages": messages}


class Batcher(Generic[M]):
    """Collect messages into batches, released when full or when the oldest has waited ``max_age_s``.

    Args:
        size: messages per batch (>= 2).
        max_age_s: longest time the first message of a partial batch waits, in seconds (> 0).
    """

    def __init__(self, size: int, max_age_s: float) -> None:
        if size < 2:
            raise ValueError(f"a batch holds at least 2 messages, got size={size!r}")
        if max_age_s <= 0:
            raise ValueError(f"max_age_s must be > 0, got {max_age_s!r}")
        self.size = size
        self.max_age_s = max_age_s
        self._queue: deque[M] = deque()
        self._first_at: float | None = None

    def __len__(self) -> int:
        return len(self._queue)

    def add(self, message: M, now: float) -> list[M] | None:
        """Queue ``message``; return a full batch to send now, or ``None``.

        After a ``None``, call :meth:`due` no later than :meth:`next_deadline`. If sending a returned batch
        fails, give it back with :meth:`requeue`.
        """
        if not self._queue:
            self._first_at = now
        self._queue.append(message)
        if len(self._queue) >= self.size:
            return self._take(now)
        return None

    def next_deadline(self) -> float | None:
        """When the partial batch must leave, or ``None`` if the queue is empty."""
        if self._first_at is None:
            return None
        return self._first_at + self.max_age_s

    def due(self, now: float) -> list[M] | None:
        """Return the next batch if it is full or old enough by ``now``, else ``None``."""
        if not self._queue:
            return None
        assert self._first_at is not None
        if len(self._queue) >= self.size or now - self._first_at >= self.max_age_s:
            return self._take(now)
        return None

    def drain(self) -> list[M]:
        """Remove and return everything queued, in order (for a final flush or the offline cache)."""
        items = list(self._queue)
        self._queue.clear()
        self._first_at = None
        return items

    def requeue(self, batch: Iterable[M], now: float) -> None:
        """Put back a batch that could not be sent, ahead of anything queued since, in its order."""
        items = list(batch)
        if not items:
            return
        self._queue.extendleft(reversed(items))
        self._first_at = now if self._first_at is None else min(self._first_at, now)

    def _take(self, now: float) -> list[M]:
        queue = self._queue
        n = min(self.size, len(queue))
        batch = [queue.popleft() for _ in range(n)]
        # What stays behind starts a new partial batch.
        self._first_at = now if queue else None
        return batch


class OfflineCache(Generic[M]):
    """Messages queued while disconnected, sent in order on reconnect.

    Args:
        limit: most messages kept (``None``: unbounded). Past it the *oldest* is dropped and counted in
            :attr:`dropped`: a bounded cache must say what it lost.
    """

    def __init__(self, limit: int | None = None) -> None:
        if limit is not None and limit < 1:
            raise ValueError(f"limit must be >= 1 or None, got {limit!r}")
        self.limit = limit
        self._queue: deque[M] = deque()
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._queue)

    def push(self, message: M) -> None:
        """Queue one message (the newest goes last)."""
        self._queue.append(message)
        if self.limit is not None and len(self._queue) > self.limit:
            self._queue.popleft()
            self.dropped += 1

    def extend(self, messages: Iterable[M]) -> None:
        """Queue several messages in order."""
        for message in messages:
            self.push(message)

    def flush(self, send: Callable[[M], object]) -> int:
        """Send every queued message through ``send``, oldest first.

        ``send`` reports failure by raising or by returning ``False``; the message that failed and all after
        it stay queued, in order, for the next flush.

        Returns:
            How many messages were sent.

        Raises:
            Whatever ``send`` raised, after putting the failed message back.
        """
        sent = 0
        queue = self._queue
        while queue:
            message = queue.popleft()
            try:
                ok = send(message)
            except BaseException:
                queue.appendleft(message)
                raise
            if ok is False:
                queue.appendleft(message)
                break
            sent += 1
        return sent


class Backoff:
    """Reconnect delays: exponential growth, full jitter, a cap and a retry limit.

    Attempt ``n`` (0-based) waits ``uniform(0, min(max_s, base_s * 2**n))`` ("full jitter", AWS
    Architecture Blog, *Exponential Backoff And Jitter*): clients of a restarted server spread out instead of
    reconnecting in lock step.

    Args:
        base_s: ceiling of the first delay, seconds.
        max_s: cap on any delay's ceiling, seconds (>= ``base_s``).
        retries: attempts before giving up (``0``: never retry).
        rng: seeded random source, so that a run repeats.
    """

    def __init__(self, base_s: float, max_s: float, retries: int, rng: random.Random) -> None:
        if base_s < 0 or max_s < base_s:
            raise ValueError(f"need 0 <= base_s <= max_s, got base_s={base_s!r} max_s={max_s!r}")
        if retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries!r}")
        self.base_s = base_s
        self.max_s = max_s
        self.retries = retries
        self._rng = rng
        self.attempt = 0
        """Attempts made since the last :meth:`reset`."""

    @property
    def exhausted(self) -> bool:
        """``True`` once ``retries`` attempts were made without a :meth:`reset`."""
        return self.attempt >= self.retries

    def ceiling(self, attempt: int) -> float:
        """The upper bound of attempt ``attempt``'s delay: ``min(max_s, base_s * 2**attempt)``."""
        if attempt >= 64:  # 2**64 * base overflows nothing in Python, but is past any cap
            return self.max_s
        return min(self.max_s, self.base_s * (1 << attempt))

    def next_delay(self) -> float | None:
        """The delay before the next attempt, or ``None`` if the retry limit is reached."""
        if self.exhausted:
            return None
        delay = self._rng.uniform(0.0, self.ceiling(self.attempt))
        self.attempt += 1
        return delay

    def reset(self) -> None:
        """Start over (after a successful connection)."""
        self.attempt = 0
