"""The frames of the seed protocol as msgspec ``Struct`` schemas, one per ``type``.

Inbound (client → server): :class:`ChatMessage`, :class:`NotificationRead`,
:class:`ProgressUpdate`, :class:`Batch`, :class:`Ping`. :func:`decode_message` turns one text
frame into one of them in a single C call (JSON parsing, the ``type`` tag, field types and
bounds); whatever does not fit the schema becomes a
:class:`~reference_server.errors.RemoteProtocolError` whose code says which part was wrong
(:func:`_protocol_error`). Unknown fields are ignored, so a client-sent ``senderId`` is dropped,
never trusted.

Outbound (server → client): :class:`NewMessage`, :class:`NotificationUpdate`,
:class:`ProgressSync`, :class:`Pong`, :class:`Ack`, :class:`Error`; :func:`encode` serialises
any of them to the frame's UTF-8 JSON text.

Records (what the store holds and what ``data`` carries): :class:`StoredMessage`,
:class:`Notification`, :class:`ProgressRecord`. Inbox records travel with their store sequence
number as ``(seq, record)`` pairs; the number is not part of the wire format.

Wire names are camelCase (``receiverId``, ``requestId``); Python names are snake_case.
"""

from __future__ import annotations

import codecs
import re
from typing import Annotated, Any, TypeAlias

import msgspec
import orjson

from nextauth_tokens import UserId

from .errors import (
    InvalidBatch,
    InvalidField,
    InvalidJSON,
    InvalidMessage,
    InvalidPayloadData,
    InvalidReceiver,
    RemoteProtocolError,
    UnknownType,
)

__all__ = [
    "INBOUND_TYPES",
    "MAX_FIELD_LENGTH",
    "MAX_REQUEST_ID_LENGTH",
    "MAX_USER_ID_LENGTH",
    "Ack",
    "Batch",
    "ChatContent",
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
    "decode_message",
    "encode",
    "parse_message",
    "request_id_of",
    "validate_user_id",
]

MAX_USER_ID_LENGTH = 256
MAX_REQUEST_ID_LENGTH = 128
#: Limit for short string fields (notification ids, subject, topic, timestamps).
MAX_FIELD_LENGTH = 256
_SAFE_INT = 2**53

UserIdField = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_USER_ID_LENGTH)]
ShortStr = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_FIELD_LENGTH)]
#: A client-chosen correlation id (string or safe integer), echoed unchanged in ``ack``/``error``.
RequestId: TypeAlias = (
    Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_REQUEST_ID_LENGTH)]
    | Annotated[int, msgspec.Meta(gt=-_SAFE_INT, lt=_SAFE_INT)]
)
#: A client's own timestamp (an ISO string in the seed, or a number), echoed unchanged.
ClientTime: TypeAlias = ShortStr | int | float | None

_encode = msgspec.json.Encoder().encode


def encode(value: Any) -> bytes:
    """The UTF-8 JSON text of one outbound frame, record or plain JSON value."""
    return _encode(value)


# ---------------------------------------------------------------------------------------------
# Inbound frames


class _Inbound(msgspec.Struct, frozen=True, kw_only=True, rename="camel", tag_field="type", gc=False):
    request_id: RequestId | None = None


class ChatContent(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """The ``message`` object of a ``chat_message``.

    ``timestamp`` is the client's own; the server echoes it unchanged in ``new_message`` so that
    receivers can measure end-to-end latency. When absent the server uses ``createdAt``. The
    content length limit is a :class:`~reference_server.protocol.Session` parameter, checked there.
    """

    content: str
    timestamp: ClientTime = None


class ChatMessage(_Inbound, frozen=True, kw_only=True, tag="chat_message"):
    """``chat_message {receiverId, message: {content, timestamp}}``."""

    receiver_id: UserIdField
    message: ChatContent

    @property
    def content(self) -> str:
        return self.message.content

    @property
    def timestamp(self) -> str | int | float | None:
        return self.message.timestamp


class NotificationRead(_Inbound, frozen=True, kw_only=True, tag="notification_read"):
    """``notification_read {id}``: mark one of the caller's notifications read."""

    id: ShortStr


class ProgressFields(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """The ``progress`` object of a ``progress_update``; completion is a percentage."""

    subject: ShortStr
    topic: ShortStr
    completion: Annotated[float, msgspec.Meta(ge=0, le=100)]


class ProgressUpdate(_Inbound, frozen=True, kw_only=True, tag="progress_update"):
    """``progress_update {progress: {subject, topic, completion}}``."""

    progress: ProgressFields

    @property
    def subject(self) -> str:
        return self.progress.subject

    @property
    def topic(self) -> str:
        return self.progress.topic

    @property
    def completion(self) -> float:
        return self.progress.completion


class Ping(_Inbound, frozen=True, kw_only=True, tag="ping"):
    """``ping {ts}``: an application-level latency probe, answered at once by ``pong {ts}``."""

    ts: ClientTime = None

    def response(self) -> Pong:
        """The ``pong`` that answers this ping."""
        return Pong(ts=self.ts, request_id=self.request_id)


class Batch(_Inbound, frozen=True, kw_only=True, tag="batch"):
    """``batch {messages: [...]}``: inner frames, still undecoded, each handled as if sent alone.

    The inner items stay raw JSON so that one bad item yields one ``error`` and does not spoil
    the others. The count limit is a Session parameter.
    """

    messages: list[msgspec.Raw]


InboundMessage: TypeAlias = ChatMessage | NotificationRead | ProgressUpdate | Ping | Batch

#: Wire ``type`` → inbound Struct.
INBOUND_TYPES: dict[str, type[InboundMessage]] = {
    "chat_message": ChatMessage,
    "notification_read": NotificationRead,
    "progress_update": ProgressUpdate,
    "batch": Batch,
    "ping": Ping,
}

_decoder = msgspec.json.Decoder(InboundMessage)
_AT = re.compile(r" - at `\$(.*)`$")
_MISSING = re.compile(r"Object missing required field `([^`]*)`")


def _protocol_error(exc: msgspec.DecodeError) -> RemoteProtocolError:
    """The protocol error for a frame that did not fit the schema, chosen by where it failed."""
    text = str(exc)
    if not isinstance(exc, msgspec.ValidationError):  # a DecodeError proper: not JSON at all
        return InvalidJSON(f"frame is not valid JSON: {text}")
    match = _AT.search(text)
    path = match.group(1) if match else ""
    if not path:
        missing = _MISSING.match(text)
        field = missing.group(1) if missing else None
        if field is None or field == "type":
            return InvalidMessage(f"a frame must be a JSON object with a string 'type': {text}")
        if field == "receiverId":
            return InvalidReceiver(f"receiverId is required: {text}")
        if field == "messages":
            return InvalidBatch(f"batch.messages is required: {text}")
        return InvalidField(text)
    if path == ".type":
        if text.startswith("Invalid value"):
            shown = text[len("Invalid value ") : match.start()]
            return UnknownType(f"unknown message type {shown if len(shown) <= 66 else shown[:64] + '…'}")
        return InvalidMessage("a frame must have a string 'type'")
    if path == ".receiverId":
        return InvalidReceiver(f"receiverId must be 1 to {MAX_USER_ID_LENGTH} characters: {text}")
    if path.startswith(".messages") and path.count(".") == 1:
        return InvalidBatch(f"batch.messages must be an array: {text}")
    return InvalidField(text)


def decode_message(data: str | bytes) -> InboundMessage:
    """Decode and check one inbound text frame.

    Raises:
        InvalidJSON: The frame is not JSON.
        InvalidPayloadData: The frame is not UTF-8 (only possible for ``bytes`` input).
        InvalidMessage, UnknownType, InvalidField, InvalidReceiver, InvalidBatch: the JSON does
            not fit the frame's schema.
    """
    if type(data) is not str:  # WebSocket stacks hand over text frames as checked str; bytes are not
        try:
            codecs.decode(data, "utf-8")
        except UnicodeDecodeError:
            raise InvalidPayloadData("text frame is not valid UTF-8") from None
    try:
        return _decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise _protocol_error(exc) from None


def parse_message(obj: object) -> InboundMessage:
    """Check an already decoded JSON value against the frame schemas (as :func:`decode_message`)."""
    try:
        return msgspec.convert(obj, InboundMessage)  # type: ignore[arg-type]
    except msgspec.DecodeError as exc:
        raise _protocol_error(exc) from None


def request_id_of(data: str | bytes | msgspec.Raw) -> RequestId | None:
    """The ``requestId`` of a rejected frame if it has a well-formed one, else ``None``."""
    try:
        obj = orjson.loads(data if isinstance(data, str | bytes) else bytes(data))
    except orjson.JSONDecodeError:
        return None
    if type(obj) is not dict:
        return None
    try:  # the frame schemas' own RequestId rule, not a second copy of it
        return msgspec.convert(obj.get("requestId"), RequestId)  # type: ignore[arg-type]
    except msgspec.ValidationError:
        return None


def validate_user_id(value: object, name: str = "receiverId") -> UserId:
    """Return ``value`` as a user id, or raise :class:`InvalidReceiver`.

    Any non-empty string of at most :data:`MAX_USER_ID_LENGTH` characters is a user id: the
    server keeps no user directory.
    """
    if type(value) is not str:
        raise InvalidReceiver(f"{name} must be a string")
    if not value or len(value) > MAX_USER_ID_LENGTH:
        raise InvalidReceiver(f"{name} must be 1 to {MAX_USER_ID_LENGTH} characters")
    return UserId(value)


# ---------------------------------------------------------------------------------------------
# Records


class StoredMessage(msgspec.Struct, frozen=True, kw_only=True, rename="camel", gc=False):
    """A chat message as stored: the ``data`` of ``new_message`` and of its ``ack``."""

    id: str
    sender_id: str
    receiver_id: str
    content: str
    timestamp: Any
    created_at: str


class Notification(msgspec.Struct, frozen=True, kw_only=True, rename="camel", omit_defaults=True):
    """A notification: the ``data`` of ``notification_update``, and the POST response body.

    ``type``, ``link`` and ``data`` are the optional fields a back end may supply; absent ones
    are left out of the JSON.
    """

    id: str
    user_id: str
    title: str
    body: str
    read: bool
    created_at: str
    updated_at: str
    type: str | msgspec.UnsetType = msgspec.UNSET
    link: str | msgspec.UnsetType = msgspec.UNSET
    data: dict[str, Any] | msgspec.UnsetType = msgspec.UNSET

    def extra(self) -> dict[str, Any]:
        """The optional fields that are set."""
        return {
            name: value
            for name in ("type", "link", "data")
            if (value := getattr(self, name)) is not msgspec.UNSET
        }


class ProgressRecord(msgspec.Struct, frozen=True, kw_only=True, rename="camel", gc=False):
    """A user's progress on one (subject, topic): the ``data`` of ``progress_sync``."""

    user_id: str
    subject: str
    topic: str
    completion: float
    updated_at: str


# ---------------------------------------------------------------------------------------------
# Outbound frames


class _Outbound(msgspec.Struct, frozen=True, kw_only=True, rename="camel", tag_field="type", gc=False):
    pass


class NewMessage(_Outbound, frozen=True, kw_only=True, tag="new_message"):
    """``new_message {data: {id, senderId, receiverId, content, timestamp, createdAt}}``.

    ``data`` may be the record already serialised (``msgspec.Raw``), to share it with the ack.
    """

    data: StoredMessage | msgspec.Raw


class NotificationUpdate(_Outbound, frozen=True, kw_only=True, tag="notification_update"):
    """``notification_update {data: <notification>}``."""

    data: Notification


class ProgressSync(_Outbound, frozen=True, kw_only=True, tag="progress_sync"):
    """``progress_sync {data: {userId, subject, topic, completion, updatedAt}}``."""

    data: ProgressRecord


class Pong(_Outbound, frozen=True, kw_only=True, tag="pong", omit_defaults=True):
    """``pong {ts}`` (plus ``requestId`` when the ping had one)."""

    ts: Any
    request_id: RequestId | None = None


class Ack(_Outbound, frozen=True, kw_only=True, tag="ack"):
    """``ack {requestId, data}``: the effect of the request is durably stored."""

    request_id: RequestId
    data: Any = None


class Error(_Outbound, frozen=True, kw_only=True, tag="error", omit_defaults=True):
    """``error {code, message}`` (plus ``requestId`` when the request had a well-formed one)."""

    code: str
    message: str
    request_id: RequestId | None = None
