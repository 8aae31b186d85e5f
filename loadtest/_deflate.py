"""permessage-deflate (RFC 7692) for the load generator's connections, as browsers negotiate it.

The deflate itself, the negotiation of its parameters and the RFC's framing rules (RSV1 on a message's first
frame, the ``00 00 ff ff`` tail, context takeover, window bits) are the ``websockets`` library's sans-I/O
extension (:class:`websockets.extensions.permessage_deflate.PerMessageDeflate`); this module only offers it
in the handshake and applies it to whole messages, which is what :class:`~loadtest._wire.FrameDecoder`
yields (a fragmented message is reassembled before it is inflated, as one final frame).

Browsers offer ``permessage-deflate; client_max_window_bits`` (Chromium, Firefox, Safari) with zlib's
defaults (memory level 8, default level) and context takeover both ways: that is the offer here.
"""

from __future__ import annotations

from websockets.exceptions import NegotiationError, PayloadTooBig
from websockets.exceptions import ProtocolError as _WsProtocolError
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory, PerMessageDeflate
from websockets.frames import Frame, Opcode
from websockets.headers import build_extension, parse_extension

from loadtest._wire import HandshakeFailed, ProtocolError

__all__ = ["BROWSER_OFFER", "Deflate", "negotiate", "offer_header"]

_FACTORY = ClientPerMessageDeflateFactory(client_max_window_bits=True)
BROWSER_OFFER = build_extension([(_FACTORY.name, _FACTORY.get_request_params())])
"""``permessage-deflate; client_max_window_bits``: the ``Sec-WebSocket-Extensions`` a browser sends."""
_OPCODES = {0x1: Opcode.TEXT, 0x2: Opcode.BINARY}


def offer_header() -> tuple[str, str]:
    """The handshake request header that offers permessage-deflate."""
    return ("Sec-WebSocket-Extensions", BROWSER_OFFER)


class Deflate:
    """One connection's negotiated permessage-deflate: compresses what it sends, inflates what it reads.

    Not thread-safe: :meth:`compress` runs under the connection's send lock, :meth:`inflate` in its receive
    greenlet (two zlib contexts, one per direction).

    Args:
        extension: the negotiated extension (its zlib contexts live as long as the connection).
        max_size: largest inflated message, in bytes (a "zip bomb" is a protocol error, not memory).
    """

    __slots__ = ("extension", "max_size")

    def __init__(self, extension: PerMessageDeflate, max_size: int) -> None:
        self.extension = extension
        self.max_size = max_size

    def compress(self, opcode: int, payload: bytes) -> bytes:
        """The compressed payload of one message (send it with ``opcode | RSV1``)."""
        return bytes(self.extension.encode(Frame(_OPCODES[opcode], payload)).data)

    def inflate(self, opcode: int, payload: bytes) -> bytes:
        """The payload of one compressed message (its first frame had RSV1).

        Raises:
            ProtocolError: the data does not inflate, or inflates beyond ``max_size``.
        """
        try:
            frame = self.extension.decode(Frame(_OPCODES[opcode], payload, rsv1=True), max_size=self.max_size)
        except PayloadTooBig as exc:
            raise ProtocolError(f"compressed message inflates beyond {self.max_size} bytes") from exc
        except _WsProtocolError as exc:
            raise ProtocolError(f"permessage-deflate: {exc}") from exc
        return bytes(frame.data)


def negotiate(response_header: str | None, max_size: int) -> Deflate | None:
    """The extension the server accepted (``Sec-WebSocket-Extensions`` of its 101), or ``None``.

    Raises:
        HandshakeFailed: the server answered with an extension or parameters that were not offered.
    """
    if not response_header:
        return None
    try:
        accepted = parse_extension(response_header)
    except Exception as exc:  # websockets' InvalidHeaderFormat: a header we cannot read
        raise HandshakeFailed(f"unreadable Sec-WebSocket-Extensions: {response_header[:120]!r}") from exc
    if len(accepted) != 1 or accepted[0][0] != _FACTORY.name:
        raise HandshakeFailed(f"server accepted extensions that were not offered: {response_header[:120]!r}")
    try:
        extension = _FACTORY.process_response_params(accepted[0][1], [])
    except NegotiationError as exc:
        raise HandshakeFailed(f"permessage-deflate: {exc}") from exc
    return Deflate(extension, max_size)
