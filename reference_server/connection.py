"""The I/O driver of one WebSocket connection, and the hub that routes frames between them.

:class:`Connection` moves bytes between an aiohttp ``WebSocketResponse`` and a
:class:`~reference_server.protocol.Session`, runs the store requests the session asks for, and
routes the session's pushes through the :class:`Hub`. It holds no protocol logic and builds no
protocol frame.

Outbound frames are coalesced: the hub flushes each connection it touched once, at the end of
the event-loop pass, so a group commit that acks 500 messages costs one write per connection,
not 1,000 (see :mod:`reference_server.outbound` for how they are written). A connection that has
more than ``outbound_limit`` bytes unsent is a slow consumer: it gets close 4002 and its
transport is aborted after ``shutdown_timeout`` seconds if it never reads; what it had not
confirmed stays in the store and is delivered again when it reconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING

from aiohttp import WSMsgType, web

from .errors import (
    CLOSE_GOING_AWAY,
    ConnectionClosingError,
    LocalProtocolError,
    MessageTooBig,
    SlowConsumer,
    UnsupportedData,
)
from .messages import Backlog, ChatMessage, NotificationRead
from .outbound import DeflateOutbound, Outbound, RawOutbound
from .protocol import Push, Session, State, StoreRequest, StoreResult

if TYPE_CHECKING:
    from .bus import RedisBus
    from .config import ServerConfig
    from .metrics import ServerMetrics
    from .store import Store

__all__ = ["Connection", "Hub"]

log = logging.getLogger(__name__)

#: TEST ONLY (``test_delay_ms``): how early a delayed frame's sleep ends, to be spun out exactly.
_TIMER_SLACK = 0.002


class Hub:
    """Routes frames to every open connection of a user, and batches their writes.

    With a ``bus`` (:class:`reference_server.bus.RedisBus`, several processes), every push is
    also published for the user's connections on other processes, and pushes from them arrive
    through :meth:`deliver_remote`. ``gap_wait`` is how long a gapless session waits for a
    missing inbox item to arrive before it re-reads the store.
    """

    def __init__(
        self, loop: asyncio.AbstractEventLoop, bus: RedisBus | None = None, gap_wait: float = 0.1
    ) -> None:
        self.by_user: dict[str, set[Connection]] = {}
        self._loop = loop
        self._dirty: list[Connection] = []
        self._scheduled = False
        self.bus = bus
        self.gap_wait = gap_wait

    def add(self, conn: Connection) -> asyncio.Future[None] | None:
        """Register ``conn``; with a bus, returns the future of its user's subscription (load
        the backlog after it resolves)."""
        conns = self.by_user.get(conn.user_id)
        if conns is None:
            self.by_user[conn.user_id] = {conn}
            return None if self.bus is None else self.bus.add_user(conn.user_id)
        conns.add(conn)
        return None

    def remove(self, conn: Connection) -> None:
        conns = self.by_user.get(conn.user_id)
        if conns is not None:
            conns.discard(conn)
            if not conns:
                del self.by_user[conn.user_id]
                if self.bus is not None:
                    self.bus.remove_user(conn.user_id)

    def route(self, push: Push) -> None:
        """Deliver ``push`` to every open connection of its user, here and (with a bus) on the
        other processes (none open: it waits in the store if it is an inbox item)."""
        self._deliver(push.user_id, push.seq, push.frame)
        if self.bus is not None:
            self.bus.publish(push.user_id, push.seq, push.frame)

    def deliver_remote(self, user_id: str, seq: int | None, frame: bytes) -> None:
        """A push from another process (through the bus)."""
        self._deliver(user_id, seq, frame)

    def _deliver(self, user_id: str, seq: int | None, frame: bytes) -> None:
        conns = self.by_user.get(user_id)
        if conns:
            for conn in conns:
                session = conn.session
                session.deliver(seq, frame)
                if session.gapless and session.has_gap:
                    conn.gap_seen()
                self.mark_dirty(conn)

    def resync(self) -> None:
        """Pushes may have been lost (Redis reconnected): every connection re-reads its inbox."""
        for conns in list(self.by_user.values()):
            for conn in list(conns):
                conn.reread()

    def mark_dirty(self, conn: Connection) -> None:
        """Flush ``conn`` at the end of this event-loop pass."""
        if not conn.dirty:
            conn.dirty = True
            self._dirty.append(conn)
            if not self._scheduled:
                self._scheduled = True
                self._loop.call_soon(self.flush)

    def flush(self) -> None:
        self._scheduled = False
        dirty, self._dirty = self._dirty, []
        for conn in dirty:
            conn.dirty = False
            conn.flush()


class Connection:
    """Drives one authenticated WebSocket connection.

    Args:
        ws: The prepared ``WebSocketResponse``.
        transport: Its transport (``request.transport``).
        session: The connection's protocol core.
        hub, store, metrics, config: Shared application objects.
    """

    def __init__(
        self,
        ws: web.WebSocketResponse,
        transport: asyncio.Transport,
        session: Session,
        *,
        hub: Hub,
        store: Store,
        metrics: ServerMetrics,
        config: ServerConfig,
    ) -> None:
        self.ws = ws
        self.transport = transport
        #: Where frames go: through aiohttp's compressing writer if the client negotiated
        #: permessage-deflate, else straight to the transport.
        self.out: Outbound = DeflateOutbound(ws, transport) if ws.compress else RawOutbound(transport)
        self.session = session
        self.user_id = session.user_id
        self.hub = hub
        self.store = store
        self.metrics = metrics
        self.config = config
        self.dirty = False
        self._loop = asyncio.get_running_loop()
        self._confirm_timer: asyncio.TimerHandle | None = None
        self._gap_timer: asyncio.TimerHandle | None = None
        self._expiry_timer: asyncio.TimerHandle | None = None
        self._inflight_waiter: asyncio.Future[None] | None = None
        #: The close frame has been written; nothing more may be.
        self.close_sent = False
        #: Resolved when the connection has ended (:meth:`stop`).
        self.finished: asyncio.Future[None] = self._loop.create_future()
        self._delayed: asyncio.Queue[tuple[float, str]] | None = None
        self._delay_task: asyncio.Task[None] | None = None
        self._delayed_pending = 0  # TEST ONLY: frames queued and not yet handled (order behind them)
        self._on_done_cb = self._on_done

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Register with the hub, start the offline backlog and the expiry timer.

        With a bus, the backlog is read only once the user's subscription is confirmed (or
        after a second without Redis: the resync after its return covers the rest).
        """
        waiter = self.hub.add(self)
        if waiter is not None and not waiter.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(waiter), 1.0)
        self.store.load_backlog(self.user_id, self._on_backlog, limit=self.config.backlog_page)
        expires_at = self.session.expires_at
        if expires_at is not None:
            delay = max(0.0, expires_at - time.time())
            self._expiry_timer = self._loop.call_later(delay, self._expire)
        if self.config.test_delay_ms > 0 or self.config.test_tail_delay is not None:
            self._delayed = asyncio.Queue()
            self._delay_task = asyncio.ensure_future(self._run_delayed())

    def stop(self) -> None:
        """Unregister; called once the socket is closed."""
        self.hub.remove(self)
        if self.session.state is not State.CLOSED:
            self.session.connection_lost()
        for timer in (self._confirm_timer, self._expiry_timer, self._gap_timer):
            if timer is not None:
                timer.cancel()
        if self._delay_task is not None:
            self._delay_task.cancel()
        if self._inflight_waiter is not None and not self._inflight_waiter.done():
            self._inflight_waiter.set_result(None)
        self.out.stop()
        if not self.finished.done():
            self.finished.set_result(None)

    async def run(self) -> None:
        """Read frames until the connection ends. Call :meth:`start` first.

        After a close is decided the loop keeps reading (and discarding) until the peer answers
        the close frame, so the peer can read everything sent before it.
        """
        ws = self.ws
        receive = ws.receive  # not ``async for``: one coroutine less per frame
        session = self.session
        delayed = self._delayed
        tail = self.config.test_tail_delay
        while True:
            msg = await receive()
            kind = msg.type
            if kind is WSMsgType.TEXT:
                if delayed is not None:
                    extra = self.config.test_delay_ms / 1000 + (tail.draw() if tail is not None else 0.0)
                    if extra > 0 or self._delayed_pending:  # an undelayed frame keeps its place in order
                        self._delayed_pending += 1
                        delayed.put_nowait((time.monotonic() + extra, msg.data))
                        continue
                self.receive(msg.data)
                if session.unfinished_requests > self.config.max_inflight:
                    await self._wait_inflight()
            elif kind is WSMsgType.PONG:
                self.on_pong(msg.data)
            elif kind is WSMsgType.PING:
                if not self.close_sent:
                    await ws.pong(msg.data)
            elif kind is WSMsgType.BINARY:
                session.fail(UnsupportedData("binary frames are not supported; send JSON text"))
                self.close(session.close_code or 1003, session.close_reason)
            elif kind is WSMsgType.ERROR:  # aiohttp has closed (e.g. 1009) or the peer vanished
                if ws.close_code == MessageTooBig.close_code:
                    session.fail(MessageTooBig(str(ws.exception())))
                    self.metrics.error(MessageTooBig.code)
                break
            elif kind is WSMsgType.CLOSE or kind is WSMsgType.CLOSING or kind is WSMsgType.CLOSED:
                break

    async def _run_delayed(self) -> None:
        """TEST ONLY: handle frames ``test_delay_ms`` (plus any ``test_tail_delay``) after arrival, in order.

        The event loop's timers fire with millisecond granularity (epoll rounds timeouts up to the
        next millisecond), so a plain sleep would turn a 0.3 ms penalty into one of 1 ms or more.
        The delay sleeps until :data:`_TIMER_SLACK` before the frame is due and waits out the
        rest on the CPU: the added latency is the configured one, at the cost of up to that much
        spinning per frame (negligible at the rates benchmarks use this knob with). A tail delay
        alone (``test_tail_delay``, milliseconds to a few frames) only sleeps: spinning would hold the
        event loop, and every other connection, for up to the slack each time.
        """
        assert self._delayed is not None
        clock = time.monotonic
        slack = _TIMER_SLACK if self.config.test_delay_ms > 0 else 0.0  # a tail delay (ms) is not spun
        while True:
            due, data = await self._delayed.get()
            wait = due - clock()
            if wait > slack:
                await asyncio.sleep(wait - slack)
            while clock() < due:
                pass
            self._delayed_pending -= 1
            self.receive(data)

    def close(self, code: int, reason: str = "") -> None:
        """Start the closing handshake with ``code``.

        Writes what is queued, then the close frame, then half-closes (FIN) so the peer reads
        everything before it; :meth:`run` keeps reading until the peer's answer. A peer that
        never reads is aborted after ``shutdown_timeout`` seconds, freeing its buffer.
        (aiohttp's ``ws.close()`` from another task would close the socket at once, and the
        peer's next frame would then reset the connection and destroy unread data.)
        """
        if self.close_sent:
            return
        if self.session.state is State.OPEN:
            self.session.close(code, reason)
        self.flush()
        self.close_sent = True
        self.metrics.closed[code] += 1
        transport = self.transport
        if transport.is_closing():
            return
        self.out.close(code, reason)
        self._loop.call_later(self.config.shutdown_timeout, _abort, transport)

    def _expire(self) -> None:
        if self.session.expire(time.time()):
            self.metrics.error("session_expired")
            self._close_as_decided()

    def _close_as_decided(self) -> None:
        session = self.session
        self.close(session.close_code or 1000, session.close_reason)

    def shutdown(self) -> None:
        """Server shutdown: close with 1001 Going Away."""
        self.close(CLOSE_GOING_AWAY, "server shutdown")

    # -- inbound ------------------------------------------------------------------------------

    def receive(self, data: str) -> None:
        """Feed one text frame to the session and start the work it asks for."""
        session = self.session
        session.receive_text(data, time.time())
        for request in session.events_received():
            self._run(request)
        if session.has_unsent:
            self.hub.mark_dirty(self)
        if session.state is State.CLOSING:
            self._close_as_decided()

    def _run(self, request: StoreRequest) -> None:
        """Start the store operation that makes ``request`` durable."""
        store = self.store
        cb = self._on_done_cb

        def done(result: StoreResult, exc: BaseException | None) -> None:
            cb(request, result, exc)

        message = request.message
        try:
            if isinstance(message, ChatMessage):
                body = message.message
                store.append_message(request.user_id, message.receiver_id, body.content, body.timestamp, done)
            elif isinstance(message, NotificationRead):
                store.mark_read(request.user_id, message.id, done)
            else:
                p = message.progress
                store.save_progress(request.user_id, p.subject, p.topic, p.completion, done)
        except Exception as exc:
            self._on_done(request, None, exc)

    def _on_done(self, request: StoreRequest, result: StoreResult, exc: BaseException | None) -> None:
        session = self.session
        if exc is None:
            pushes = session.event_completed(request, result)
            route = self.hub.route
            frames_out = self.metrics.frames_out
            for push in pushes:
                route(push)
                frames_out[push.kind] += 1
        else:
            log.error("store request failed: %r", exc)
            session.event_failed(request, LocalProtocolError("the server could not store this"))
        self.metrics.handling.observe(time.time() - request.received_at)
        self.hub.mark_dirty(self)
        waiter = self._inflight_waiter
        if waiter is not None and session.unfinished_requests <= self.config.max_inflight // 2:
            self._inflight_waiter = None
            if not waiter.done():
                waiter.set_result(None)

    async def _wait_inflight(self) -> None:
        self._inflight_waiter = self._loop.create_future()
        await self._inflight_waiter

    def _on_backlog(self, result: Backlog | None, exc: BaseException | None) -> None:
        if exc is not None or result is None:
            log.error("backlog load failed for a connection: %r", exc)
            self.session.fail(ConnectionClosingError("could not load undelivered messages"))
            self._close_as_decided()
            return
        session = self.session
        session.backlog_loaded(result)
        self.flush()
        if session.catching_up and session.state is State.OPEN:
            self._next_backlog_page()  # a full page, or a re-read asked for meanwhile
        elif session.gapless and session.has_gap:
            self.gap_seen()

    def gap_seen(self) -> None:
        """An inbox item is missing before what arrived: wait ``gap_wait`` for it (it may be in
        flight from another process), then re-read the store."""
        if self._gap_timer is None:
            self._gap_timer = self._loop.call_later(self.hub.gap_wait, self._gap_expired)

    def _gap_expired(self) -> None:
        self._gap_timer = None
        if self.session.has_gap:
            self.reread("gap")

    def reread(self, reason: str = "resync") -> None:
        """Re-read this user's inbox after what this connection has sent."""
        self.metrics.rereads[reason] += 1
        if self.session.request_reread():
            self._next_backlog_page()

    def _next_backlog_page(self) -> None:
        if self.session.state is not State.OPEN:
            return
        if self.out.buffered() > self.config.outbound_limit // 4:
            self._loop.call_later(0.05, self._next_backlog_page)
            return
        self.store.load_backlog(
            self.user_id,
            self._on_backlog,
            after=self.session.sent_seq,
            limit=self.config.backlog_page,
        )

    def on_pong(self, payload: bytes) -> None:
        seq = self.session.pong_received(payload)
        if seq is not None:
            self.store.advance_cursor(self.user_id, seq)
            self._maybe_confirm()

    # -- outbound -----------------------------------------------------------------------------

    def flush(self) -> None:
        """Send every frame the session has ready (uncompressed: in one transport write)."""
        frames = self.session.messages_to_send()
        if not frames:
            return
        if self.close_sent or self.transport.is_closing() or self.ws.closed:
            return
        out = self.out
        out.send(frames)
        if out.buffered() > self.config.outbound_limit:
            self.slow_consumer()
            return
        self._maybe_confirm()

    def _maybe_confirm(self) -> None:
        session = self.session
        if self._confirm_timer is None and session.sent_seq > session.confirmed_seq:
            self._confirm_timer = self._loop.call_later(self.config.confirm_interval, self._send_confirmation)

    def _send_confirmation(self) -> None:
        self._confirm_timer = None
        if self.close_sent or self.transport.is_closing():
            return
        payload = self.session.confirmation_ping()
        if payload is not None:
            self.out.ping(payload)

    def slow_consumer(self) -> None:
        """The client stopped reading: close it with 4002; abort if it never reads again."""
        if self.session.state is not State.OPEN:
            return
        self.session.fail(SlowConsumer("client is not reading; outbound buffer full"))
        self.metrics.error(SlowConsumer.code)
        self._close_as_decided()


def _abort(transport: asyncio.Transport) -> None:
    """Drop a transport that is still open, or closing but unable to flush."""
    if not transport.is_closing() or transport.get_write_buffer_size():
        transport.abort()
