"""How a protocol's messages are read: sans-I/O descriptions a :class:`~loadtest._connection.Connection` uses.

A :class:`Protocol` answers five questions about the frames of one WebSocket protocol, and nothing else (no
socket, no clock, no Locust):

* how a message is written to a frame and read from one (:meth:`~Protocol.encode`, :meth:`~Protocol.decode`);
* what *kind* of message a server frame is (:meth:`~Protocol.kind`: ``recv.<kind>`` counters, push routing);
* which request it answers, if any (:meth:`~Protocol.reply_key`);
* whether that answer is a failure, and its code (:meth:`~Protocol.error`);
* how a request carries its id (:meth:`~Protocol.new_id`, :meth:`~Protocol.set_id`).

:class:`JsonProtocol` answers them for JSON text frames from field paths (``"id"``, ``"params.id"``) or
callables: JSON-RPC 2.0 is ``JsonProtocol(kind="method", error="error.code")``. A protocol it cannot describe
(GraphQL's ``connection_ack``, STOMP's text headers, a binary encoding) subclasses one of the two.

A method may raise :class:`FrameError` (counted as ``errors.frame.<code>``) or ``ValueError`` /
``TypeError`` / ``KeyError`` / ``AttributeError`` / ``IndexError`` (counted as
``errors.frame.malformed_frame``) for a frame it cannot read; the connection drops the frame and carries on.

:class:`Push` says how a server-initiated message is measured: delivery latency from a send time it
carries (:func:`parse_timestamp` reads ISO-8601 text and Unix seconds, milliseconds, microseconds or
nanoseconds), or just counted by kind. :class:`Expect` is one more reply a send waits for.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from datetime import UTC, datetime
from typing import Any, Literal, NamedTuple

import orjson

from loadtest._wire import OP_BINARY, OP_TEXT

__all__ = [
    "Expect",
    "FieldPath",
    "FrameError",
    "JsonProtocol",
    "Protocol",
    "Push",
    "field_getter",
    "format_timestamp",
    "parse_timestamp",
]

FieldPath = str
"""A dotted path into a decoded JSON message: ``"id"``, ``"params.id"``, ``"payload.data.tick.sentAt"``;
a segment of digits indexes a list (``"args.0"``)."""
Getter = Callable[[Any], Any]


class FrameError(Exception):
    """A server frame a protocol cannot use, counted as ``errors.frame.<code>`` and dropped.

    Args:
        code: the counter's code (``unexpected_frame``, ``bad_checksum`` ...); no ``.`` in it.
    """

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code


def field_getter(path: FieldPath | Getter) -> Getter:
    """A function reading ``path`` from a decoded message: the value, or ``None`` where any step is missing.

    A callable is returned as it is.

    Raises:
        ValueError: an empty path or an empty segment (``"params..id"``).
    """
    if callable(path):
        return path
    parts = path.split(".")
    if not all(parts):
        raise ValueError(f"field path {path!r} has an empty segment")
    if len(parts) == 1:
        (only,) = parts

        def one(message: Any) -> Any:
            return message.get(only) if type(message) is dict else None

        return one
    steps: list[str | int] = [int(p) if p.isdigit() else p for p in parts]

    def walk(message: Any) -> Any:
        value = message
        for step in steps:
            if type(value) is dict:
                value = value.get(step)
            elif type(value) is list and type(step) is int and step < len(value):
                value = value[step]
            else:
                return None
        return value

    return walk


def _field_setter(path: FieldPath) -> Callable[[Any, Any], None]:
    """A function writing a value at ``path`` into a message (dicts on the way are created)."""
    parts = path.split(".")
    if not all(parts):
        raise ValueError(f"field path {path!r} has an empty segment")
    *head, last = parts
    if not head:

        def put_one(message: Any, value: Any) -> None:
            message[last] = value

        return put_one

    def put(message: Any, value: Any) -> None:
        target = message
        for step in head:
            inner = target.get(step)
            if type(inner) is not dict:
                inner = target[step] = {}
            target = inner
        target[last] = value

    return put


_second_prefix: list[Any] = [None, ""]


def format_timestamp(unix: float) -> str:
    """ISO-8601 UTC with microseconds and ``Z`` (JavaScript's ``toISOString()``, 1000x finer): a send time
    to put in a message, for the receiver's :func:`parse_timestamp`.

    Hot path (every chat message): the ``YYYY-MM-DDTHH:MM:SS`` part is cached per second.
    """
    second = int(unix)
    micros = round((unix - second) * 1e6)
    if micros >= 1_000_000:
        second += 1
        micros -= 1_000_000
    cache = _second_prefix
    if cache[0] != second:
        cache[0] = second
        cache[1] = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{cache[1]}.{micros:06d}Z"


def parse_timestamp(value: object) -> float | None:
    """Unix seconds of a send time carried in a message, or ``None`` for anything else.

    Reads ISO-8601 text (``2026-12-03T13:41:11.123456Z``, the seed's ``toISOString()``) and numbers in Unix
    seconds, milliseconds (JavaScript's ``Date.now()``), microseconds or nanoseconds, told apart by size.
    """
    if type(value) is str:
        try:
            return datetime.fromisoformat(value).timestamp()
        except ValueError:
            return None
    if type(value) is int or type(value) is float:
        if value > 1e17:
            return value / 1e9
        if value > 1e14:
            return value / 1e6
        if value > 1e11:
            return value / 1000.0
        return float(value)
    return None


class Protocol:
    """The frames of a WebSocket protocol, as a connection needs to read them. Subclass it.

    The base class treats every frame as an opaque message (``str`` for text, ``bytes`` for binary) of no
    kind, answering no request: a protocol whose replies can be matched overrides :meth:`reply_key`.
    Methods run in the connection's receive greenlet for every frame: keep them cheap.
    """

    def encode(self, message: Any) -> tuple[int, bytes]:
        """``(opcode, payload)`` of an outgoing message: ``str`` is a text frame, ``bytes`` a binary one.

        Raises:
            TypeError: a message this protocol cannot send.
        """
        if type(message) is str:
            return OP_TEXT, message.encode("utf-8")
        if isinstance(message, bytes | bytearray | memoryview):
            return OP_BINARY, bytes(message)
        raise TypeError(f"{type(self).__name__} sends str or bytes, not {type(message).__name__}")

    def decode(self, opcode: int, payload: bytes) -> Any:
        """The message of one server frame (``opcode`` is ``OP_TEXT`` or ``OP_BINARY``).

        Raises:
            FrameError, ValueError: a frame that is not a message of this protocol.
        """
        if opcode == OP_TEXT:
            return payload.decode("utf-8")
        return payload

    def kind(self, message: Any) -> str | None:
        """The message's kind (``recv.<kind>``; the :class:`Push` for it), or ``None``. No ``.`` in it."""
        return None

    def reply_key(self, message: Any, kind: str | None) -> Hashable | None:
        """The key of the request this message answers (as :meth:`set_id` wrote it), or ``None``."""
        return None

    def error(self, message: Any, kind: str | None) -> str | None:
        """The error code when this message reports a failure (a reply: its request fails), else ``None``."""
        return None

    def new_id(self, number: int) -> Hashable:
        """The id of a connection's ``number``-th request (1, 2 ...); a reply key must equal it."""
        return number

    def set_id(self, message: Any, request_id: Hashable) -> None:
        """Write ``request_id`` into an outgoing request.

        Raises:
            TypeError: this protocol's requests carry no id (give ``key=`` to ``request()``).
        """
        raise TypeError(f"{type(self).__name__} writes no request ids: give request(..., key=...)")

    def outgoing_kind(self, message: Any) -> str | None:
        """The kind of an outgoing message for ``sent.<kind>`` when the sender names none."""
        return None


class JsonProtocol(Protocol):
    """A protocol of JSON text frames (orjson), described by field paths or callables.

    Args:
        kind: path (or callable) of a message's kind; ``None``: messages have no kind. A kind that is not a
            string is no kind.
        request_id: path the client writes each request's id into (``"id"``, ``"params.id"``, the seed's
            ``"requestId"``); ``None``: requests carry no id the client assigns (give ``key=``).
        reply_id: path (or callable) of the id a reply carries; default: the ``request_id`` path. A
            message whose reply id is ``None`` answers no request.
        error: path (or callable) of a reply's error code: a message where it is present (not ``None``)
            reports a failure with ``str(value)`` as the code (JSON-RPC: ``"error.code"``).
        ids: ``"int"`` (1, 2 ...) or ``"str"`` (``"1"``, ``"2"`` ...: GraphQL over WebSocket).
        binary: ``False``: a binary frame is ``errors.frame.unexpected_frame``; ``True``: it is parsed as
            JSON too.

    Raises:
        ValueError: a bad field path or ``ids``.
    """

    def __init__(
        self,
        *,
        kind: FieldPath | Getter | None = "type",
        request_id: FieldPath | None = "id",
        reply_id: FieldPath | Getter | None = None,
        error: FieldPath | Getter | None = None,
        ids: Literal["int", "str"] = "int",
        binary: bool = False,
    ) -> None:
        if ids not in ("int", "str"):
            raise ValueError(f"ids must be 'int' or 'str', got {ids!r}")
        self._kind = field_getter(kind) if kind is not None else None
        self._set = _field_setter(request_id) if request_id is not None else None
        reply = reply_id if reply_id is not None else request_id
        self._reply = field_getter(reply) if reply is not None else None
        self._error = field_getter(error) if error is not None else None
        self._str_ids = ids == "str"
        self._binary = binary

    def encode(self, message: Any) -> tuple[int, bytes]:
        """A JSON text frame of ``message``; ``str`` / ``bytes`` are sent as they are (text / binary)."""
        if type(message) is dict or type(message) is list:
            return OP_TEXT, orjson.dumps(message)
        return super().encode(message)

    def decode(self, opcode: int, payload: bytes) -> Any:
        """``orjson.loads`` of a text frame (a binary one only with ``binary=True``)."""
        if opcode != OP_TEXT and not self._binary:
            raise FrameError("unexpected_frame", "binary frame")
        return orjson.loads(payload)

    def kind(self, message: Any) -> str | None:
        if self._kind is None:
            return None
        value = self._kind(message)
        return value if type(value) is str else None

    def reply_key(self, message: Any, kind: str | None) -> Hashable | None:
        if self._reply is None:
            return None
        key = self._reply(message)
        if key is None or type(key) is int or type(key) is str:
            return key
        if type(key) is float:
            return key
        raise TypeError(f"reply id is a {type(key).__name__}, not a number or a string")

    def error(self, message: Any, kind: str | None) -> str | None:
        if self._error is None:
            return None
        code = self._error(message)
        return None if code is None else str(code)

    def new_id(self, number: int) -> Hashable:
        return str(number) if self._str_ids else number

    def set_id(self, message: Any, request_id: Hashable) -> None:
        if self._set is None:
            raise TypeError("this JsonProtocol has request_id=None: give request(..., key=...)")
        if type(message) is not dict:
            raise TypeError(f"a request with an id must be a dict, not {type(message).__name__}")
        self._set(message, request_id)

    def outgoing_kind(self, message: Any) -> str | None:
        return self.kind(message) if type(message) is dict else None


class Push(NamedTuple):
    """How a server-initiated message of one kind is measured.

    Args:
        kind: the message kind (:meth:`Protocol.kind`) this applies to.
        metric: latency metric (and Locust name) of its delivery, from ``sent_at`` to its arrival:
            ``"push:<name>"`` or ``"delivery:<name>"`` (``runstore.names.PUSH_PREFIXES``); ``None``: the
            push is only counted (``recv.<kind>``).
        sent_at: where the sender's send time is: a field path read with :func:`parse_timestamp`, or a
            callable giving Unix seconds (or ``None``: this one is not timed). Needed with ``metric``.
        missed: Locust name of a push sent before this connection began (delivered from a backlog: counted as
            ``missed.<kind>``, kept out of the histogram); default ``"missed:<kind>"``.
    """

    kind: str
    metric: str | None = None
    sent_at: FieldPath | Getter | None = None
    missed: str | None = None


class Expect(NamedTuple):
    """One more reply a send waits for, besides (or instead of) the request's own.

    Args:
        key: the reply key it is matched by (what :meth:`Protocol.reply_key` returns for it).
        name: its latency metric and Locust name.
        kind: the request kind its counters go under (``errors.<kind>.<code>``); default: the send's.
        timeout_code: error code when no reply comes within the timeout.
        lost_code: error code when the connection closes first.
        cancels: keys of other awaited replies that no longer come if this reply is an error.
    """

    key: Hashable
    name: str
    kind: str | None = None
    timeout_code: str = "timeout"
    lost_code: str = "connection_lost"
    cancels: tuple[Hashable, ...] = ()
