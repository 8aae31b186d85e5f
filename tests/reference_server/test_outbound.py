"""The raw frame writer against aiohttp's own ``WebSocketWriter``, byte for byte.

The server writes uncompressed frames itself (``outbound.write_frames``) instead of through
aiohttp; these tests fail the day aiohttp frames something differently from us.
"""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import WSMsgType
from aiohttp._websocket.writer import WebSocketWriter
from aiohttp.base_protocol import BaseProtocol

from reference_server.outbound import close_payload, write_frames

TEXT_SIZES = [0, 1, 125, 126, 127, 1000, 65535, 65536, 70_000]
CONTROL_SIZES = [0, 1, 12, 125]


class CapturingTransport(asyncio.Transport):
    """A transport that keeps what is written, one entry per ``write`` call."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return 0


def aiohttp_frames(payloads: list[bytes], opcode: WSMsgType) -> bytes:
    """What aiohttp's server-side writer (no mask, no compression) puts on the wire."""

    async def write() -> bytes:
        transport = CapturingTransport()
        writer = WebSocketWriter(BaseProtocol(asyncio.get_running_loop()), transport, limit=2**30)
        for payload in payloads:
            await writer.send_frame(payload, opcode)
        return b"".join(transport.writes)

    return asyncio.run(write())


def payload(n: int) -> bytes:
    return bytes(i % 251 for i in range(n))


@pytest.mark.parametrize(
    ("opcode", "size"),
    [(WSMsgType.TEXT, n) for n in TEXT_SIZES]
    + [(op, n) for op in (WSMsgType.PING, WSMsgType.CLOSE) for n in CONTROL_SIZES],
)
def test_a_raw_frame_is_byte_identical_to_aiohttps(opcode, size):
    transport = CapturingTransport()
    write_frames(transport, [payload(size)], opcode)
    assert transport.writes == [aiohttp_frames([payload(size)], opcode)]


def test_many_frames_leave_in_one_write_identical_to_aiohttps_sequence():
    frames = [payload(n) for n in TEXT_SIZES]
    transport = CapturingTransport()
    write_frames(transport, frames)
    assert transport.writes == [aiohttp_frames(frames, WSMsgType.TEXT)]


def test_close_payload_fits_a_control_frame_and_stays_utf8():
    assert close_payload(1000) == b"\x03\xe8"
    assert close_payload(4002, "slow") == b"\x0f\xa2slow"
    long = close_payload(1008, "é" * 100)  # 200 bytes of UTF-8: cut at a character boundary
    assert len(long) <= 125
    assert long[2:].decode() == "é" * 61
