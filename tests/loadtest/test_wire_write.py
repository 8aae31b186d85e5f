"""``_Connection.write``: straight to the OS socket, the rest through gevent's ``sendall``; nothing lost."""

from __future__ import annotations

import gevent
import gevent.socket

from loadtest._transport import _Connection
from loadtest._wire import OP_BINARY, encode_frame


def _pair() -> tuple[_Connection, gevent.socket.socket]:
    a, b = gevent.socket.socketpair()
    return _Connection(a, b"", 0.0, False), b


def _read_all(sock: gevent.socket.socket, n: int) -> bytes:
    got = bytearray()
    while len(got) < n:
        chunk = sock.recv(65536)
        assert chunk
        got += chunk
    return bytes(got)


def test_a_small_frame_goes_straight_to_the_os_socket() -> None:
    conn, peer = _pair()
    assert conn.raw is not None
    frame = encode_frame(OP_BINARY, b"x" * 40)
    with conn.lock:
        conn.write(frame)
    assert _read_all(peer, len(frame)) == frame


def test_a_frame_larger_than_the_socket_buffer_arrives_whole_and_in_order() -> None:
    conn, peer = _pair()
    payloads = [bytes([i]) * 3_000_000 for i in range(3)]  # each far over the socket buffer
    frames = [encode_frame(OP_BINARY, p) for p in payloads]
    total = sum(map(len, frames))
    reader = gevent.spawn(_read_all, peer, total)

    def writer() -> None:
        for frame in frames:
            with conn.lock:
                conn.write(frame)

    gevent.joinall([gevent.spawn(writer), reader], raise_error=True)
    assert reader.value == b"".join(frames)


def test_a_tls_socket_is_never_bypassed() -> None:
    class NotPlain(gevent.socket.socket):  # e.g. gevent's SSLSocket: a subclass, writes must go through it
        pass

    sock = NotPlain()
    try:
        assert _Connection(sock, b"", 0.0, False).raw is None
    finally:
        sock.close()
