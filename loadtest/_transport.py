"""The transport under :class:`~loadtest._client.WsClient`: TCP (TLS for ``wss://``), the opening
handshake, and the kernel's receive timestamps (``SO_TIMESTAMPNS``) of what a socket reads.

Blocking gevent sockets; the RFC 6455 bytes themselves are :mod:`loadtest._wire`'s (sans I/O), the
permessage-deflate extension :mod:`loadtest._deflate`'s. What to connect with (headers, cookies,
subprotocols, TLS, compression) is a :class:`ConnectOptions`.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import struct
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import gevent.lock
import gevent.socket
import gevent.ssl

from loadtest._deflate import Deflate, negotiate, offer_header
from loadtest._wire import (
    MAX_MESSAGE_BYTES,
    FrameDecoder,
    HandshakeFailed,
    encode_frame,
    handshake_request,
    new_key,
    parse_handshake_response,
)

__all__ = ["ConnectOptions"]


@dataclass(frozen=True)
class ConnectOptions:
    """How a connection is opened: everything of the opening handshake and TLS but the URL.

    Args:
        headers: extra request headers (``Authorization``, ``Origin`` ...), in order.
        cookies: cookies sent as one ``Cookie`` header (``{"name": "value"}``), after ``cookie``.
        cookie: a ready ``Cookie`` header value (the seed's users' NextAuth session), or ``None``.
        subprotocols: offered in ``Sec-WebSocket-Protocol``, in order of preference; the server must pick
            one of them (or none, when none is required) or the connect fails as ``handshake``.
        require_subprotocol: with ``subprotocols``: a server that picks none fails the connect.
        compression: offer permessage-deflate as browsers do (``permessage-deflate;
            client_max_window_bits``); used if the server accepts it.
        ca_file: ``wss://``: trust this CA bundle (PEM) instead of the system's.
        insecure: ``wss://``: do not verify the server's certificate or name (a self-signed test target).
            Explicit, never a fallback.
        connect_timeout: seconds for TCP connect, TLS and the handshake.
        max_message: largest message accepted from the server, in bytes (inflated, with compression).
    """

    headers: Sequence[tuple[str, str]] = ()
    cookies: Mapping[str, str] = field(default_factory=dict)
    cookie: str | None = None
    subprotocols: Sequence[str] = ()
    require_subprotocol: bool = True
    compression: bool = False
    ca_file: str | None = None
    insecure: bool = False
    connect_timeout: float = 10.0
    max_message: int = MAX_MESSAGE_BYTES

    def cookie_header(self) -> str | None:
        """The ``Cookie`` header value: ``cookie`` then ``cookies``, or ``None``."""
        parts = [self.cookie] if self.cookie else []
        parts.extend(f"{name}={value}" for name, value in self.cookies.items())
        return "; ".join(parts) or None

    def request_headers(self) -> tuple[tuple[str, str], ...]:
        """The handshake's extra headers: subprotocols, the deflate offer, then :attr:`headers`."""
        extra: list[tuple[str, str]] = []
        if self.subprotocols:
            extra.append(("Sec-WebSocket-Protocol", ", ".join(self.subprotocols)))
        if self.compression:
            extra.append(offer_header())
        extra.extend(self.headers)
        return tuple(extra)

    def tls_context(self) -> ssl.SSLContext:
        """The TLS context of a ``wss://`` connect: the system's trust, ``ca_file``'s, or none (insecure)."""
        # gevent's SSLContext: its sockets wait cooperatively, also without monkeypatching (tests, benches);
        # gevent.ssl.create_default_context is the stdlib's and builds a blocking one.
        context = gevent.ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # hostname check, CERT_REQUIRED
        if self.insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        elif self.ca_file is not None:
            context.load_verify_locations(cafile=self.ca_file)
        else:
            context.load_default_certs(ssl.Purpose.SERVER_AUTH)
        return context


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
    """An open WebSocket: its socket, its send lock, its frame decoder, what the handshake negotiated."""

    __slots__ = ("decoder", "deflate", "early", "early_at", "lock", "sock", "stamped", "subprotocol")

    def __init__(
        self,
        sock: Any,
        early: bytes,
        early_at: float,
        stamped: bool,
        *,
        subprotocol: str | None = None,
        deflate: Deflate | None = None,
        max_message: int = MAX_MESSAGE_BYTES,
    ) -> None:
        self.sock = sock
        self.early = early
        """Bytes that arrived with the handshake response (the server may push at once)..."""
        self.early_at = early_at
        """... and when they arrived (unix seconds): the handshake's end."""
        self.stamped = stamped
        """The kernel stamps what this socket receives (plain TCP on Linux; not TLS)."""
        self.lock = gevent.lock.Semaphore()
        self.subprotocol = subprotocol
        """The subprotocol the server picked, or ``None``."""
        self.deflate = deflate
        """permessage-deflate, when the server accepted the offer."""
        self.decoder = FrameDecoder(max_message, rsv1=deflate is not None)

    def send_frame(self, opcode: int, payload: bytes) -> None:
        frame = encode_frame(opcode, payload)
        with self.lock:
            self.sock.sendall(frame)

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


def _open_connection(url: str, options: ConnectOptions, io_timeout: float) -> _Connection:
    """TCP connect, TLS for ``wss://``, the opening handshake; raises what :func:`_connect_error` maps.

    ``io_timeout``: afterwards, a send that stalls this long fails (reads just wake up and wait again).
    """
    parts = urlsplit(url)
    secure = parts.scheme == "wss"
    host = parts.hostname or "127.0.0.1"
    port = parts.port or (443 if secure else 80)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    family, address = _resolve(host, port)
    sock = gevent.socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.settimeout(options.connect_timeout)
        sock.connect(address)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        stamped = not secure and _enable_stamps(sock)
        if secure:
            sock = options.tls_context().wrap_socket(sock, server_hostname=host)
        key = new_key()
        request = handshake_request(
            host,
            port,
            path,
            key,
            secure=secure,
            cookie=options.cookie_header(),
            headers=options.request_headers(),
        )
        sock.sendall(request)
        received, arrived = _read_response_head(sock, stamped)
        end = received.find(b"\r\n\r\n")
        headers = parse_handshake_response(received[:end], key)
        subprotocol = _picked_subprotocol(headers.get("sec-websocket-protocol"), options)
        extensions = headers.get("sec-websocket-extensions")
        if extensions and not options.compression:
            raise HandshakeFailed(f"server accepted extensions that were not offered: {extensions[:120]!r}")
        deflate = negotiate(extensions, options.max_message) if options.compression else None
    except BaseException:
        sock.close()
        raise
    # Sends that stall this long count as a lost connection; reads just wake up and wait again.
    sock.settimeout(io_timeout)
    return _Connection(
        sock,
        received[end + 4 :],
        arrived,
        stamped,
        subprotocol=subprotocol,
        deflate=deflate,
        max_message=options.max_message,
    )


def _picked_subprotocol(answer: str | None, options: ConnectOptions) -> str | None:
    """The server's ``Sec-WebSocket-Protocol``, checked against the offer (RFC 6455 section 4.1)."""
    if answer is None:
        if options.subprotocols and options.require_subprotocol:
            raise HandshakeFailed(f"server picked no subprotocol of {', '.join(options.subprotocols)}")
        return None
    picked = answer.strip()
    if picked not in options.subprotocols:
        raise HandshakeFailed(f"server picked subprotocol {picked[:60]!r}, which was not offered")
    return picked
