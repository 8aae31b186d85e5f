"""permessage-deflate (RFC 7692), end to end: the real server with and without ``--compress``.

Clients: aiohttp's client with ``compress=15`` (it negotiates the extension and inflates what
it reads) and a raw socket that reads the server's frames as they are on the wire.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import time
import zlib
from typing import Any

import aiohttp
import pytest

from tests.conftest import RunningServer

from .helpers import chat, recv_json, uid

pytestmark = pytest.mark.timeout(60)

DEFLATE_OFFER = "permessage-deflate; client_max_window_bits"


@pytest.fixture(scope="module")
def compressing(module_reference_server_factory) -> RunningServer:
    return module_reference_server_factory("--compress", "--confirm-interval", "0.05")


@pytest.fixture(scope="module")
def plain(module_reference_server_factory) -> RunningServer:
    return module_reference_server_factory()


async def _connect(server: RunningServer, session: aiohttp.ClientSession, user: str) -> Any:
    return await session.ws_connect(server.ws_url, headers={"Cookie": server.cookie(user)}, compress=15)


async def _receive(ws: Any, timeout: float = 5.0) -> dict[str, Any]:
    msg = await ws.receive(timeout=timeout)
    assert msg.type is aiohttp.WSMsgType.TEXT, msg
    return json.loads(msg.data)


def test_a_client_that_offers_deflate_gets_it_and_every_frame_kind_arrives(compressing):
    alice, bob = uid("alice"), uid("bob")
    long_content = "é" * 10_000  # a 20 KB frame: compressed outside the event loop

    async def main() -> None:
        async with aiohttp.ClientSession() as session:
            a = await _connect(compressing, session, alice)
            assert a.compress == 15
            b = compressing.connect(bob)  # websocket-client: no deflate offered, none used
            await a.send_str(chat(bob, "hi", requestId="r1"))
            ack = await _receive(a)
            assert ack["type"] == "ack" and ack["requestId"] == "r1"
            assert await asyncio.to_thread(recv_json, b) == {"type": "new_message", "data": ack["data"]}
            await a.send_str(chat(alice, long_content, requestId="r2"))
            pushed, ack2 = await _receive(a), await _receive(a)
            assert pushed["type"] == "new_message" and pushed["data"]["content"] == long_content
            assert ack2 == {"type": "ack", "requestId": "r2", "data": pushed["data"]}
            await a.send_str('{"type":"ping","ts":7}')
            assert await _receive(a) == {"type": "pong", "ts": 7}
            await a.send_str("{")
            assert (await _receive(a))["code"] == "invalid_json"
            await a.send_bytes(b"\x00")
            msg = await a.receive(timeout=5)
            assert msg.type is aiohttp.WSMsgType.CLOSE and msg.data == 1003
            b.close()

    asyncio.run(main())


def test_backlog_over_deflate_is_delivered_then_confirmed(compressing):
    sender, carol = uid("sender"), uid("carol")
    s = compressing.connect(sender)
    for i in range(30):
        s.send(chat(carol, f"m{i}", requestId=i))
    assert [recv_json(s)["requestId"] for _ in range(30)] == list(range(30))

    async def main() -> None:
        async with aiohttp.ClientSession() as session:
            c = await _connect(compressing, session, carol)
            got = [(await _receive(c))["data"]["content"] for _ in range(30)]
            assert got == [f"m{i}" for i in range(30)]
            with pytest.raises(asyncio.TimeoutError):
                await c.receive(timeout=0.5)  # meanwhile aiohttp answers the confirmation ping
            await c.close()
            again = await _connect(compressing, session, carol)
            with pytest.raises(asyncio.TimeoutError):
                await again.receive(timeout=0.3)  # confirmed by the pong: not sent again
            await again.close()

    asyncio.run(main())


def _raw_upgrade(server: RunningServer, user: str, extensions: str | None) -> tuple[socket.socket, str]:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        "GET /ws HTTP/1.1",
        f"Host: 127.0.0.1:{server.port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
        f"Cookie: {server.cookie(user)}",
        *([f"Sec-WebSocket-Extensions: {extensions}"] if extensions else []),
    ]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    return sock, head.decode()


def _send_masked_text(sock: socket.socket, payload: bytes) -> None:
    assert len(payload) < 126
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    sock.sendall(bytes((0x81, 0x80 | len(payload))) + mask + masked)


def _read_frame(sock: socket.socket) -> tuple[int, bytes]:
    def exactly(n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            assert chunk, "connection closed"
            data += chunk
        return data

    first, second = exactly(2)
    n = second & 0x7F
    if n == 126:
        n = int.from_bytes(exactly(2), "big")
    elif n == 127:
        n = int.from_bytes(exactly(8), "big")
    return first, exactly(n)


@pytest.mark.parametrize("takeover", [True, False])
def test_on_the_wire_frames_are_deflated_with_rsv1_set(compressing, takeover):
    offer = DEFLATE_OFFER if takeover else DEFLATE_OFFER + "; server_no_context_takeover"
    sock, head = _raw_upgrade(compressing, uid(), offer)
    try:
        assert " 101 " in head.splitlines()[0]
        assert "permessage-deflate" in head.lower()
        assert ("server_no_context_takeover" in head) is not takeover
        inflate = zlib.decompressobj(-zlib.MAX_WBITS)
        for ts in (1, 2, 3):  # with takeover, later frames refer back to earlier ones
            _send_masked_text(sock, b'{"type":"ping","ts":%d}' % ts)
            first, body = _read_frame(sock)
            assert first == 0x80 | 0x40 | 0x1  # FIN, RSV1 (compressed), text
            if not takeover:  # each frame must inflate on its own
                inflate = zlib.decompressobj(-zlib.MAX_WBITS)
            assert json.loads(inflate.decompress(body + b"\x00\x00\xff\xff")) == {"type": "pong", "ts": ts}
    finally:
        sock.close()


def test_without_compress_the_offer_is_declined_and_frames_are_plain(plain):
    sock, head = _raw_upgrade(plain, uid(), DEFLATE_OFFER)
    try:
        assert " 101 " in head.splitlines()[0]
        assert "sec-websocket-extensions" not in head.lower()
        _send_masked_text(sock, b'{"type":"ping","ts":3}')
        first, body = _read_frame(sock)
        assert first == 0x81 and json.loads(body) == {"type": "pong", "ts": 3}
    finally:
        sock.close()


def test_a_compressed_slow_consumer_is_closed_with_4002_and_the_server_stays_up(reference_server_factory):
    server = reference_server_factory("--compress", "--outbound-limit", "65536", "--rate-limit", "0")
    slow = uid("slow")
    sock, head = _raw_upgrade(server, slow, DEFLATE_OFFER)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    assert "permessage-deflate" in head.lower()
    a = server.connect(uid())
    sent = 0
    deadline = time.monotonic() + 30
    while 'wsgauge_errors_total{code="slow_consumer"}' not in server.metrics():
        assert time.monotonic() < deadline, "slow consumer never detected"
        for _ in range(50):  # random text: deflate cannot shrink it much
            a.send(chat(slow, os.urandom(1500).hex(), requestId=sent))
            sent += 1
        for _ in range(50):
            assert recv_json(a)["type"] == "ack"
    assert server.healthz()["status"] == "ok"
    try:
        inflate = zlib.decompressobj(-zlib.MAX_WBITS)
        delivered = 0
        while True:
            first, body = _read_frame(sock)
            if first & 0x0F == 0x8:
                assert int.from_bytes(body[:2], "big") == 4002
                break
            if first == 0x89:  # a delivery-confirmation ping (never answered here)
                continue
            assert first == 0xC1
            assert json.loads(inflate.decompress(body + b"\x00\x00\xff\xff"))["type"] == "new_message"
            delivered += 1
        assert 0 < delivered <= sent
    finally:
        sock.close()


def test_sigterm_closes_a_deflate_connection_with_1001_after_its_frames(reference_server_factory):
    server = reference_server_factory("--compress")
    user = uid()

    async def main() -> None:
        async with aiohttp.ClientSession() as session:
            ws = await _connect(server, session, user)
            assert ws.compress == 15
            await ws.send_str(chat(user, "last words", requestId="r"))
            assert (await _receive(ws))["type"] == "new_message"
            assert (await _receive(ws))["type"] == "ack"
            server.proc.send_signal(15)
            while True:  # the confirmation ping is answered by aiohttp meanwhile
                msg = await ws.receive(timeout=10)
                if msg.type is not aiohttp.WSMsgType.TEXT:
                    break
            assert msg.type is aiohttp.WSMsgType.CLOSE and msg.data == 1001

    asyncio.run(main())
    assert server.proc.wait(15) == 0
