"""Protocol errors, and whose fault they are.

Every way an inbound frame can be wrong is a :class:`ProtocolError` subclass that carries the
stable ``code`` sent to the client in an ``error`` frame, or, for the few faults that end the
connection, the RFC 6455 close code. Errors never escape the receive path: the
:class:`~reference_server.protocol.Session` turns each one into an ``error`` frame or a close,
and keeps the exception for logs.

Exception tree::

    ProtocolError                    base; .code, .close_code (None: connection stays up)
    ├── RemoteProtocolError          the client sent something wrong (error frame, stays up)
    │   ├── InvalidJSON              invalid_json
    │   ├── InvalidMessage           invalid_message   (not an object, no/bad "type")
    │   ├── UnknownType              unknown_type
    │   ├── InvalidField             invalid_field     (missing or mistyped field)
    │   ├── InvalidReceiver          invalid_receiver  (receiverId not a usable user id)
    │   ├── ContentTooLong           content_too_long
    │   ├── InvalidBatch             invalid_batch     (nested batch, not a list)
    │   ├── BatchTooLarge            batch_too_large
    │   ├── NotFound                 not_found         (no such notification *of yours*)
    │   └── RateLimited              rate_limited
    ├── ConnectionClosingError       the connection must end; .close_code is set
    │   ├── UnsupportedData          1003  binary frame
    │   ├── InvalidPayloadData       1007  text frame that is not UTF-8
    │   ├── MessageTooBig            1009  frame over the size limit
    │   ├── SessionExpired           4001  the NextAuth session behind the socket expired
    │   └── SlowConsumer             4002  the client stopped reading; outbound buffer full
    └── LocalProtocolError           the server failed (internal_error, stays up)
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "CLOSE_GOING_AWAY",
    "CLOSE_INTERNAL_ERROR",
    "CLOSE_INVALID_PAYLOAD",
    "CLOSE_MESSAGE_TOO_BIG",
    "CLOSE_NORMAL",
    "CLOSE_SESSION_EXPIRED",
    "CLOSE_SLOW_CONSUMER",
    "CLOSE_UNSUPPORTED_DATA",
    "ERROR_CODES",
    "BatchTooLarge",
    "ConnectionClosingError",
    "ContentTooLong",
    "InvalidBatch",
    "InvalidField",
    "InvalidJSON",
    "InvalidMessage",
    "InvalidPayloadData",
    "InvalidReceiver",
    "LocalProtocolError",
    "MessageTooBig",
    "NotFound",
    "ProtocolError",
    "RateLimited",
    "RemoteProtocolError",
    "SessionExpired",
    "SlowConsumer",
    "UnknownType",
    "UnsupportedData",
]

#: RFC 6455 §7.4.1 close codes, plus two private-use (4000-4999) codes of our own.
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_UNSUPPORTED_DATA = 1003
CLOSE_INVALID_PAYLOAD = 1007
CLOSE_MESSAGE_TOO_BIG = 1009
CLOSE_INTERNAL_ERROR = 1011
CLOSE_SESSION_EXPIRED = 4001
CLOSE_SLOW_CONSUMER = 4002


class ProtocolError(Exception):
    """Base class of every protocol fault.

    Attributes:
        code: Stable machine-readable code, sent as ``error.code``.
        close_code: WebSocket close code if the fault ends the connection, else ``None``.
    """

    code: ClassVar[str] = "protocol_error"
    close_code: ClassVar[int | None] = None

    @property
    def message(self) -> str:
        """Human-readable explanation, sent as ``error.message`` or the close reason."""
        return str(self) or self.code


class RemoteProtocolError(ProtocolError):
    """The client broke the protocol; it gets an ``error`` frame and the connection stays up."""


class InvalidJSON(RemoteProtocolError):
    code = "invalid_json"


class InvalidMessage(RemoteProtocolError):
    code = "invalid_message"


class UnknownType(RemoteProtocolError):
    code = "unknown_type"


class InvalidField(RemoteProtocolError):
    code = "invalid_field"


class InvalidReceiver(RemoteProtocolError):
    code = "invalid_receiver"


class ContentTooLong(RemoteProtocolError):
    code = "content_too_long"


class InvalidBatch(RemoteProtocolError):
    code = "invalid_batch"


class BatchTooLarge(RemoteProtocolError):
    code = "batch_too_large"


class NotFound(RemoteProtocolError):
    code = "not_found"


class RateLimited(RemoteProtocolError):
    code = "rate_limited"


class ConnectionClosingError(ProtocolError):
    """A fault that ends the connection with :attr:`close_code`."""

    code = "connection_closing"
    close_code: ClassVar[int | None] = CLOSE_INTERNAL_ERROR


class UnsupportedData(ConnectionClosingError):
    code = "unsupported_data"
    close_code = CLOSE_UNSUPPORTED_DATA


class InvalidPayloadData(ConnectionClosingError):
    code = "invalid_payload"
    close_code = CLOSE_INVALID_PAYLOAD


class MessageTooBig(ConnectionClosingError):
    code = "message_too_big"
    close_code = CLOSE_MESSAGE_TOO_BIG


class SessionExpired(ConnectionClosingError):
    code = "session_expired"
    close_code = CLOSE_SESSION_EXPIRED


class SlowConsumer(ConnectionClosingError):
    code = "slow_consumer"
    close_code = CLOSE_SLOW_CONSUMER


class LocalProtocolError(ProtocolError):
    """The server failed to handle a well-formed frame (e.g. the store raised)."""

    code = "internal_error"


#: Every ``error.code`` a client can receive, for docs and tests.
ERROR_CODES: tuple[str, ...] = tuple(
    cls.code
    for cls in (
        InvalidJSON,
        InvalidMessage,
        UnknownType,
        InvalidField,
        InvalidReceiver,
        ContentTooLong,
        InvalidBatch,
        BatchTooLarge,
        NotFound,
        RateLimited,
        LocalProtocolError,
    )
)
