"""The frames of the seed protocol, one small frozen dataclass per ``type``.

Inbound (client → server): :class:`ChatMessage`, :class:`NotificationRead`,
:class:`ProgressUpdate`, :class:`Batch`, :class:`Ping`. Each is built by :func:`parse_message`
from a decoded JSON object and checks its own field types when constructed; a bad field raises
a :class:`~reference_server.errors.RemoteProtocolError` subclass.

Outbound (server → client): :class:`NewMessage`, :class:`NotificationUpdate`,
:class:`ProgressSync`, :class:`Pong`, :class:`Ack`, :class:`Error`. Each has ``to_frame()``,
returning the UTF-8 JSON text of the frame, serialised with orjson.

Records (what the store holds and what ``data`` carries): :class:`StoredMessage`,
:class:`Notification`, :class:`ProgressRecord`.

Wire names are camelCase (``receiverId``, ``requestId``); Python names are snake_case.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias

import orjson

from .errors import (
    InvalidBatch,
    InvalidField,
    InvalidJSON,
    InvalidMessage,
    InvalidPayloadData,
    InvalidReceiver,
    UnknownType,
)
from .nextauth import UserId

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "INBOUND_TYPES",
    "MAX_FIELD_LENGTH",
    "MAX_REQUEST_ID_LENGTH",
    "MAX_USER_ID_LENGTH",
    "Ack",
    "Batch",
    "ChatMessage",
    "Error",
    "InboundMessage",
    "NewMessage",
    "Notification",
    "NotificationRead",
    "NotificationUpdate",
    "Ping",
    "Pong",
    "ProgressRecord",
    "ProgressSync",
    "ProgressUpdate",
    "RequestId",
    "StoredMessage",
    "decode_json",
    "parse_message",
    "request_id_of",
    "validate_user_id",
]

#: A client-chosen correlation id (string or integer), echoed unchanged in ``ack``/``error``.
RequestId: TypeAlias = str | int

MAX_USER_ID_LENGTH = 256
MAX_REQUEST_ID_LENGTH = 128
#: Limit for short string fields (notification ids, subject, topic, timestamps).
MAX_FIELD_LENGTH = 256

_dumps = orjson.dumps


def decode_json(data: str | bytes) -> Any:
    """Decode one text frame.

    Raises:
        InvalidJSON: The frame is not JSON.
        InvalidPayloadData: The frame is not UTF-8 (only possible for ``bytes`` input).
    """
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        if isinstance(data, bytes | bytearray | memoryview):
            try:
                bytes(data).decode("utf-8")
            except UnicodeDecodeError:
                raise InvalidPayloadData("text frame is not valid UTF-8") from None
        raise InvalidJSON(f"frame is not valid JSON: {exc}") from None


def validate_user_id(value: object, name: str = "receiverId") -> UserId:
    """Return ``value`` as a user id, or raise :class:`InvalidReceiver`.

    Any non-empty string of at most :data:`MAX_USER_ID_LENGTH` characters is a user id: the
    server keeps no user directory.
    """
    if type(value) is not str:
        raise InvalidReceiver(f"{name} must be a string, not {_json_type(value)}")
    if not value or len(value) > MAX_USER_ID_LENGTH:
        raise InvalidReceiver(f"{name} must be 1 to {MAX_USER_ID_LENGTH} characters")
    return UserId(value)


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _check_str(value: object, name: str, *, max_length: int = MAX_FIELD_LENGTH) -> None:
    if type(value) is not str:
        raise InvalidField(f"{name} must be a string, not {_json_type(value)}")
    if not value:
        raise InvalidField(f"{name} must not be empty")
    if len(value) > max_length:
        raise InvalidField(f"{name} must be at most {max_length} characters")


def _check_request_id(value: object) -> None:
    if value is None:
        return
    if type(value) is str:
        if 0 < len(value) <= MAX_REQUEST_ID_LENGTH:
            return
    elif type(value) is int and -(2**53) < value < 2**53:
        return
    raise InvalidField(
        f"requestId must be a non-empty string of at most {MAX_REQUEST_ID_LENGTH} characters "
        "or a safe integer"
    )


def _is_number(value: object) -> bool:
    t = type(value)
    return (t is int or t is float) and math.isfinite(value)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# Inbound frames


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatMessage:
    """``chat_message {receiverId, message: {content, timestamp}}``.

    ``timestamp`` is the client's own (an ISO string in the seed, or a number); the server echoes
    it unchanged in ``new_message`` so that receivers can measure end-to-end latency. When absent
    it is ``None`` and the server uses ``createdAt``. The content length limit is a
    :class:`~reference_server.protocol.Session` parameter, checked there.
    """

    type: str = field(default="chat_message", init=False)
    receiver_id: UserId
    content: str
    timestamp: str | int | float | None = None
    request_id: RequestId | None = None

    def __post_init__(self) -> None:
        validate_user_id(self.receiver_id)
        if type(self.content) is not str:
            raise InvalidField(f"message.content must be a string, not {_json_type(self.content)}")
        ts = self.timestamp
        if ts is not None and not _is_number(ts):
            _check_str(ts, "message.timestamp", max_length=MAX_FIELD_LENGTH)
        _check_request_id(self.request_id)

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> ChatMessage:
        message = obj.get("message")
        if type(message) is not dict:
            raise InvalidField(f"message must be an object, not {_json_type(message)}")
        if "content" not in message:
            raise InvalidField("message.content is required")
        return cls(
            receiver_id=obj.get("receiverId"),  # type: ignore[arg-type]  # checked in __post_init__
            content=message["content"],
            timestamp=message.get("timestamp"),
            request_id=obj.get("requestId"),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class NotificationRead:
    """``notification_read {id}``: mark one of the caller's notifications read."""

    type: str = field(default="notification_read", init=False)
    id: str
    request_id: RequestId | None = None

    def __post_init__(self) -> None:
        _check_str(self.id, "id")
        _check_request_id(self.request_id)

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> NotificationRead:
        if "id" not in obj:
            raise InvalidField("id is required")
        return cls(id=obj["id"], request_id=obj.get("requestId"))


@dataclass(frozen=True, slots=True, kw_only=True)
class ProgressUpdate:
    """``progress_update {progress: {subject, topic, completion}}``; completion is 0-100."""

    type: str = field(default="progress_update", init=False)
    subject: str
    topic: str
    completion: float
    request_id: RequestId | None = None

    def __post_init__(self) -> None:
        _check_str(self.subject, "progress.subject")
        _check_str(self.topic, "progress.topic")
        c = self.completion
        if not _is_number(c):
            raise InvalidField(f"progress.completion must be a number, not {_json_type(c)}")
        if not 0 <= c <= 100:
            raise InvalidField("progress.completion must be between 0 and 100")
        _check_request_id(self.request_id)

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> ProgressUpdate:
        progress = obj.get("progress")
        if type(progress) is not dict:
            raise InvalidField(f"progress must be an object, not {_json_type(progress)}")
        for name in ("subject", "topic", "completion"):
            if name not in progress:
                raise InvalidField(f"progress.{name} is required")
        return cls(
            subject=progress["subject"],
            topic=progress["topic"],
            completion=progress["completion"],
            request_id=obj.get("requestId"),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Ping:
    """``ping {ts}``: an application-level latency probe, answered at once by ``pong {ts}``."""

    type: str = field(default="ping", init=False)
    ts: Any = None
    request_id: RequestId | None = None

    def __post_init__(self) -> None:
        ts = self.ts
        if ts is not None and not _is_number(ts):
            _check_str(ts, "ts", max_length=MAX_FIELD_LENGTH)
        _check_request_id(self.request_id)

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Ping:
        return cls(ts=obj.get("ts"), request_id=obj.get("requestId"))

    def response(self) -> Pong:
        """The ``pong`` that answers this ping."""
        return Pong(ts=self.ts, request_id=self.request_id)


@dataclass(frozen=True, slots=True, kw_only=True)
class Batch:
    """``batch {messages: [...]}``: inner frames, still undecoded, each handled as if sent alone.

    The inner items are kept as decoded JSON values so that one bad item yields one ``error``
    and does not spoil the others. The count limit is a Session parameter.
    """

    type: str = field(default="batch", init=False)
    messages: tuple[Any, ...]
    request_id: RequestId | None = None

    def __post_init__(self) -> None:
        if type(self.messages) is not tuple:
            raise InvalidBatch("messages must be an array")
        _check_request_id(self.request_id)

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Batch:
        messages = obj.get("messages")
        if type(messages) is not list:
            raise InvalidBatch(f"batch.messages must be an array, not {_json_type(messages)}")
        return cls(messages=tuple(messages), request_id=obj.get("requestId"))


InboundMessage: TypeAlias = ChatMessage | NotificationRead | ProgressUpdate | Ping | Batch

#: Wire ``type`` → inbound dataclass.
INBOUND_TYPES: dict[str, type[InboundMessage]] = {
    "chat_message": ChatMessage,
    "notification_read": NotificationRead,
    "progress_update": ProgressUpdate,
    "batch": Batch,
    "ping": Ping,
}


def request_id_of(obj: object) -> RequestId | None:
    """The ``requestId`` of a decoded frame if it is well-formed, else ``None``."""
    if type(obj) is dict:
        rid = obj.get("requestId")
        try:
            _check_request_id(rid)
        except InvalidField:
            return None
        return rid
    return None


def parse_message(obj: object) -> InboundMessage:
    """Build the inbound message for one decoded JSON value.

    Raises:
        InvalidMessage: ``obj`` is not an object or has no string ``type``.
        UnknownType: ``type`` is not one of :data:`INBOUND_TYPES`.
        InvalidField, InvalidReceiver, InvalidBatch: a field is missing or mistyped.
    """
    if type(obj) is not dict:
        raise InvalidMessage(f"a frame must be a JSON object, not {_json_type(obj)}")
    kind = obj.get("type")
    if type(kind) is not str:
        raise InvalidMessage("a frame must have a string 'type'")
    cls = INBOUND_TYPES.get(kind)
    if cls is None:
        shown = kind if len(kind) <= 64 else kind[:64] + "…"
        raise UnknownType(f"unknown message type {shown!r}")
    return cls.from_json(obj)


# ---------------------------------------------------------------------------------------------
# Records


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredMessage:
    """A chat message as stored: the ``data`` of ``new_message`` and of its ``ack``."""

    seq: int
    id: str
    sender_id: str
    receiver_id: str
    content: str
    timestamp: Any
    created_at: str

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "senderId": self.sender_id,
            "receiverId": self.receiver_id,
            "content": self.content,
            "timestamp": self.timestamp,
            "createdAt": self.created_at,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Notification:
    """A notification: the ``data`` of ``notification_update``, and the POST response body.

    ``extra`` holds the optional fields the back end supplied (``type``, ``link``, ``data``),
    returned as-is next to the fixed ones.
    """

    seq: int
    id: str
    user_id: str
    title: str
    body: str
    read: bool
    created_at: str
    updated_at: str
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.extra)
        out.update(
            id=self.id,
            userId=self.user_id,
            title=self.title,
            body=self.body,
            read=self.read,
            createdAt=self.created_at,
            updatedAt=self.updated_at,
        )
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class ProgressRecord:
    """A user's progress on one (subject, topic): the ``data`` of ``progress_sync``."""

    user_id: str
    subject: str
    topic: str
    completion: float
    updated_at: str

    def to_json(self) -> dict[str, Any]:
        return {
            "userId": self.user_id,
            "subject": self.subject,
            "topic": self.topic,
            "completion": self.completion,
            "updatedAt": self.updated_at,
        }


# ---------------------------------------------------------------------------------------------
# Outbound frames


@dataclass(frozen=True, slots=True)
class NewMessage:
    """``new_message {data: {id, senderId, receiverId, content, timestamp, createdAt}}``."""

    data: StoredMessage

    def to_frame(self, data_json: orjson.Fragment | None = None) -> bytes:
        """The frame; ``data_json`` is ``data`` already serialised, to reuse (e.g. for the ack)."""
        data = self.data.to_json() if data_json is None else data_json
        return _dumps({"type": "new_message", "data": data})


@dataclass(frozen=True, slots=True)
class NotificationUpdate:
    """``notification_update {data: <notification>}``."""

    data: Notification

    def to_frame(self) -> bytes:
        return _dumps({"type": "notification_update", "data": self.data.to_json()})


@dataclass(frozen=True, slots=True)
class ProgressSync:
    """``progress_sync {data: {userId, subject, topic, completion, updatedAt}}``."""

    data: ProgressRecord

    def to_frame(self) -> bytes:
        return _dumps({"type": "progress_sync", "data": self.data.to_json()})


@dataclass(frozen=True, slots=True, kw_only=True)
class Pong:
    """``pong {ts}`` (plus ``requestId`` when the ping had one)."""

    ts: Any = None
    request_id: RequestId | None = None

    def to_frame(self) -> bytes:
        if self.request_id is None:
            return _dumps({"type": "pong", "ts": self.ts})
        return _dumps({"type": "pong", "ts": self.ts, "requestId": self.request_id})


@dataclass(frozen=True, slots=True, kw_only=True)
class Ack:
    """``ack {requestId, data}``: the effect of the request is durably stored."""

    request_id: RequestId
    data: Any = None

    def to_frame(self) -> bytes:
        return _dumps({"type": "ack", "requestId": self.request_id, "data": self.data})


@dataclass(frozen=True, slots=True, kw_only=True)
class Error:
    """``error {code, message}`` (plus ``requestId`` when the request had a well-formed one)."""

    code: str
    message: str
    request_id: RequestId | None = None

    def to_frame(self) -> bytes:
        if self.request_id is None:
            return _dumps({"type": "error", "code": self.code, "message": self.message})
        return _dumps(
            {
                "type": "error",
                "requestId": self.request_id,
                "code": self.code,
                "message": self.message,
            }
        )
