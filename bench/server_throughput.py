"""Routed ``chat_message`` throughput and latency: reference server vs a bare router.

Both servers run pinned to core 0 (``taskset -c 0``); this client pins itself to core 1. The
client is a raw asyncio WebSocket client (pre-built frames with a zero mask key, frame headers
counted without decoding JSON in throughput mode) so that it is not the bottleneck; its CPU use
is reported next to the server's.

Phases (each ``--seconds`` long after a 1 s warm-up; throughput runs are repeated ``--repeat``
times, interleaved, and the median is kept; the machine is shared, so also compare messages per
server CPU-second, which CPU stolen by other processes does not distort):

1. throughput, closed loop: ``--pairs`` sender→receiver pairs, ``--window`` messages in flight
   per pair (counted by deliveries). The reference server gets ``requestId`` on every message,
   so it stores (SQLite WAL, group commit) and acks each one.
2. latency, open loop at 50 % of the reference server's throughput, for each server: p50/p99
   of delivery (send → ``new_message``) and, for the reference server, of the durable ack.

Servers: ``bare`` (bench/server_bare_router.py), ``ref`` (the reference server, SQLite file) and,
with ``--memory``, ``ref-memory`` (``--db :memory:``).

    python bench/server_throughput.py --seconds 5 --repeat 1   # ~35 s
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import nextauth_tokens as nextauth  # noqa: E402

SERVER_CORE = 0
CLIENT_CORE = 1


# -- a minimal, fast WebSocket client ---------------------------------------------------------


def client_frame(payload: bytes, opcode: int = 0x1) -> bytes:
    """A masked client frame with an all-zero mask key (XOR with zero: payload unchanged)."""
    n = len(payload)
    first = bytes((0x80 | opcode,))
    if n < 126:
        header = first + bytes((0x80 | n,))
    elif n < 65536:
        header = first + bytes((0x80 | 126,)) + n.to_bytes(2, "big")
    else:
        header = first + bytes((0x80 | 127,)) + n.to_bytes(8, "big")
    return header + b"\x00\x00\x00\x00" + payload


class WsConn(asyncio.Protocol):
    """One client connection; ``on_frames(conn, count, payloads)`` after each read."""

    def __init__(self, request: bytes, on_frames: Callable[..., None] | None, keep: bool) -> None:
        self.request = request
        self.on_frames = on_frames
        self.keep = keep
        self.buf = bytearray()
        self.upgraded = False
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.write(self.request)  # type: ignore[attr-defined]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.ready.done():
            self.ready.set_exception(ConnectionError("closed during handshake"))

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        if not self.upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            status = bytes(buf[: buf.find(b"\r\n")])
            if b" 101 " not in status:
                self.ready.set_exception(ConnectionError(status.decode(errors="replace")))
                return
            del buf[: end + 4]
            self.upgraded = True
            self.ready.set_result(None)
        pos, n, count = 0, len(buf), 0
        payloads: list[bytes] | None = [] if self.keep else None
        while n - pos >= 2:
            opcode = buf[pos] & 0x0F
            ln = buf[pos + 1] & 0x7F
            hl = 2
            if ln == 126:
                if n - pos < 4:
                    break
                ln = int.from_bytes(buf[pos + 2 : pos + 4], "big")
                hl = 4
            elif ln == 127:
                if n - pos < 10:
                    break
                ln = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                hl = 10
            if n - pos < hl + ln:
                break
            if opcode == 0x1:
                count += 1
                if payloads is not None:
                    payloads.append(bytes(buf[pos + hl : pos + hl + ln]))
            elif opcode == 0x9 and self.transport is not None:
                self.transport.write(client_frame(bytes(buf[pos + hl : pos + hl + ln]), 0xA))
            elif opcode == 0x8:
                self.closed = True
            pos += hl + ln
        if pos:
            del buf[:pos]
        if count and self.on_frames is not None:
            self.on_frames(self, count, payloads)


def upgrade_request(host: str, port: int, path: str, headers: dict[str, str]) -> bytes:
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: {host}:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version: 13",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def open_ws(
    host: str, port: int, path: str, headers: dict[str, str],
    on_frames: Callable[..., None] | None = None, keep: bool = False,
) -> WsConn:  # fmt: skip
    loop = asyncio.get_running_loop()
    req = upgrade_request(host, port, path, headers)
    _, proto = await loop.create_connection(lambda: WsConn(req, on_frames, keep), host, port)
    await proto.ready
    return proto


# -- servers --------------------------------------------------------------------------------


class Server:
    """One server under test, pinned to ``SERVER_CORE``: ``bare``, ``ref`` or ``ref-memory``.

    ``extra`` arguments go to the reference server's command line (e.g. ``--test-delay-ms``).
    """

    def __init__(self, kind: str, tmp: Path, *extra: str) -> None:
        self.kind = kind
        self.secret = secrets.token_urlsafe(24)
        if kind == "bare":
            cmd = [sys.executable, str(REPO / "bench" / "server_bare_router.py"), "--port", "0"]
        else:
            db = ":memory:" if kind == "ref-memory" else str(tmp / f"bench-{secrets.token_hex(3)}.db")
            cmd = [sys.executable, "-m", "reference_server", "--port", "0", "--db", db,
                   f"--secret={self.secret}", "--rate-limit", "0", "--log-level", "ERROR",
                   *extra]  # fmt: skip
        self.proc = subprocess.Popen(
            ["taskset", "-c", str(SERVER_CORE), *cmd], cwd=REPO, stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        self.port = int(line.strip().rsplit(":", 1)[1].split("/")[0])
        self.ps = psutil.Process(self.proc.pid)

    def headers_path(self, user: str) -> tuple[dict[str, str], str]:
        if self.kind == "bare":
            return {}, f"/ws?user={user}"
        token = nextauth.mint_v4(self.secret, {"sub": user}, max_age=3600)
        return {"Cookie": nextauth.cookie_header(token)}, "/ws"

    def cpu(self) -> float:
        t = self.ps.cpu_times()
        return t.user + t.system

    def thread_cpu(self) -> dict[str, float]:
        """CPU seconds of the event loop (``main``) and of the other threads (``store``)."""
        out: dict[str, float] = {}
        for t in self.ps.threads():
            name = "main" if t.id == self.proc.pid else "store"  # the SQLite writer and checkpoints
            out[name] = out.get(name, 0.0) + t.user_time + t.system_time
        return out

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def chat_payload(receiver: str, ts: int, ack: bool) -> bytes:
    rid = ',"requestId":1' if ack else ""
    return (
        f'{{"type":"chat_message","receiverId":"{receiver}"{rid},'
        f'"message":{{"content":"hello from the wsgauge benchmark","timestamp":{ts}}}}}'
    ).encode()


def cpu_self() -> float:
    t = psutil.Process().cpu_times()
    return t.user + t.system


async def connect_pairs(server: Server, pairs: int, on_rx: Any, on_tx: Any, keep: bool):
    senders, receivers = [], []
    for i in range(pairs):
        h, p = server.headers_path(f"rx{i}")
        r = await open_ws("127.0.0.1", server.port, p, h, on_rx, keep)
        r.index = i  # type: ignore[attr-defined]
        receivers.append(r)
        h, p = server.headers_path(f"tx{i}")
        s = await open_ws("127.0.0.1", server.port, p, h, on_tx, keep)
        s.index = i  # type: ignore[attr-defined]
        senders.append(s)
    await asyncio.sleep(0.3)  # let backlogs (empty) load
    return senders, receivers


async def throughput(server: Server, pairs: int, window: int, seconds: float) -> dict[str, Any]:
    ack = server.kind != "bare"
    state = {"running": True, "delivered": 0, "acks": 0}
    frames = [client_frame(chat_payload(f"rx{i}", 1, ack)) for i in range(pairs)]
    senders: list[WsConn] = []

    def on_rx(conn: WsConn, count: int, _: Any) -> None:
        state["delivered"] += count
        if state["running"]:
            s = senders[conn.index]  # type: ignore[attr-defined]
            if s.transport is not None and not s.closed:
                s.transport.write(frames[conn.index] * count)  # type: ignore[attr-defined]

    def on_tx(conn: WsConn, count: int, _: Any) -> None:
        state["acks"] += count

    senders[:], receivers = await connect_pairs(server, pairs, on_rx, on_tx, False)
    for s in senders:
        s.transport.write(frames[s.index] * window)  # type: ignore[union-attr,attr-defined]
    await asyncio.sleep(1.0)  # warm-up
    d0, a0, t0 = state["delivered"], state["acks"], time.perf_counter()
    c0, s0, th0 = cpu_self(), server.cpu(), server.thread_cpu()
    await asyncio.sleep(seconds)
    d1, a1, t1 = state["delivered"], state["acks"], time.perf_counter()
    c1, s1, th1 = cpu_self(), server.cpu(), server.thread_cpu()
    state["running"] = False
    await asyncio.sleep(0.5)
    for c in senders + receivers:
        c.transport.close()  # type: ignore[union-attr]
    await asyncio.sleep(0.3)  # let the closes reach the server before it is stopped
    elapsed = t1 - t0
    return {
        "server": server.kind,
        "delivered_per_s": (d1 - d0) / elapsed,
        "acks_per_s": (a1 - a0) / elapsed,
        "client_cpu": (c1 - c0) / elapsed,
        "server_cpu": (s1 - s0) / elapsed,
        # share of the server's CPU per thread: the event loop vs the SQLite writer
        "server_threads": {k: round((v - th0.get(k, 0.0)) / max(s1 - s0, 1e-9), 3) for k, v in th1.items()},
    }


def pct(values: list[int], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] / 1000.0  # ms (nearest rank)


async def latency(server: Server, pairs: int, rate: float, seconds: float) -> dict[str, Any]:
    ack = server.kind != "bare"
    deliver: list[int] = []
    acks: list[int] = []
    loads = orjson.loads
    clock = time.perf_counter_ns
    recording = {"on": False}

    def on_rx(conn: WsConn, count: int, payloads: list[bytes]) -> None:
        if recording["on"]:
            now = clock() // 1000
            for p in payloads:
                deliver.append(now - loads(p)["data"]["timestamp"])

    def on_tx(conn: WsConn, count: int, payloads: list[bytes]) -> None:
        if recording["on"]:
            now = clock() // 1000
            for p in payloads:
                d = loads(p)
                if d.get("type") == "ack":
                    acks.append(now - d["data"]["timestamp"])

    senders, receivers = await connect_pairs(server, pairs, on_rx, on_tx, True)
    c0 = s0 = 0.0
    start = time.perf_counter()
    sent = 0
    i = 0
    total = seconds + 1.0
    while (elapsed := time.perf_counter() - start) < total:
        if not recording["on"] and elapsed >= 1.0:
            recording["on"] = True
            c0, s0 = cpu_self(), server.cpu()
        due = int(rate * elapsed) - sent
        for _ in range(due):
            s = senders[i % pairs]
            i += 1
            s.transport.write(  # type: ignore[union-attr]
                client_frame(chat_payload(f"rx{s.index}", clock() // 1000, ack))  # type: ignore[attr-defined]
            )
        sent += max(due, 0)
        await asyncio.sleep(0.001)
    c1, s1 = cpu_self(), server.cpu()
    await asyncio.sleep(0.5)
    recording["on"] = False
    for c in senders + receivers:
        c.transport.close()  # type: ignore[union-attr]
    await asyncio.sleep(0.3)  # let the closes reach the server before it is stopped
    return {
        "server": server.kind,
        "rate": rate,
        "delivered_samples": len(deliver),
        "deliver_p50_ms": pct(deliver, 0.50),
        "deliver_p99_ms": pct(deliver, 0.99),
        "ack_p50_ms": pct(acks, 0.50) if ack else None,
        "ack_p99_ms": pct(acks, 0.99) if ack else None,
        "client_cpu": (c1 - c0) / seconds,
        "server_cpu": (s1 - s0) / seconds,
    }


def best(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median throughput (of an odd count; the higher middle one otherwise)."""
    ordered = sorted(runs, key=lambda r: r["delivered_per_s"])
    return ordered[len(ordered) // 2]


async def run(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {"pairs": args.pairs, "window": args.window, "seconds": args.seconds}
    with tempfile.TemporaryDirectory() as tmp:
        kinds = ["bare", "ref", *(["ref-memory"] if args.memory else [])]
        runs: dict[str, list[dict[str, Any]]] = {k: [] for k in kinds}
        for _ in range(args.repeat):  # interleaved, so that background noise hits both
            for kind in kinds:
                server = Server(kind, Path(tmp))
                try:
                    r = await throughput(server, args.pairs, args.window, args.seconds)
                finally:
                    server.stop()
                r["per_server_cpu_s"] = r["delivered_per_s"] / max(r["server_cpu"], 1e-9)
                runs[kind].append(r)
                print(json.dumps(r), flush=True)
        for kind in kinds:
            results[f"throughput_{kind}"] = best(runs[kind])
            results[f"throughput_{kind}_runs"] = runs[kind]
        rate = 0.5 * results["throughput_ref"]["delivered_per_s"]
        for kind in ("bare", "ref"):
            server = Server(kind, Path(tmp))
            try:
                results[f"latency_{kind}"] = await latency(server, args.pairs, rate, args.seconds)
            finally:
                server.stop()
            print(json.dumps(results[f"latency_{kind}"]), flush=True)
    ref, bare = results["throughput_ref"], results["throughput_bare"]
    results["ratio_ref_to_bare"] = ref["delivered_per_s"] / bare["delivered_per_s"]
    results["ratio_per_server_cpu_s"] = ref["per_server_cpu_s"] / bare["per_server_cpu_s"]
    results["load_average"] = os.getloadavg()
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pairs", type=int, default=50, help="sender/receiver connection pairs")
    p.add_argument("--window", type=int, default=40, help="messages in flight per pair")
    p.add_argument("--seconds", type=float, default=5.0, help="measured seconds per phase")
    p.add_argument("--memory", action="store_true", help="also measure --db :memory:")
    p.add_argument("--repeat", type=int, default=1, help="interleaved throughput runs per server")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "server_throughput.json")
    args = p.parse_args()
    os.sched_setaffinity(0, {CLIENT_CORE})
    results = asyncio.run(run(args))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    ref, bare = results["throughput_ref"], results["throughput_bare"]
    lr, lb = results["latency_ref"], results["latency_bare"]
    print()
    print(f"bare router (aiohttp+orjson):     {bare['delivered_per_s']:9.0f} msg/s  "
          f"(server cpu {bare['server_cpu']:.0%}, client cpu {bare['client_cpu']:.0%})")  # fmt: skip
    print(f"reference server (acks, SQLite):  {ref['delivered_per_s']:9.0f} msg/s  "
          f"(acks {ref['acks_per_s']:.0f}/s, server cpu {ref['server_cpu']:.0%}, "
          f"client cpu {ref['client_cpu']:.0%})")  # fmt: skip
    if "throughput_ref-memory" in results:
        mem = results["throughput_ref-memory"]
        print(f"reference server (:memory:):      {mem['delivered_per_s']:9.0f} msg/s")
    print(f"ratio reference / bare:           {results['ratio_ref_to_bare']:.2f}  (target >= 0.70; "
          f"Node ws ~95k msg/s)")  # fmt: skip
    print(f"ratio per server CPU-second:      {results['ratio_per_server_cpu_s']:.2f}  "
          f"(bare {bare['per_server_cpu_s']:.0f}, reference {ref['per_server_cpu_s']:.0f} msg per "
          f"CPU-s; robust to CPU stolen by other processes)")  # fmt: skip
    print(f"latency at {lr['rate']:.0f} msg/s (50% of reference max):")
    print(f"  reference: deliver p50 {lr['deliver_p50_ms']:.2f} ms p99 {lr['deliver_p99_ms']:.2f} ms; "
          f"ack p50 {lr['ack_p50_ms']:.2f} ms p99 {lr['ack_p99_ms']:.2f} ms")  # fmt: skip
    print(f"  bare:      deliver p50 {lb['deliver_p50_ms']:.2f} ms p99 {lb['deliver_p99_ms']:.2f} ms")
    print(f"load average during run: {results['load_average']}")


if __name__ == "__main__":
    main()
