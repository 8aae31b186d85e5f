"""Cross-process delivery: Redis pub/sub, one channel per user, a doorbell in front of the store.

Every push a process routes (``new_message``, ``notification_update``, ``progress_sync``) is also
published on ``<prefix>u:<user id>``; a process subscribes to the channel of each user it holds
a connection of, for as long as it holds one, and hands what arrives to those connections.

Why pub/sub, and why per-user channels (``docs/server-stack.md`` has the measurements):

* **The store is the truth; Redis only rings the bell.** A push is published after its commit,
  and a message Redis drops (an outage, a subscriber reconnecting) is still in PostgreSQL. So a
  stream's persistence would only duplicate the store, with trimming and consumer offsets to
  manage; pub/sub's fire-and-forget is what we need, and it is the cheapest thing Redis does.
* **Per-user channels let Redis do the routing**: a publish reaches only the processes that hold
  the receiver (none: Redis drops it, the message waits in the inbox). A broadcast channel would
  make every process decode every push; a channel per process would need a user → process
  directory kept right through crashes.

What covers a lost push: inbox items carry per-user gap-free ``seq`` numbers
(:mod:`reference_server.pgstore`), so a session that sees ``seq`` N + 2 without N + 1 re-reads
the store; after the subscriber reconnects (Redis restarted or unreachable), **every** local
session re-reads its inbox (``on_resync``), because the last message before the outage has no
successor to reveal its gap. A publisher that failed to publish rings ``<prefix>resync`` once
Redis answers again, so processes whose subscription never broke catch up too. Live-only pushes
(``progress_sync``, the ``notification_update`` of a read) lost in an outage stay lost: the state
they carry is current in the store.

A process skips its own publications (it delivered them locally already): each payload starts
with the publisher's random 64-bit origin id. One loop pass's pushes leave in one Redis command
(a Lua script that publishes each channel's payload), a user's pushes of that pass in one payload.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import struct
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

__all__ = ["RedisBus"]

log = logging.getLogger(__name__)

_ORIGIN = struct.Struct("!Q")  # a payload starts with the publisher's origin id ...
_RECORD = struct.Struct("!QI")  # ... then records: seq + 1 (0: a live-only push), frame length, frame
#: Publishes ARGV[i] on channel KEYS[i]: one command for a whole loop pass of pushes.
_PUBLISH_ALL = "for i, ch in ipairs(KEYS) do redis.call('PUBLISH', ch, ARGV[i]) end return #KEYS"
_SUBSCRIBE_CHUNK = 500  # channels per SUBSCRIBE when resubscribing everything

#: ``deliver(user_id, seq, frame)``: hand a push from another process to the local connections.
Deliver = Callable[[str, "int | None", bytes], None]


class RedisBus:
    """Publishes pushes and receives other processes' pushes for locally connected users.

    Args:
        url: ``redis://host:port/db``.
        prefix: Key prefix of every channel (one deployment per prefix).
        deliver: Called on the loop for each push from another process.
        on_resync: Called on the loop when pushes may have been missed (after a reconnect, or
            a publisher's ``resync``): every local session should re-read its inbox.
        reconnect_delay: Seconds between attempts while Redis is unreachable.
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "wsgauge:",
        deliver: Deliver,
        on_resync: Callable[[], None],
        reconnect_delay: float = 0.25,
    ) -> None:
        self.url = url
        self.prefix = prefix
        self.origin = int.from_bytes(os.urandom(8), "big")
        self._deliver = deliver
        self._on_resync = on_resync
        self._reconnect_delay = reconnect_delay
        self._user_prefix = f"{prefix}u:"
        self._resync_channel = f"{prefix}resync".encode()
        # No hidden retries: a broken connection must surface here, so that we resync after it.
        opts: dict[str, Any] = {"retry": Retry(NoBackoff(), 0), "socket_connect_timeout": 2}
        self._pub = aioredis.Redis.from_url(url, **opts)
        self._script = self._pub.register_script(_PUBLISH_ALL)  # EVALSHA, loaded on first use
        self._sub_client = aioredis.Redis.from_url(url, **opts)
        self._pubsub: Any = None
        self._users: set[str] = set()  # users we want to hear about
        self._confirm: dict[bytes, list[asyncio.Future[None]]] = {}
        self._outgoing: dict[str, list[bytes]] = {}  # user -> records, this loop pass
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._publish_failed = False
        self._closing = False
        self.connected = False  #: the subscriber is connected and subscribed
        self._ever_connected = False
        self._first_connect = asyncio.Event()
        self.published = 0  #: pushes handed to Redis (metrics, benchmarks)
        self.received = 0  #: pushes from other processes delivered here
        self.resyncs = 0  #: times every local session was told to re-read the store

    # -- lifecycle ----------------------------------------------------------------------------

    async def open(self, timeout: float = 5.0) -> None:
        """Check that Redis answers, then start the subscriber and publisher tasks.

        Raises:
            redis.exceptions.RedisError: Redis cannot be reached at start.
        """
        try:
            await asyncio.wait_for(self._pub.ping(), timeout)
        except TimeoutError:
            raise RedisError(f"no answer to PING within {timeout:g} s") from None
        self._tasks = [
            asyncio.create_task(self._subscribe_loop(), name="wsgauge-bus-sub"),
            asyncio.create_task(self._publish_loop(), name="wsgauge-bus-pub"),
        ]
        try:
            await asyncio.wait_for(self._first_connect.wait(), timeout)
        except TimeoutError:
            await self.close()
            raise RedisError(f"no subscription confirmed by {self.url} within {timeout:g} s") from None

    async def close(self) -> None:
        """Publish what is queued, then stop."""
        self._closing = True
        self._wake.set()
        if self._tasks:
            sub, pub = self._tasks
            sub.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(pub, 2.0)
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await sub
        for client in (self._pub, self._sub_client):
            with contextlib.suppress(Exception):
                await client.aclose()

    # -- subscriptions ------------------------------------------------------------------------

    def channel(self, user_id: str) -> str:
        return self._user_prefix + user_id

    def add_user(self, user_id: str) -> asyncio.Future[None]:
        """Start receiving ``user_id``'s pushes; the future resolves once Redis confirmed.

        Load the user's backlog only after that: a push published before the subscription is
        active is in the backlog, one published after it arrives here.
        """
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._users.add(user_id)
        if self._pubsub is None or not self.connected:
            fut.set_result(None)  # (re)connecting: the resync that follows covers this user
            return fut
        channel = self.channel(user_id).encode()
        self._confirm.setdefault(channel, []).append(fut)
        task = asyncio.ensure_future(self._command(self._pubsub.subscribe, channel))
        task.add_done_callback(_log_failure)
        return fut

    def remove_user(self, user_id: str) -> None:
        """Stop receiving ``user_id``'s pushes (its last local connection has gone)."""
        self._users.discard(user_id)
        if self._pubsub is not None and self.connected:
            task = asyncio.ensure_future(self._command(self._pubsub.unsubscribe, self.channel(user_id)))
            task.add_done_callback(_log_failure)

    async def _command(self, method: Callable[..., Any], *channels: Any) -> None:
        try:
            await method(*channels)
        except (RedisError, OSError) as exc:  # the reader notices too, reconnects and resyncs
            log.debug("redis subscription command failed: %r", exc)

    async def _subscribe_loop(self) -> None:
        while True:
            pubsub = self._sub_client.pubsub(ignore_subscribe_messages=False)
            self._pubsub = pubsub
            try:
                users = [self.channel(u) for u in self._users]
                for start in range(0, len(users), _SUBSCRIBE_CHUNK):
                    await pubsub.subscribe(*users[start : start + _SUBSCRIBE_CHUNK])
                # Last: its confirmation comes after every user's, and then we resync.
                await pubsub.subscribe(self._resync_channel)
                await self._read(pubsub)
            except asyncio.CancelledError:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
                raise
            except (RedisError, OSError) as exc:
                if self.connected:
                    log.warning("redis subscriber lost (%r); reconnecting", exc)
            self.connected = False
            with contextlib.suppress(Exception):
                await pubsub.aclose()
            for futs in self._confirm.values():
                for fut in futs:
                    if not fut.done():
                        fut.set_result(None)
            self._confirm.clear()
            await asyncio.sleep(self._reconnect_delay)

    async def _read(self, pubsub: Any) -> None:
        resync_pending = True  # the first confirmation after (re)connecting triggers a resync
        origin = self.origin
        deliver = self._deliver
        record = _RECORD
        rsize = record.size
        osize = _ORIGIN.size
        skip = len(self._user_prefix)
        while True:
            msg = await pubsub.parse_response(block=True)
            if msg is None:
                continue
            kind = msg[0]
            if kind == b"message":
                channel, payload = msg[1], msg[2]
                if channel == self._resync_channel:
                    if _ORIGIN.unpack_from(payload)[0] != origin:
                        self._resync()
                    continue
                if _ORIGIN.unpack_from(payload)[0] == origin:
                    continue  # ours: delivered locally already
                user = channel[skip:].decode()
                pos, end = osize, len(payload)
                while pos < end:
                    seq1, n = record.unpack_from(payload, pos)
                    pos += rsize
                    self.received += 1
                    deliver(user, seq1 - 1 if seq1 else None, payload[pos : pos + n])
                    pos += n
            elif kind == b"subscribe":
                if resync_pending and msg[1] == self._resync_channel:
                    resync_pending = False
                    self.connected = True
                    if self._ever_connected:  # pushes published meanwhile reached nobody
                        self._resync()
                    self._ever_connected = True
                    self._first_connect.set()
                for fut in self._confirm.pop(msg[1], ()):
                    if not fut.done():
                        fut.set_result(None)

    def _resync(self) -> None:
        self.resyncs += 1
        self._on_resync()

    # -- publishing ---------------------------------------------------------------------------

    def publish(self, user_id: str, seq: int | None, frame: bytes) -> None:
        """Queue a push for ``user_id``'s connections on other processes.

        What one loop pass queues leaves as **one** Redis command (a script that publishes
        each channel's payload), and a user's pushes of that pass share one payload: redis-py
        spends tens of microseconds of Python per command and per reply, far more than Redis.
        """
        records = self._outgoing.get(user_id)
        if records is None:
            self._outgoing[user_id] = records = []
            if len(self._outgoing) == 1:
                self._wake.set()
        records.append(_RECORD.pack(0 if seq is None else seq + 1, len(frame)) + frame)

    async def _publish_loop(self) -> None:
        origin = _ORIGIN.pack(self.origin)
        while True:
            if not self._outgoing:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            await asyncio.sleep(0)  # let this loop pass finish queueing
            batch, self._outgoing = self._outgoing, {}
            channels = [self._user_prefix + user for user in batch]
            payloads = [origin + b"".join(records) for records in batch.values()]
            if self._publish_failed:
                channels.append(self._resync_channel.decode())
                payloads.append(origin)
            try:
                await self._script(keys=channels, args=payloads)
                self.published += sum(len(r) for r in batch.values())
                self._publish_failed = False
            except (RedisError, OSError) as exc:
                # The store holds every inbox item; receivers catch up from it (resync).
                if not self._publish_failed:
                    n = sum(len(r) for r in batch.values())
                    log.warning("redis publish failed (%r); %d pushes delayed to the store", exc, n)
                self._publish_failed = True
                if self._closing:
                    return
                await asyncio.sleep(self._reconnect_delay)


def _log_failure(task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.debug("redis task failed: %r", task.exception())
