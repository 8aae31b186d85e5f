"""How a connection's frames leave: straight to the transport, or through aiohttp's compressing writer.

Uncompressed connections (the default, and every client that did not negotiate
permessage-deflate) get :class:`RawOutbound`: frames are framed by :func:`write_frames` and
written without awaiting anything. aiohttp's ``send_*`` would await the drain of a slow
receiver's buffer, and so stall whoever sent to it; writing without awaiting lets the driver
bound the buffer itself (the slow-consumer close) and keeps one ``transport.write`` per loop pass
for everything a connection has queued (one syscall per group commit, not one per frame).

Connections that negotiated permessage-deflate (server started with ``--compress``) get
:class:`DeflateOutbound`: every frame goes, in order, through aiohttp's own ``WebSocketWriter``
(its deflate context, context takeover, RSV1 bit), driven by one task per connection, so a send
never blocks the caller either; frames framed in one pass of that task also leave in one write.
What waits in that task's queue counts towards :meth:`Outbound.buffered` like bytes in the
transport buffer.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections import deque
from collections.abc import Sequence
from typing import Protocol

from aiohttp import WSMsgType, hdrs, web
from aiohttp.base_protocol import BaseProtocol
from aiohttp.http import WebSocketWriter

__all__ = ["DeflateOutbound", "Outbound", "RawOutbound", "close_payload", "write_frames"]

log = logging.getLogger(__name__)

_HDR2 = struct.Struct("!BB")
_HDR4 = struct.Struct("!BBH")
_HDR10 = struct.Struct("!BBQ")

#: Control frames carry at most 125 bytes: the close code takes two.
_MAX_CLOSE_REASON = 123


def _frame(payload: bytes, first: int) -> bytes:
    n = len(payload)
    if n < 126:
        return _HDR2.pack(first, n) + payload
    if n < 65536:
        return _HDR4.pack(first, 126, n) + payload
    return _HDR10.pack(first, 127, n) + payload


def write_frames(transport: asyncio.WriteTransport, payloads: Sequence[bytes], opcode: int = 0x1) -> None:
    """Write ``payloads`` as RFC 6455 server frames (final, unmasked, uncompressed; ``opcode`` 0x1:
    text) in one write.

    The server's only raw frame writer: it bypasses aiohttp's ``WebSocketWriter`` so that the
    write never awaits a drain and many frames share one syscall. Its bytes must equal what
    aiohttp's writer produces for the same frames; ``tests/reference_server/test_outbound.py``
    compares them, and fails if aiohttp's framing changes. Never use it on a connection that
    negotiated permessage-deflate (:class:`DeflateOutbound` is for those).
    """
    first = 0x80 | opcode  # FIN; RSV bits clear: never compressed
    if len(payloads) == 1:
        transport.write(_frame(payloads[0], first))
    else:
        transport.write(b"".join([_frame(p, first) for p in payloads]))


def close_payload(code: int, reason: str = "") -> bytes:
    """A close frame's payload: the code, then the reason cut to fit on a UTF-8 boundary."""
    raw = reason.encode()
    if len(raw) > _MAX_CLOSE_REASON:
        raw = raw[:_MAX_CLOSE_REASON].decode(errors="ignore").encode()
    return code.to_bytes(2, "big") + raw


class Outbound(Protocol):
    """Where a connection's frames go. No method blocks or awaits."""

    def send(self, payloads: Sequence[bytes]) -> None:
        """Send text frames, in order."""

    def ping(self, payload: bytes) -> None:
        """Send a ping after everything sent so far."""

    def close(self, code: int, reason: str) -> None:
        """Send the close frame after everything sent so far, then half-close (FIN)."""

    def buffered(self) -> int:
        """Bytes accepted but not yet handed to the kernel."""

    def stop(self) -> None:
        """The connection has ended: drop what is still queued."""


class RawOutbound:
    """Uncompressed frames, written straight to the transport by :func:`write_frames`."""

    def __init__(self, transport: asyncio.WriteTransport) -> None:
        self._transport = transport

    def send(self, payloads: Sequence[bytes]) -> None:
        write_frames(self._transport, payloads)

    def ping(self, payload: bytes) -> None:
        write_frames(self._transport, (payload,), WSMsgType.PING)

    def close(self, code: int, reason: str) -> None:
        transport = self._transport
        write_frames(transport, (close_payload(code, reason),), WSMsgType.CLOSE)
        if transport.can_write_eof():
            transport.write_eof()

    def buffered(self) -> int:
        return self._transport.get_write_buffer_size()

    def stop(self) -> None:
        pass


class _Collector(asyncio.Transport):
    """Where :class:`DeflateOutbound`'s writer puts frames, to leave in one real write."""

    def __init__(self, transport: asyncio.WriteTransport) -> None:
        super().__init__()
        self.chunks: list[bytes] = []
        self.size = 0
        self._transport = transport

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.chunks.append(bytes(data))
        self.size += len(data)

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def take(self) -> bytes:
        data = b"".join(self.chunks)
        self.chunks.clear()
        self.size = 0
        return data


class DeflateOutbound:
    """Frames through aiohttp's compressing ``WebSocketWriter``, in order, from one task.

    The writer is aiohttp's own, set up as the handshake negotiated (window bits, context
    takeover); it holds the connection's deflate context, so every data frame must go through
    it, in order. It writes into a collector: what one pass of the task framed leaves in one
    ``transport.write``, as on the uncompressed path. The writer compresses large frames (over
    16 KiB) in an executor; the task absorbs that wait, so :meth:`send` returns at once. Flow
    control is the driver's, through :meth:`buffered`, so the writer never waits for a drain.
    Control frames aiohttp sends by itself (heartbeat pings, pongs) are never compressed and
    do not touch the deflate context.
    """

    def __init__(self, ws: web.WebSocketResponse, transport: asyncio.WriteTransport) -> None:
        self._transport = transport
        self._loop = asyncio.get_running_loop()
        self._collector = _Collector(transport)
        extensions = ws.headers.get(hdrs.SEC_WEBSOCKET_EXTENSIONS, "")
        self._writer = WebSocketWriter(
            BaseProtocol(self._loop),  # never consulted: the limit below rules out a drain
            self._collector,
            compress=int(ws.compress),
            notakeover="server_no_context_takeover" in extensions,
            limit=2**62,
        )
        self._queue: deque[tuple[bytes, WSMsgType]] = deque()
        self._queued_bytes = 0
        self._eof = False
        self._wakeup: asyncio.Future[None] | None = None
        self._task = self._loop.create_task(self._run())

    def _put(self, payload: bytes, opcode: WSMsgType) -> None:
        self._queue.append((payload, opcode))
        self._queued_bytes += len(payload)
        wakeup = self._wakeup
        if wakeup is not None:
            self._wakeup = None
            if not wakeup.done():
                wakeup.set_result(None)

    def send(self, payloads: Sequence[bytes]) -> None:
        for payload in payloads:
            self._put(payload, WSMsgType.TEXT)

    def ping(self, payload: bytes) -> None:
        self._put(payload, WSMsgType.PING)

    def close(self, code: int, reason: str) -> None:
        self._put(close_payload(code, reason), WSMsgType.CLOSE)
        self._eof = True

    def buffered(self) -> int:
        return self._queued_bytes + self._collector.size + self._transport.get_write_buffer_size()

    def stop(self) -> None:
        self._task.cancel()

    async def _run(self) -> None:
        queue = self._queue
        send_frame = self._writer.send_frame
        collector = self._collector
        transport = self._transport
        try:
            while True:
                while queue:
                    payload, opcode = queue.popleft()
                    self._queued_bytes -= len(payload)
                    await send_frame(payload, opcode)
                if transport.is_closing():
                    return
                transport.write(collector.take())
                if self._eof:
                    if transport.can_write_eof():
                        transport.write_eof()
                    return
                self._wakeup = self._loop.create_future()
                await self._wakeup
        except (ConnectionError, RuntimeError) as exc:  # the peer is gone; stop() follows
            log.debug("compressed send ended: %r", exc)
