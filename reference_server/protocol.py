"""The I/O-free protocol core: one :class:`Session` per WebSocket connection.

A :class:`Session` knows nothing about sockets, asyncio or SQLite. The driver (see
:mod:`reference_server.connection`) feeds it what arrives and runs what it asks for:

1. :meth:`Session.receive_text` parses one text frame, validates it, applies the rate limit and
   queues work. After calling it, you must call :meth:`Session.events_received` and run each
   returned :class:`StoreRequest` against the store, then :meth:`Session.messages_to_send` and
   write the frames it returns.
2. When the store has durably committed a request's effect, call :meth:`Session.event_completed`
   with the store's result (a :data:`StoreResult`). It returns the :class:`Push` frames to route
   to users' connections and readies the ``ack``, which leaves with the next
   :meth:`Session.messages_to_send`, after the pushes routed back to this connection. Replies
   (``ack``/``error``/``pong``) leave in the order of the frames that caused them, whatever order
   the work finishes in.
3. Frames routed to this connection's user go through :meth:`Session.deliver`, which orders them
   after the offline backlog (:meth:`Session.backlog_loaded`, fed the store's :class:`Backlog`
   pages) and drops duplicates by sequence number.
4. Delivery is confirmed with WebSocket ping/pong: :meth:`Session.confirmation_ping` names the
   highest sequence sent; :meth:`Session.pong_received` returns it once the client's pong proves
   the client read everything before it.

Every protocol frame the server sends is built here (:func:`inbox_frame`,
:func:`notification_push` and the replies), so the driver only moves bytes. The connection state
machine is the :data:`TRANSITIONS` table; every state change goes through
:meth:`Session._transition`.
"""

from __future__ import annotations

import enum
import struct
from collections import deque
from typing import Any, Literal, Protocol, TypeAlias

import msgspec

from .errors import (
    CLOSE_NORMAL,
    BatchTooLarge,
    ConnectionClosingError,
    ContentTooLong,
    InvalidBatch,
    InvalidField,
    LocalProtocolError,
    NotFound,
    ProtocolError,
    RateLimited,
    RemoteProtocolError,
    SessionExpired,
)
from .messages import (
    INBOUND_TYPES,
    Ack,
    Backlog,
    Batch,
    ChatMessage,
    Error,
    InboxEntry,
    NewMessage,
    Notification,
    NotificationRead,
    NotificationUpdate,
    Ping,
    ProgressRecord,
    ProgressSync,
    StorableMessage,
    StoredChat,
    StoredNotification,
    decode_message,
    encode,
    request_id_of,
)

__all__ = [
    "TRANSITIONS",
    "Event",
    "Push",
    "Reply",
    "Session",
    "SessionHooks",
    "State",
    "StoreRequest",
    "StoreResult",
    "inbox_frame",
    "notification_push",
]


class State(enum.Enum):
    """Connection states."""

    OPEN = "open"  #: frames are handled
    CLOSING = "closing"  #: a close was decided; inbound frames are dropped
    CLOSED = "closed"  #: the transport is gone


class Event(enum.Enum):
    """What moves the state machine. Frames do not: they are handled or dropped by state."""

    CLOSE_REQUESTED = "close_requested"  #: the session decided to close (fault, expiry, shutdown)
    CONNECTION_LOST = "connection_lost"  #: the transport closed


#: ``state -> {event -> next state}``. Anything not listed is a disallowed transition; every row
#: is reached by some input (``tests/reference_server/test_protocol.py`` drives them all).
TRANSITIONS: dict[State, dict[Event, State]] = {
    State.OPEN: {
        Event.CLOSE_REQUESTED: State.CLOSING,
        Event.CONNECTION_LOST: State.CLOSED,
    },
    State.CLOSING: {
        Event.CONNECTION_LOST: State.CLOSED,
    },
    State.CLOSED: {},
}


class SessionHooks(Protocol):
    """What a Session reports for metrics (duck-typed; no I/O)."""

    def frame_in(self, kind: str) -> None: ...
    def frame_out(self, kind: str, n: int = 1) -> None: ...
    def error(self, code: str) -> None: ...


class _NoHooks:
    def frame_in(self, kind: str) -> None:
        pass

    def frame_out(self, kind: str, n: int = 1) -> None:
        pass

    def error(self, code: str) -> None:
        pass


#: The ``type`` of a reply frame (for metrics).
ReplyKind: TypeAlias = Literal["ack", "error", "pong"]


class Reply(msgspec.Struct, gc=False):
    """One reply's place in arrival order: ``frame`` is filled in when its work finishes.

    Replies leave in the order of the frames that caused them, so a reply that is ready
    (a ``pong``, an ``error``) waits behind one whose store work is still running.
    """

    frame: bytes | None = None  #: ``None`` with ``ready``: nothing to send (no ``requestId``)
    ready: bool = False
    kind: ReplyKind = "ack"


class StoreRequest(msgspec.Struct, gc=False):
    """Work for the driver: make ``message``'s effect durable, then report back.

    After the store commits, call :meth:`Session.event_completed` (or
    :meth:`Session.event_failed`) with this object.
    """

    message: StorableMessage
    user_id: str
    received_at: float
    reply: Reply


#: What the store hands back for a :class:`StoreRequest`: the committed chat message, the
#: notification marked read (``None``: the user has no such notification), the saved progress.
StoreResult: TypeAlias = StoredChat | Notification | ProgressRecord | None


class Push(msgspec.Struct, frozen=True, gc=False):
    """A frame to route to every open connection of ``user_id``.

    ``seq`` is the store's sequence number for inbox items (chat messages and new
    notifications), which are delivered offline too, or ``None`` for live-only pushes.
    ``kind`` is the frame's ``type`` (for metrics).
    """

    user_id: str
    seq: int | None
    frame: bytes
    kind: str


def inbox_frame(entry: InboxEntry) -> bytes:
    """The frame that delivers one inbox item: ``new_message`` or ``notification_update``."""
    if isinstance(entry, StoredChat):
        return encode(NewMessage(data=entry.message))
    return encode(NotificationUpdate(data=entry.notification))


def notification_push(entry: StoredNotification) -> Push:
    """The push of a newly created notification to its user's connections."""
    n = entry.notification
    return Push(n.user_id, entry.seq, inbox_frame(entry), "notification_update")


#: Inbound Struct → wire ``type`` (for metrics).
_TYPE_NAMES: dict[type, str] = {cls: name for name, cls in INBOUND_TYPES.items()}

_PING_PAYLOAD = struct.Struct("!4sQ")
_PING_MAGIC = b"wsgd"


class Session:
    """Protocol state of one authenticated WebSocket connection.

    Args:
        user_id: The authenticated user (the token's ``sub``); the sender of everything.
        now: Current time in seconds (any monotonic-ish clock, same one as later calls).
        expires_at: When the user's session token expires (same clock), or ``None``.
        max_content_length: Longest accepted ``message.content``, in characters.
        max_batch: Most inner messages in one ``batch``.
        rate_limit: Sustained inbound messages per second (batch items count one each);
            ``0`` disables the limit.
        rate_burst: Bucket size for the rate limit; defaults to ``max(rate_limit, max_batch)``.
        hooks: Receives frame and error counts for metrics.
        gapless: The store numbers each user's inbox ``1, 2, 3, …`` without gaps (the
            PostgreSQL store, shared by several processes). Pushes from other processes can
            then arrive out of order or not at all (a Redis outage); an inbox frame ahead of
            the next expected ``seq`` is held, and :attr:`has_gap` tells the driver to wait a
            little and then re-read the store (:meth:`request_reread`). Frames leave in ``seq``
            order, so a confirmed cursor never passes an item this connection has not sent.
    """

    def __init__(
        self,
        user_id: str,
        *,
        now: float = 0.0,
        expires_at: float | None = None,
        max_content_length: int = 10_000,
        max_batch: int = 100,
        rate_limit: float = 1000.0,
        rate_burst: float | None = None,
        hooks: SessionHooks | None = None,
        gapless: bool = False,
    ) -> None:
        self.user_id = user_id
        self.gapless = gapless
        self.state = State.OPEN
        self.close_code: int | None = None
        self.close_reason = ""
        #: The last fault that closed or was reported on this session, kept for logs.
        self.last_error: ProtocolError | None = None
        self.expires_at = expires_at
        self.max_content_length = max_content_length
        self.max_batch = max_batch
        self.rate_limit = rate_limit
        self.rate_burst = rate_burst if rate_burst is not None else max(rate_limit, max_batch)
        self._tokens = self.rate_burst
        self._tokens_at = now
        self._hooks: SessionHooks = hooks or _NoHooks()

        self._events: list[StoreRequest] = []
        self._unfinished = 0  # store requests not yet completed or failed
        self._replies: deque[Reply] = deque()  # arrival order; leave from the front once ready
        self._outbox: list[bytes] = []

        self._catching_up = True
        self._held: list[tuple[int | None, bytes]] = []
        self.sent_seq = 0
        self.confirmed_seq = 0
        self._ping_outstanding: int | None = None
        self._ahead: dict[int, bytes] = {}  # gapless: inbox frames past the next expected seq
        self._reread = False  # a store re-read was asked for while a backlog load ran

    # -- state machine ------------------------------------------------------------------------

    def _transition(self, event: Event) -> None:
        try:
            self.state = TRANSITIONS[self.state][event]
        except KeyError:
            raise LocalProtocolError(f"event {event.name} not allowed in state {self.state.name}") from None

    def fail(self, exc: ConnectionClosingError) -> None:
        """Decide to close the connection because of ``exc``.

        After calling this, :attr:`close_code` and :attr:`close_reason` say how to close.
        """
        self.last_error = exc
        if self.state is State.OPEN:
            self._transition(Event.CLOSE_REQUESTED)
            self.close_code = exc.close_code
            self.close_reason = exc.message[:120]

    def close(self, code: int = CLOSE_NORMAL, reason: str = "") -> None:
        """Decide to close the connection normally (e.g. server shutdown)."""
        if self.state is State.OPEN:
            self._transition(Event.CLOSE_REQUESTED)
            self.close_code = code
            self.close_reason = reason

    def connection_lost(self) -> None:
        """The transport is gone; the session accepts nothing more. Call it once."""
        self._transition(Event.CONNECTION_LOST)

    def expire(self, now: float) -> bool:
        """Close the session if its token has expired at ``now``. Returns ``True`` if it did."""
        if self.expires_at is not None and now >= self.expires_at and self.state is State.OPEN:
            self.fail(SessionExpired("session token expired"))
            return True
        return False

    # -- inbound ------------------------------------------------------------------------------

    def receive_text(self, data: str | bytes, now: float) -> None:
        """Handle one inbound text frame.

        Never raises: every fault becomes an ``error`` reply or a close decision.
        After calling this, you must call :meth:`events_received` and :meth:`messages_to_send`.
        """
        if self.state is not State.OPEN or self.expire(now):
            return
        try:
            message = decode_message(data)
            self._hooks.frame_in(_TYPE_NAMES[type(message)])
            if isinstance(message, Batch):
                self._receive_batch(message, now)
            else:
                self._handle(message, now)
        except RemoteProtocolError as exc:
            self._hooks.frame_in("invalid")
            self._reply_error(exc, request_id_of(data))
        except ConnectionClosingError as exc:
            self._hooks.error(exc.code)
            self.fail(exc)
        except Exception as exc:  # a bug must not kill the connection or the server
            self._reply_error(LocalProtocolError(f"internal error: {type(exc).__name__}"), None)
            self.last_error = LocalProtocolError(repr(exc))

    def _receive_batch(self, batch: Batch, now: float) -> None:
        n = len(batch.messages)
        if n > self.max_batch:
            raise BatchTooLarge(f"a batch holds at most {self.max_batch} messages, not {n}")
        for item in batch.messages:
            try:
                message = decode_message(item)
                if isinstance(message, Batch):
                    raise InvalidBatch("a batch cannot contain a batch")
                self._hooks.frame_in(_TYPE_NAMES[type(message)])
                self._handle(message, now)
            except RemoteProtocolError as exc:
                self._reply_error(exc, request_id_of(item))
        if batch.request_id is not None:
            # Released only after every inner reply before it: i.e. once all are durable.
            self._reply_now(encode(Ack(request_id=batch.request_id, data={"count": n})), "ack")

    def _handle(self, message: StorableMessage | Ping, now: float) -> None:
        if self.rate_limit > 0:
            tokens = self._tokens + (now - self._tokens_at) * self.rate_limit
            if tokens > self.rate_burst:
                tokens = self.rate_burst
            self._tokens_at = now
            if tokens < 1.0:
                self._tokens = tokens
                raise RateLimited(f"rate limit of {self.rate_limit:g} messages/s exceeded")
            self._tokens = tokens - 1.0
        if isinstance(message, Ping):
            self._reply_now(encode(message.response()), "pong")
            return
        if isinstance(message, ChatMessage):
            content = message.message.content
            if not content:
                raise InvalidField("message.content must not be empty")
            if len(content) > self.max_content_length:
                raise ContentTooLong(f"message.content is longer than {self.max_content_length} characters")
        reply = Reply()
        self._replies.append(reply)
        self._unfinished += 1
        self._events.append(StoreRequest(message, self.user_id, now, reply))

    def _reply_now(self, frame: bytes, kind: ReplyKind) -> None:
        if self._replies:
            self._replies.append(Reply(frame, True, kind))
        else:
            self._outbox.append(frame)
            self._hooks.frame_out(kind)

    def _reply_error(self, exc: ProtocolError, request_id: Any) -> None:
        self.last_error = exc
        self._hooks.error(exc.code)
        frame = encode(Error(code=exc.code, message=exc.message, request_id=request_id))
        self._reply_now(frame, "error")

    def _release(self) -> None:
        replies = self._replies
        out = self._outbox
        acks = 0
        while replies and replies[0].ready:
            reply = replies.popleft()
            frame = reply.frame
            if frame is not None:
                out.append(frame)
                if reply.kind == "ack":
                    acks += 1
                else:
                    self._hooks.frame_out(reply.kind)
        if acks:
            self._hooks.frame_out("ack", acks)

    def events_received(self) -> list[StoreRequest]:
        """Drain the store requests queued by :meth:`receive_text`, in arrival order."""
        events, self._events = self._events, []
        return events

    # -- completion ---------------------------------------------------------------------------

    def event_completed(self, request: StoreRequest, result: StoreResult) -> list[Push]:
        """Report that ``request``'s effect is durably stored as ``result``.

        Returns:
            The frames to route to users' connections (this session's own user included).
            After calling this, you must call :meth:`messages_to_send`.
        """
        message = request.message
        data: Any
        # isinstance, not match: class patterns cost more on this per-message path
        if isinstance(result, StoredChat):
            record = result.message
            # Serialise the message once, for both the push and the ack.
            data = msgspec.Raw(encode(record))
            push = Push(record.receiver_id, result.seq, encode(NewMessage(data=data)), "new_message")
        elif isinstance(result, Notification):
            data = result
            push = Push(self.user_id, None, encode(NotificationUpdate(data=result)), "notification_update")
        elif isinstance(result, ProgressRecord):
            data = result
            push = Push(self.user_id, None, encode(ProgressSync(data=result)), "progress_sync")
        elif result is None and isinstance(message, NotificationRead):
            self.event_failed(request, NotFound(f"no notification {message.id!r} for this user"))
            return []
        else:
            self.event_failed(request, LocalProtocolError("store returned an unexpected result"))
            return []
        self._unfinished -= 1
        reply = request.reply
        request_id = message.request_id
        if request_id is not None:
            reply.frame = encode(Ack(request_id=request_id, data=data))
        reply.ready = True
        # Released by messages_to_send(): pushes routed now (to this user's connections too)
        # go out before the ack.
        return [push]

    def event_failed(self, request: StoreRequest, exc: ProtocolError) -> None:
        """Report that ``request`` could not be carried out; its reply becomes an ``error``.

        After calling this, you must call :meth:`messages_to_send`.
        """
        self.last_error = exc
        self._hooks.error(exc.code)
        self._unfinished -= 1
        reply = request.reply
        reply.frame = encode(Error(code=exc.code, message=exc.message, request_id=request.message.request_id))
        reply.ready = True
        reply.kind = "error"

    # -- outbound delivery --------------------------------------------------------------------

    def deliver(self, seq: int | None, frame: bytes) -> None:
        """Queue a frame routed to this session's user.

        Inbox frames (``seq`` not ``None``) already sent are dropped; while the offline backlog
        is loading, frames are held and sent after it. In ``gapless`` mode an inbox frame
        beyond ``sent_seq + 1`` waits for the ones before it (see :attr:`has_gap`).
        After calling this, you must call :meth:`messages_to_send`.
        """
        if self.state is not State.OPEN:
            return
        if seq is None:
            if self._catching_up:
                self._held.append((seq, frame))
            else:
                self._outbox.append(frame)
            return
        if self.gapless:
            if seq <= self.sent_seq:
                return
            if self._catching_up or seq != self.sent_seq + 1:
                self._ahead[seq] = frame
                return
            self.sent_seq = seq
            self._outbox.append(frame)
            if self._ahead:
                self._drain_ahead()
            return
        if self._catching_up:
            # Inbox frames committed before the backlog query are in the backlog; later
            # ones arrive after it (one process, one store thread: results come in order).
            return
        if seq > self.sent_seq:
            self.sent_seq = seq
            self._outbox.append(frame)

    def _drain_ahead(self) -> None:
        """Send held inbox frames that now follow ``sent_seq`` without a gap; drop stale ones."""
        ahead = self._ahead
        for seq in [s for s in ahead if s <= self.sent_seq]:
            del ahead[seq]
        nxt = self.sent_seq + 1
        while nxt in ahead:
            self._outbox.append(ahead.pop(nxt))
            self.sent_seq = nxt
            nxt += 1

    @property
    def has_gap(self) -> bool:
        """``gapless`` only: inbox frames wait for an earlier one that has not arrived.

        The driver should wait briefly (the missing push may be in flight from another process)
        and, if this is still true, call :meth:`request_reread` and load the backlog.
        """
        return bool(self._ahead) and not self._catching_up

    def request_reread(self) -> bool:
        """Re-read the inbox from the store after :attr:`sent_seq` (a gap, or pushes lost with a
        Redis outage).

        Returns ``True`` if the driver should load a backlog page now (``after=sent_seq``);
        ``False`` if a load is already running, in which case one more follows it (the driver
        sees :attr:`catching_up` still set after :meth:`backlog_loaded`).
        """
        if self.state is not State.OPEN:
            return False
        if self._catching_up:
            self._reread = True
            return False
        self._catching_up = True
        return True

    def backlog_loaded(self, page: Backlog) -> None:
        """Send one page of the offline backlog (inbox items after the user's cursor).

        While :attr:`catching_up` stays ``True`` afterwards (``page.more``, or a re-read was
        asked for meanwhile), read the next page after :attr:`sent_seq` and call this again;
        live frames are held until the last page.
        After calling this, you must call :meth:`messages_to_send`.
        """
        cursor = page.cursor
        if self.sent_seq < cursor:
            self.sent_seq = cursor
        if self.confirmed_seq < cursor:
            self.confirmed_seq = cursor
        out = self._outbox
        sent = 0
        for entry in page.entries:
            if entry.seq > self.sent_seq:
                self.sent_seq = entry.seq
                out.append(inbox_frame(entry))
                sent += 1
        if sent:
            self._hooks.frame_out("backlog", sent)
        if page.more:
            return
        if self._reread:  # asked for while this load ran: its snapshot may predate the ask
            self._reread = False
            return
        self._catching_up = False
        held, self._held = self._held, []
        for seq, frame in held:
            self.deliver(seq, frame)
        if self._ahead:
            self._drain_ahead()

    @property
    def catching_up(self) -> bool:
        """``True`` while the backlog (or a re-read of it) is loading."""
        return self._catching_up

    def messages_to_send(self) -> list[bytes]:
        """Drain the frames ready to send (UTF-8 JSON text), in order."""
        if self._replies and self._replies[0].ready:
            self._release()
        out, self._outbox = self._outbox, []
        return out

    @property
    def has_unsent(self) -> bool:
        return bool(self._outbox) or bool(self._replies and self._replies[0].ready)

    # -- delivery confirmation ----------------------------------------------------------------

    def confirmation_ping(self) -> bytes | None:
        """Payload for a WebSocket ping confirming everything sent so far, or ``None``.

        Returns ``None`` if nothing new was sent or a confirmation is already outstanding.
        """
        if self._ping_outstanding is not None or self.sent_seq <= self.confirmed_seq:
            return None
        self._ping_outstanding = self.sent_seq
        return _PING_PAYLOAD.pack(_PING_MAGIC, self.sent_seq)

    def pong_received(self, payload: bytes) -> int | None:
        """Handle a WebSocket pong. Returns the newly confirmed sequence number, if any.

        A pong carrying our outstanding confirmation proves that the client's WebSocket stack
        read every frame sent before the ping (TCP and WebSocket keep order).
        """
        if self._ping_outstanding is None or len(payload) != _PING_PAYLOAD.size:
            return None
        magic, seq = _PING_PAYLOAD.unpack(payload)
        if magic != _PING_MAGIC or seq != self._ping_outstanding:
            return None
        self._ping_outstanding = None
        if seq > self.confirmed_seq:
            self.confirmed_seq = seq
            return seq
        return None

    @property
    def pending_replies(self) -> int:
        """Replies not yet handed out by :meth:`messages_to_send` (waiting or queued behind)."""
        return len(self._replies)

    @property
    def unfinished_requests(self) -> int:
        """Store requests not yet reported back with :meth:`event_completed`/:meth:`event_failed`."""
        return self._unfinished
