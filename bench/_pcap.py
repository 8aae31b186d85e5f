"""WebSocket frames as the wire saw them: a loopback pcap file to timed, parsed frames per connection.

Reads what ``tcpdump -i lo --time-stamp-precision=nano -w FILE`` wrote (Ethernet-framed IPv4 on Linux's
loopback), reassembles each TCP direction by sequence number, skips the HTTP upgrade (noting when the SYN
left and when the 101 response head was complete), and parses RFC 6455 frames (unmasking the client's).

Each frame carries the kernel's capture time of the packet holding its **first** byte (when a request went
out) and of the packet holding its **last** byte (when a reply was complete on the wire): those are the two
ends a wire latency is measured between.
"""

from __future__ import annotations

import struct
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field

__all__ = ["Connection", "WireFrame", "read_capture"]

_NANO_MAGIC = 0xA1B23C4D
_MICRO_MAGIC = 0xA1B2C3D4
_LINK_ETHERNET = 1
_SYN, _ACK = 0x02, 0x10


@dataclass(slots=True)
class WireFrame:
    first: float
    """Capture time (unix seconds) of the packet holding the frame's first byte."""
    last: float
    """Capture time of the packet holding its last byte."""
    opcode: int
    payload: bytes


@dataclass
class Connection:
    """One client connection to the server port, both directions."""

    client_port: int
    syn: float | None = None
    """Capture time of the client's SYN."""
    upgraded: float | None = None
    """Capture time of the packet completing the server's HTTP response head (the 101)."""
    sent: list[WireFrame] = field(default_factory=list)
    """Client -> server frames, in order."""
    received: list[WireFrame] = field(default_factory=list)
    """Server -> client frames, in order."""
    gaps: int = 0
    """Sequence gaps (packets the capture dropped): frames after one are not parsed."""


class _Direction:
    """One TCP direction: reassembly, then the HTTP head, then WebSocket frames."""

    def __init__(self, isn: int) -> None:
        self.next_seq = (isn + 1) & 0xFFFFFFFF
        self.buffer = bytearray()
        self.base = 0  # stream offset of buffer[0]
        self.segments: deque[tuple[int, float]] = deque()  # (stream offset, capture time) of each segment
        self.head_done = False
        self.broken = False

    def add(self, seq: int, data: bytes, ts: float) -> bool:
        """Append a segment's new bytes; ``False`` on a gap (the stream cannot be parsed further)."""
        if self.broken or not data:
            return True
        offset = (self.next_seq - seq) & 0xFFFFFFFF
        if offset >= 0x80000000:  # seq ahead of what we expect: a packet is missing from the capture
            self.broken = True
            return False
        if offset >= len(data):
            return True  # a retransmission of bytes we have
        data = data[offset:]
        self.segments.append((self.base + len(self.buffer), ts))
        self.buffer += data
        self.next_seq = (self.next_seq + len(data)) & 0xFFFFFFFF
        return True

    def time_at_start(self) -> float:
        """Capture time of the segment holding ``buffer[0]``."""
        segments = self.segments
        while len(segments) > 1 and segments[1][0] <= self.base:
            segments.popleft()
        return segments[0][1]

    def consume(self, n: int) -> None:
        del self.buffer[:n]
        self.base += n

    def frames(self, now: float) -> Iterator[WireFrame]:
        """Complete frames in the buffer; the HTTP head first (yielded as opcode -1)."""
        buf = self.buffer
        if not self.head_done:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            self.head_done = True
            yield WireFrame(self.time_at_start(), now, -1, bytes(buf[:end]))
            self.consume(end + 4)
            if self.broken:  # the consumer found no upgrade
                return
            buf = self.buffer
        while len(buf) >= 2:
            b1 = buf[1]
            length = b1 & 0x7F
            pos = 2
            if length == 126:
                if len(buf) < 4:
                    return
                length = int.from_bytes(buf[2:4], "big")
                pos = 4
            elif length == 127:
                if len(buf) < 10:
                    return
                length = int.from_bytes(buf[2:10], "big")
                pos = 10
            key = b""
            if b1 & 0x80:
                if len(buf) < pos + 4:
                    return
                key = bytes(buf[pos : pos + 4])
                pos += 4
            if len(buf) < pos + length:
                return
            payload = bytes(buf[pos : pos + length])
            if key and length:
                mask = int.from_bytes((key * ((length + 3) // 4))[:length], "little")
                payload = (int.from_bytes(payload, "little") ^ mask).to_bytes(length, "little")
            yield WireFrame(self.time_at_start(), now, buf[0] & 0x0F, payload)
            self.consume(pos + length)
            buf = self.buffer


def _packets(path: str) -> Iterator[tuple[float, bytes]]:
    with open(path, "rb") as f:
        header = f.read(24)
        if len(header) < 24:
            return
        magic = struct.unpack("<I", header[:4])[0]
        if magic == _NANO_MAGIC:
            endian, scale = "<", 1e-9
        elif magic == _MICRO_MAGIC:
            endian, scale = "<", 1e-6
        else:
            raise ValueError(f"{path}: not a little-endian pcap file (magic {magic:#x})")
        linktype = struct.unpack(endian + "I", header[20:24])[0]
        if linktype != _LINK_ETHERNET:
            raise ValueError(f"{path}: link type {linktype}, expected Ethernet (capture with -i lo)")
        record = struct.Struct(endian + "IIII")
        while True:
            head = f.read(16)
            if len(head) < 16:
                return
            sec, frac, incl, _ = record.unpack(head)
            yield sec + frac * scale, f.read(incl)


def read_capture(path: str, server_port: int) -> dict[int, Connection]:
    """Every connection to ``server_port`` in the capture, keyed by client port."""
    connections: dict[int, Connection] = {}
    directions: dict[tuple[int, bool], _Direction] = {}
    for ts, packet in _packets(path):
        if len(packet) < 34 or packet[12:14] != b"\x08\x00":
            continue
        ip = packet[14:]
        ihl = (ip[0] & 0x0F) * 4
        if ip[9] != 6:
            continue
        total = int.from_bytes(ip[2:4], "big")
        tcp = ip[ihl:total]
        sport, dport, seq = struct.unpack("!HHI", tcp[:8])
        flags = tcp[13]
        data = tcp[(tcp[12] >> 4) * 4 :]
        if dport == server_port:
            port, outbound = sport, True
        elif sport == server_port:
            port, outbound = dport, False
        else:
            continue
        if flags & _SYN:
            if outbound and not flags & _ACK:
                connections[port] = Connection(port, syn=ts)
            directions[(port, outbound)] = _Direction(seq)
            continue
        conn = connections.get(port)
        direction = directions.get((port, outbound))
        if conn is None or direction is None:
            continue  # began before the capture
        if not direction.add(seq, data, ts):
            conn.gaps += 1
            continue
        for frame in direction.frames(ts):
            if frame.opcode == -1:
                if not outbound:
                    if frame.payload.startswith((b"HTTP/1.1 101", b"HTTP/1.0 101")):
                        conn.upgraded = ts
                    else:
                        direction.broken = True  # plain HTTP: no frames follow
                continue
            (conn.sent if outbound else conn.received).append(frame)
    return connections
