"""The transport under :class:`~loadtest._client.WsClient`: TCP (TLS for ``wss://``), the opening
handshake, and the kernel's receive timestamps (``SO_TIMESTAMPNS``) of what a socket reads.

Blocking gevent sockets; the RFC 6455 bytes themselves are :mod:`loadtest._wire`'s (sans I/O).
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import struct
import sys
import time
from typing import Any
from urllib.parse import urlsplit

import gevent.lock
import gevent.socket

from loadtest._wire import (
    FrameDecoder,
    HandshakeFailed,
    encode_frame,
    handshake_request,
    new_key,
    parse_handshake_response,
)

_SO_TIMESTAMPNS = 35
"""Linux ``SO_TIMESTAMPNS`` (= ``SCM_TIMESTAMPNS``; not in Python's ``socket`` module): the kernel stamps each
received packet (``CLOCK_REALTIME``, ns) as it enters the network stack, and ``recvmsg`` returns the stamp of
the last packet a read returned."""
_STAMP_SPACE = socket.CMSG_SPACE(16) if hasattr(socket, "CMSG_SPACE") else 0
_STAMP = struct.Struct("qq")


def _enable_stamps(sock: Any) -> bool:
    """Ask the kernel for receive timestamps on a plain TCP socket; ``False`` where it cannot."""
    if not _STAMP_SPACE or not sys.platform.startswith("linux"):
        return False
    try:
        sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
    except OSError:
        return False
    return True


def _kernel_stamp(ancdata: list[tuple[int, int, bytes]]) -> float | None:
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS and len(data) >= 16:
            sec, nsec = _STAMP.unpack_from(data)
            return sec + nsec * 1e-9
    return None


def _recv_stamped(sock: Any, size: int) -> tuple[bytes, float | None]:
    """One ``recv`` with the kernel's receive time of what it returned (unix seconds), if stamped."""
    data, ancdata, _, _ = sock.recvmsg(size, _STAMP_SPACE)
    return data, _kernel_stamp(ancdata)


class _Connection:
    """An open WebSocket: its socket, its send lock, its frame decoder."""

    __slots__ = ("decoder", "early", "early_at", "lock", "raw", "sock", "stamped")

    def __init__(self, sock: Any, early: bytes, early_at: float, stamped: bool) -> None:
        self.sock = sock
        self.early = early
        """Bytes that arrived with the handshake response (the server may push at once)..."""
        self.early_at = early_at
        """... and when they arrived (unix seconds): the handshake's end."""
        self.stamped = stamped
        """The kernel stamps what this socket receives (plain TCP on Linux; not TLS)."""
        self.lock = gevent.lock.Semaphore()
        self.decoder = FrameDecoder()
        self.raw = sock._sock if type(sock) is gevent.socket.socket else None
        """The OS socket under a plain gevent socket (non-blocking), for :meth:`write`; ``None`` over TLS."""

    def write(self, frame: bytes) -> None:
        """Write all of ``frame``; the caller holds :attr:`lock`.

        Straight to the OS socket first: a frame of a load test almost always fits the socket's buffer, and
        gevent's ``sendall`` (memoryview chunks, a ``getsockopt`` per call, five Python frames) was a fifth
        of a worker core at 10,000 frames a second. What the kernel does not take goes through ``sendall``,
        which waits for the socket (with its timeout) as before.
        """
        raw = self.raw
        if raw is not None:
            try:
                sent = raw.send(frame)
            except BlockingIOError:
                sent = 0
            if sent == len(frame):
                return
            frame = frame[sent:]
        self.sock.sendall(frame)

    def send_frame(self, opcode: int, payload: bytes) -> None:
        frame = encode_frame(opcode, payload)
        with self.lock:
            self.write(frame)

    def abort(self) -> None:
        """Drop the TCP connection without a closing handshake: the receive greenlet sees it end."""
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.abort()
        with contextlib.suppress(OSError):
            self.sock.close()


_addresses: dict[tuple[str, int], tuple[int, tuple[Any, ...]]] = {}


def _resolve(host: str, port: int) -> tuple[int, tuple[Any, ...]]:
    """``(family, address)`` of the target, resolved once per process.

    IP literals need no resolver; a name is resolved on the first connect only: gevent's resolver runs
    ``getaddrinfo`` on a thread pool, and that hop (milliseconds under load, before the SYN) was counted in
    every ``connect``. A load generator's target does not move during a run.
    """
    key = (host, port)
    found = _addresses.get(key)
    if found is not None:
        return found
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
        except OSError:
            continue
        found = (family, (host, port))
        break
    else:
        infos = gevent.socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
        if not infos:
            raise socket.gaierror(f"{host}: no address")
        family, _, _, _, address = infos[0]
        found = (family, address)
    _addresses[key] = found
    return found


def _read_response_head(sock: Any, stamped: bool) -> tuple[bytes, float]:
    """The handshake response up to and including its blank line (and, over TLS, what came with it), and
    when the head arrived (unix seconds).

    On a stamped socket the head is read to its last byte and no further (a ``MSG_PEEK`` first finds it): the
    server may push frames right behind the 101, and a read that took them too would carry the stamp of
    their packet, not of the 101's.
    """
    received = b""
    while True:
        if stamped:
            peeked = sock.recv(4096, socket.MSG_PEEK)
            if not peeked:
                raise HandshakeFailed("connection closed during the handshake")
            end = (received + peeked).find(b"\r\n\r\n")
            chunk, at = _recv_stamped(sock, len(peeked) if end < 0 else end + 4 - len(received))
        else:
            chunk, at = sock.recv(4096), None
        if not chunk:
            raise HandshakeFailed("connection closed during the handshake")
        received += chunk
        if received.find(b"\r\n\r\n") >= 0:
            return received, time.time() if at is None else at
        if len(received) > 65536:
            raise HandshakeFailed("handshake response head over 64 KiB")


def _open_connection(url: str, cookie: str | None, connect_timeout: float, io_timeout: float) -> _Connection:
    """TCP connect, TLS for ``wss://``, the opening handshake; raises what :func:`_connect_error` maps."""
    parts = urlsplit(url)
    secure = parts.scheme == "wss"
    host = parts.hostname or "127.0.0.1"
    port = parts.port or (443 if secure else 80)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    family, address = _resolve(host, port)
    sock = gevent.socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.settimeout(connect_timeout)
        sock.connect(address)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        stamped = not secure and _enable_stamps(sock)
        if secure:
            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=host)
        key = new_key()
        sock.sendall(handshake_request(host, port, path, key, secure=secure, cookie=cookie))
        received, arrived = _read_response_head(sock, stamped)
        end = received.find(b"\r\n\r\n")
        parse_handshake_response(received[:end], key)
    except BaseException:
        sock.close()
        raise
    # Sends that stall this long count as a lost connection; reads just wake up and wait again.
    sock.settimeout(io_timeout)
    return _Connection(sock, received[end + 4 :], arrived, stamped)
