"""The client's RFC 6455 core, checked against websocket-client's independent implementation of the RFC."""

from __future__ import annotations

import pytest
from websocket import ABNF

from loadtest._wire import (
    OP_BINARY,
    OP_CLOSE,
    OP_PING,
    OP_TEXT,
    FrameDecoder,
    HandshakeFailed,
    HandshakeRejected,
    ProtocolError,
    accept_key,
    encode_frame,
    handshake_request,
    parse_handshake_response,
)


def server_frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    """An unmasked server frame, as websocket-client formats it."""
    frame = ABNF(fin=int(fin), opcode=opcode, mask_value=False, data=payload)
    return frame.format()


@pytest.mark.parametrize("size", [0, 1, 2, 3, 4, 5, 38, 124, 125, 126, 65535, 65536, 100_000])
def test_client_frames_are_masked_and_parse_back(size: int) -> None:
    payload = bytes(range(256)) * (size // 256 + 1)
    payload = payload[:size]
    frame = encode_frame(OP_TEXT, payload)
    buffer = bytearray(frame)

    def recv(n: int) -> bytes:
        chunk = bytes(buffer[:n])
        del buffer[:n]
        return chunk

    from websocket._abnf import frame_buffer

    parsed = frame_buffer(recv, skip_utf8_validation=True).recv_frame()
    assert parsed.opcode == OP_TEXT and parsed.fin == 1 and parsed.mask_value == 1
    assert parsed.data == payload and not buffer


def test_every_frame_of_one_read_is_returned_at_once() -> None:
    decoder = FrameDecoder()
    read = server_frame(OP_TEXT, b'{"type":"ack"}') + server_frame(OP_TEXT, b'{"type":"progress_sync"}')
    assert decoder.feed(read) == [(OP_TEXT, b'{"type":"ack"}'), (OP_TEXT, b'{"type":"progress_sync"}')]


def test_frames_split_anywhere_across_reads_are_reassembled() -> None:
    stream = (
        server_frame(OP_TEXT, b"a" * 300)
        + server_frame(OP_TEXT, b"frag-", fin=False)
        + server_frame(OP_PING, b"p")  # a control frame between fragments
        + server_frame(0, b"ment")
        + server_frame(OP_BINARY, b"\x00\x01")
        + server_frame(OP_CLOSE, (1000).to_bytes(2, "big"))
    )
    expected = [
        (OP_TEXT, b"a" * 300),
        (OP_PING, b"p"),
        (OP_TEXT, b"frag-ment"),
        (OP_BINARY, b"\x00\x01"),
        (OP_CLOSE, b"\x03\xe8"),
    ]
    for step in (1, 2, 3, 7, 64, len(stream)):
        decoder = FrameDecoder()
        got = []
        for i in range(0, len(stream), step):
            got += decoder.feed(stream[i : i + step])
        assert got == expected, step


@pytest.mark.parametrize(
    "data",
    [
        bytes((0x81 | 0x40, 1)) + b"x",  # RSV1 without an extension
        bytes((0x81, 0x81)) + b"\x00\x00\x00\x00x",  # masked by the server
        server_frame(0, b"x"),  # continuation of nothing
        server_frame(OP_TEXT, b"a", fin=False) + server_frame(OP_TEXT, b"b"),  # new message mid-fragment
        server_frame(OP_PING, b"p" * 126),  # control frame too long
        bytes((0x83, 0)),  # reserved opcode
    ],
)
def test_protocol_violations_are_errors(data: bytes) -> None:
    with pytest.raises(ProtocolError):
        FrameDecoder().feed(data)


def test_oversized_messages_are_refused_before_they_are_buffered() -> None:
    decoder = FrameDecoder(max_message=1000)
    with pytest.raises(ProtocolError):
        decoder.feed(bytes((0x81, 127)) + (10**9).to_bytes(8, "big"))


def test_handshake_request_and_response() -> None:
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    assert accept_key(key) == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="  # RFC 6455 section 1.3
    request = handshake_request("127.0.0.1", 8765, "/ws?x=1", key, secure=False, cookie="a=b")
    assert request.startswith(b"GET /ws?x=1 HTTP/1.1\r\nHost: 127.0.0.1:8765\r\n")
    assert b"Cookie: a=b\r\n" in request and request.endswith(b"\r\n\r\n")
    assert b"Host: example.org\r\n" in handshake_request(
        "example.org", 443, "/", key, secure=True, cookie=None
    )
    ok = (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    )
    parse_handshake_response(ok, key)
    with pytest.raises(HandshakeFailed):
        parse_handshake_response(ok.replace(b"s3pP", b"XXXX"), key)
    with pytest.raises(HandshakeFailed):
        parse_handshake_response(b"SSH-2.0-OpenSSH", key)
    with pytest.raises(HandshakeRejected) as info:
        parse_handshake_response(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0", key)
    assert info.value.status_code == 401
