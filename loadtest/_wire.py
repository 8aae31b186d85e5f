"""RFC 6455 on the client side, sans I/O: the opening handshake, masked frames out, frames in.

Why not websocket-client's own framing: it reads the handshake response one byte per ``recv`` (a 101 response
of ~130 bytes is ~130 system calls and greenlet switches: the ``connect`` time was 6 x the wire's under load),
and it reads each frame with two or three ``recv`` calls of exactly the bytes it needs, so the second of two
frames that arrived in one TCP segment was timed only after the first was handled. :class:`FrameDecoder`
takes whatever one ``recv`` returned and yields every complete frame in it, so the caller stamps one receive
time per read, before handling any of its frames.

Client frames must be masked (RFC 6455 section 5.3). The mask protects browsers' shared proxies from
cache poisoning by script-chosen payloads; a load generator writes its own payloads, so a mask key from a
fast seeded generator is enough (``os.urandom`` per frame was a measurable share of a send).
"""

from __future__ import annotations

import base64
import hashlib
import random
from typing import Final

__all__ = [
    "OP_BINARY",
    "OP_CLOSE",
    "OP_CONTINUATION",
    "OP_PING",
    "OP_PONG",
    "OP_TEXT",
    "RSV1",
    "FrameDecoder",
    "HandshakeFailed",
    "HandshakeRejected",
    "ProtocolError",
    "accept_key",
    "encode_frame",
    "handshake_request",
    "new_key",
    "parse_handshake_response",
]

OP_CONTINUATION: Final = 0x0
OP_TEXT: Final = 0x1
OP_BINARY: Final = 0x2
OP_CLOSE: Final = 0x8
OP_PING: Final = 0x9
OP_PONG: Final = 0xA
RSV1: Final = 0x40
"""The first frame's RSV1 bit (a compressed message under permessage-deflate): ORed into the opcode that
:func:`encode_frame` takes and :class:`FrameDecoder` returns, when an extension was negotiated."""

_GUID: Final = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MAX_HANDSHAKE_BYTES: Final = 64 * 1024
MAX_MESSAGE_BYTES: Final = 64 * 1024 * 1024

_masks = random.Random()  # seeded from os.urandom once; see the module docstring


class ProtocolError(Exception):
    """The server broke RFC 6455 (masked or reserved-bit frames, bad fragmentation, oversized message)."""


class HandshakeFailed(Exception):
    """The server's response is not a valid WebSocket upgrade."""


class HandshakeRejected(HandshakeFailed):
    """The server answered the upgrade with another HTTP status (401, 403, 503 ...)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"Handshake status {status} {reason}".rstrip())
        self.status_code = status


def new_key() -> str:
    """A ``Sec-WebSocket-Key`` (16 random bytes, base64)."""
    return base64.b64encode(_masks.getrandbits(128).to_bytes(16, "big")).decode("ascii")


def accept_key(key: str) -> str:
    """The ``Sec-WebSocket-Accept`` a server must answer ``key`` with."""
    return base64.b64encode(hashlib.sha1(key.encode("ascii") + _GUID).digest()).decode("ascii")


def handshake_request(
    host: str,
    port: int,
    path: str,
    key: str,
    *,
    secure: bool,
    cookie: str | None,
    headers: tuple[tuple[str, str], ...] = (),
) -> bytes:
    """The upgrade request (no ``Origin`` unless in ``headers``: a load generator is no browser)."""
    default_port = 443 if secure else 80
    authority = host if port == default_port else f"{host}:{port}"
    if ":" in host and not host.startswith("["):
        authority = f"[{host}]" if port == default_port else f"[{host}]:{port}"
    lines = [
        f"GET {path or '/'} HTTP/1.1",
        f"Host: {authority}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
    ]
    if cookie:
        lines.append(f"Cookie: {cookie}")
    lines.extend(f"{name}: {value}" for name, value in headers)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def parse_handshake_response(head: bytes, key: str) -> dict[str, str]:
    """Check the response head (up to the blank line) of an upgrade request sent with ``key``.

    Returns:
        The response headers, names lower-cased (a repeated header's values joined by ``, ``).

    Raises:
        HandshakeRejected: another status than 101.
        HandshakeFailed: a 101 without the upgrade headers or with a wrong accept key.
    """
    try:
        text = head.decode("latin-1")
        status_line, *header_lines = text.split("\r\n")
        version, status_text, *reason = status_line.split(" ", 2)
        status = int(status_text)
    except ValueError as exc:
        raise HandshakeFailed(f"not an HTTP response: {head[:80]!r}") from exc
    if not version.startswith("HTTP/1."):
        raise HandshakeFailed(f"not an HTTP/1.1 response: {status_line[:80]!r}")
    if status != 101:
        raise HandshakeRejected(status, reason[0] if reason else "")
    headers: dict[str, str] = {}
    for line in header_lines:
        name, sep, value = line.partition(":")
        if sep:
            lowered = name.strip().lower()
            previous = headers.get(lowered)
            headers[lowered] = value.strip() if previous is None else f"{previous}, {value.strip()}"
    if headers.get("upgrade", "").lower() != "websocket":
        raise HandshakeFailed("101 response without 'Upgrade: websocket'")
    if "upgrade" not in headers.get("connection", "").lower():
        raise HandshakeFailed("101 response without 'Connection: Upgrade'")
    if headers.get("sec-websocket-accept") != accept_key(key):
        raise HandshakeFailed("wrong Sec-WebSocket-Accept")
    return headers


def encode_frame(opcode: int, payload: bytes) -> bytes:
    """One final, masked client frame (``opcode | RSV1`` for a compressed message)."""
    n = len(payload)
    if n < 126:
        header = bytes((0x80 | opcode, 0x80 | n))
    elif n < 65536:
        header = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        header = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
    mask = _masks.getrandbits(32)
    key = mask.to_bytes(4, "little")
    if not n:
        return header + key
    # XOR the whole payload as one integer: one C-level operation instead of a loop per byte.
    repeated = int.from_bytes((key * ((n + 3) >> 2))[:n], "little")
    return header + key + (int.from_bytes(payload, "little") ^ repeated).to_bytes(n, "little")


class FrameDecoder:
    """Server frames from a byte stream: feed it what each ``recv`` returned, get the complete messages.

    Fragmented messages are reassembled (control frames may arrive between their fragments).

    Args:
        max_message: largest message accepted, in bytes (as on the wire).
        rsv1: an extension (permessage-deflate) gave RSV1 a meaning: a message whose first frame has it comes
            out as ``opcode | RSV1``; without, RSV1 is a protocol error.

    Raises (from :meth:`feed`): :class:`ProtocolError`.
    """

    def __init__(self, max_message: int = MAX_MESSAGE_BYTES, *, rsv1: bool = False) -> None:
        self._rest = b""
        self._parts: list[bytes] = []
        self._parts_opcode = -1  # opcode of the message being reassembled, -1 if none
        self._parts_size = 0
        self.max_message = max_message
        self._reserved = 0x30 if rsv1 else 0x70

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        """Return ``(opcode, payload)`` of every message and control frame completed by ``data``."""
        if self._rest:
            data = self._rest + data
        out: list[tuple[int, bytes]] = []
        pos = 0
        end = len(data)
        while end - pos >= 2:
            b0 = data[pos]
            b1 = data[pos + 1]
            if b0 & self._reserved:
                raise ProtocolError("frame with reserved bits set (no extension gave them a meaning)")
            if b1 & 0x80:
                raise ProtocolError("masked frame from the server")
            length = b1
            start = pos + 2
            if length == 126:
                if end - pos < 4:
                    break
                length = int.from_bytes(data[start : start + 2], "big")
                start += 2
            elif length == 127:
                if end - pos < 10:
                    break
                length = int.from_bytes(data[start : start + 8], "big")
                start += 8
            if length > self.max_message:
                raise ProtocolError(f"frame of {length} bytes (limit {self.max_message})")
            stop = start + length
            if stop > end:
                break
            payload = data[start:stop]
            pos = stop
            opcode = b0 & 0x0F
            fin = b0 & 0x80
            if opcode >= OP_CLOSE:
                if not fin or length > 125 or opcode > OP_PONG or b0 & RSV1:
                    raise ProtocolError(f"bad control frame (opcode {opcode:#x})")
                out.append((opcode, payload))
            elif opcode == OP_CONTINUATION:
                if self._parts_opcode < 0:
                    raise ProtocolError("continuation frame outside a fragmented message")
                if b0 & RSV1:
                    raise ProtocolError("RSV1 set on a continuation frame")
                self._add_part(payload)
                if fin:
                    out.append((self._parts_opcode, b"".join(self._parts)))
                    self._parts, self._parts_opcode, self._parts_size = [], -1, 0
            elif opcode <= OP_BINARY:
                if self._parts_opcode >= 0:
                    raise ProtocolError("new message inside a fragmented message")
                if fin:
                    out.append((opcode | (b0 & RSV1), payload))
                else:
                    self._parts_opcode = opcode | (b0 & RSV1)
                    self._add_part(payload)
            else:
                raise ProtocolError(f"reserved opcode {opcode:#x}")
        self._rest = data[pos:] if pos < end else b""
        return out

    def _add_part(self, payload: bytes) -> None:
        self._parts_size += len(payload)
        if self._parts_size > self.max_message:
            raise ProtocolError(f"fragmented message over {self.max_message} bytes")
        self._parts.append(payload)
