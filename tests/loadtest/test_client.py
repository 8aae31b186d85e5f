"""WsClient against the real reference server (subprocess, real sockets), and a misbehaving server.

The client runs on gevent sockets without monkeypatching, so these tests do not patch the test process; the
Locust ``Environment`` is replaced by a recorder of ``request`` events (the only part the client uses).
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import gevent
import pytest
from aiohttp import WSMsgType, web

from loadtest._client import (
    ConnectFailed,
    ConnectionLost,
    RequestTimeout,
    ServerError,
    WsClient,
    format_timestamp,
    notification_body,
    parse_timestamp,
    sent_at_of_body,
)
from runstore.samples import SampleAggregator, SecondSample, merge_samples
from tests.conftest import RunningServer

pytestmark = pytest.mark.timeout(60)


@dataclass
class Recorder:
    """Stands in for ``environment``: records ``events.request.fire`` calls."""

    calls: list[dict[str, Any]] = field(default_factory=list)

    @property
    def events(self) -> Recorder:
        return self

    @property
    def request(self) -> Recorder:
        return self

    def fire(self, **kwargs: Any) -> None:
        self.calls.append(kwargs)

    def named(self, name: str) -> list[dict[str, Any]]:
        return [c for c in self.calls if c["name"] == name]


class Harness:
    def __init__(self, url: str, cookie: Callable[[str], str | None]) -> None:
        self.url = url
        self.cookie = cookie
        self.env = Recorder()
        self.agg = SampleAggregator()
        self.clients: list[WsClient] = []
        self.pushes: list[tuple[str, str, dict[str, Any]]] = []
        self.closed: list[tuple[str, str]] = []

    def client(self, user_id: str, **kwargs: Any) -> WsClient:
        c = WsClient(
            self.env,
            self.agg,
            self.url,
            user_id=user_id,
            cookie=self.cookie(user_id),
            on_push=lambda kind, data: self.pushes.append((user_id, kind, data)),
            on_close=lambda reason: self.closed.append((user_id, reason)),
            **kwargs,
        )
        self.clients.append(c)
        return c

    def totals(self) -> SecondSample:
        samples, _ = self.agg.drain()
        merged = SecondSample(0)
        for s in merge_samples(samples):
            s.second = 0
            merged.merge(s)
        return merged

    def close(self) -> None:
        for c in self.clients:
            c.close()


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        gevent.sleep(0.005)


@pytest.fixture(scope="module")
def server(module_reference_server_factory: Callable[..., RunningServer]) -> RunningServer:
    return module_reference_server_factory()


@pytest.fixture
def harness(server: RunningServer) -> Iterator[Harness]:
    h = Harness(server.ws_url, server.cookie)
    yield h
    h.close()


def chat(to: str, text: str = "hi") -> dict[str, Any]:
    return {"type": "chat_message", "receiverId": to, "message": {"content": text}}


def progress(completion: float, topic: str = "Algebra") -> dict[str, Any]:
    return {
        "type": "progress_update",
        "progress": {"subject": "Math", "topic": topic, "completion": completion},
    }


# -- against the reference server --------------------------------------------------------------------------


def test_every_round_trip_is_measured_once(harness: Harness) -> None:
    alice, bob = harness.client("c-alice"), harness.client("c-bob")
    alice.connect()
    bob.connect()
    alice.ping()
    alice.send(chat("c-bob"))
    alice.send(progress(10))
    alice.send_batch([chat("c-bob", "in a batch"), progress(20)])
    wait_for(lambda: alice.pending == 0 and len(harness.env.named("delivery:chat")) == 2)

    env = harness.env
    assert len(env.named("connect")) == 2
    assert len(env.named("pong")) == 1
    assert len(env.named("ack:chat_message")) == 2
    assert len(env.named("ack:progress_update")) == 2
    assert len(env.named("ack:batch")) == 1
    assert len(env.named("sync:progress")) == 2
    assert all(c["exception"] is None and c["request_type"] == "WS" for c in env.calls)
    assert all(isinstance(c["response_time"], float) and c["response_time"] >= 0 for c in env.calls)

    got = harness.totals()
    for metric in ("connect", "pong", "ack:chat_message", "ack:batch", "sync:progress", "delivery:chat"):
        assert metric in got.latency, metric
    assert got.latency["ack:chat_message"].get_total_count() == 2
    c = got.counters
    assert c["sent.chat_message"] == 2 and c["sent.batch"] == 1 and c["sent.ping"] == 1
    assert c["recv.ack"] == 5 and c["recv.pong"] == 1 and c["recv.new_message"] == 2
    assert not [name for name in c if name.startswith("errors.")]
    delivered = [d for u, k, d in harness.pushes if u == "c-bob" and k == "new_message"]
    assert [d["content"] for d in delivered] == ["hi", "in a batch"]
    assert all(parse_timestamp(d["timestamp"]) is not None for d in delivered)


def test_server_errors_fail_the_request_with_its_code(harness: Harness) -> None:
    alice = harness.client("c-err")
    alice.connect()
    alice.send({"type": "notification_read", "id": "no-such-id"})
    alice.send(chat("c-nobody", ""))  # empty content
    alice.send(progress(20, topic="x" * 1000))  # too long: no progress_sync will follow
    wait_for(lambda: alice.pending == 0)
    [read] = harness.env.named("ack:notification_read")
    assert isinstance(read["exception"], ServerError) and read["exception"].code == "not_found"
    [bad_chat] = harness.env.named("ack:chat_message")
    assert bad_chat["exception"].code == "invalid_field"
    assert harness.env.named("sync:progress") == []
    c = harness.totals().counters
    assert c["errors.notification_read.not_found"] == 1
    assert c["errors.chat_message.invalid_field"] == 1
    assert c["errors.progress_update.invalid_field"] == 1
    assert c["recv.error"] == 3


def test_notification_push_latency_and_read(harness: Harness, server: RunningServer) -> None:
    carol = harness.client("c-carol")
    carol.connect()
    status, created = server.post_notification("c-carol", body=notification_body("graded", time.time()))
    assert status == 201
    wait_for(lambda: harness.env.named("push:notification"))
    carol.send({"type": "notification_read", "id": created["id"]})
    wait_for(lambda: carol.pending == 0)
    [ack] = harness.env.named("ack:notification_read")
    assert ack["exception"] is None
    wait_for(lambda: sum(1 for _, k, _ in harness.pushes if k == "notification_update") == 2)
    updates = [d for _, k, d in harness.pushes if k == "notification_update"]
    assert [d["read"] for d in updates] == [False, True]
    got = harness.totals()
    assert got.latency["push:notification"].get_total_count() == 1  # the read confirmation is not a push


def test_missed_messages_are_counted_not_timed(harness: Harness) -> None:
    dave = harness.client("c-dave")
    dave.connect()
    dave.send(chat("c-erin", "while you were away"))
    wait_for(lambda: dave.pending == 0)
    gevent.sleep(0.01)
    erin = harness.client("c-erin")
    erin.connect()
    wait_for(lambda: harness.env.named("missed:chat"))
    got = harness.totals()
    assert got.counters["missed.new_message"] == 1
    assert "delivery:chat" not in got.latency


def test_open_model_latency_counts_from_the_scheduled_time(harness: Harness) -> None:
    frank = harness.client("c-frank")
    frank.connect()
    frank.send(chat("c-frank-peer"), scheduled=time.time() - 0.5)
    wait_for(lambda: frank.pending == 0)
    [ack] = harness.env.named("ack:chat_message")
    assert ack["response_time"] >= 500.0
    assert harness.totals().latency["ack:chat_message"].get_min_value() >= 500_000


def test_no_acks_sends_the_seed_frames(harness: Harness) -> None:
    gina = harness.client("c-gina", use_acks=False)
    gina.connect()
    message = chat("c-gina-peer")
    gina.send(message)
    gina.send(progress(30))
    wait_for(lambda: gina.pending == 0)
    assert "requestId" not in message
    assert harness.env.named("ack:chat_message") == []
    assert len(harness.env.named("sync:progress")) == 1


def test_timeout_then_late_reply(module_reference_server_factory: Callable[..., RunningServer]) -> None:
    slow = module_reference_server_factory("--test-delay-ms", "400")
    h = Harness(slow.ws_url, slow.cookie)
    try:
        c = h.client("c-slow2", request_timeout=0.1)
        c.connect()
        c.send(chat("c-peer"))
        c.ping()
        gevent.sleep(0.15)
        assert c.expire(time.perf_counter()) == 2
        assert c.expire(time.perf_counter()) == 0  # exactly once
        failures = [e for e in h.env.calls if e["exception"] is not None]
        assert sorted(e["name"] for e in failures) == ["ack:chat_message", "pong"]
        assert all(isinstance(e["exception"], RequestTimeout) for e in failures)
        gevent.sleep(0.6)  # the replies arrive after 400 ms
        c_ = h.totals().counters
        assert c_["errors.chat_message.timeout"] == 1 and c_["errors.ping.timeout"] == 1
        assert c_["errors.frame.late_reply"] == 2
        assert len(h.env.named("ack:chat_message")) == 1  # the late ack fired nothing more
    finally:
        h.close()


def test_the_sweeper_times_requests_out_by_itself(
    module_reference_server_factory: Callable[..., RunningServer],
) -> None:
    slow = module_reference_server_factory("--test-delay-ms", "1500")
    h = Harness(slow.ws_url, slow.cookie)
    try:
        c = h.client("c-slow3", request_timeout=0.2)
        c.connect()
        c.send(progress(5))
        wait_for(lambda: c.pending == 0, timeout=2.0)
        names = sorted(e["name"] for e in h.env.calls if e["exception"] is not None)
        assert names == ["ack:progress_update", "sync:progress"]
    finally:
        h.close()


def test_connection_lost_fails_pending_and_calls_back(
    reference_server_factory: Callable[..., RunningServer],
) -> None:
    srv = reference_server_factory("--test-delay-ms", "2000")
    h = Harness(srv.ws_url, srv.cookie)
    c = h.client("c-lost")
    c.connect()
    c.send(chat("c-peer"))
    srv.kill()
    wait_for(lambda: not c.connected)
    assert h.closed and h.closed[0][0] == "c-lost"
    [event] = h.env.named("ack:chat_message")
    assert isinstance(event["exception"], ConnectionLost)
    assert h.totals().counters["errors.chat_message.connection_lost"] == 1
    with pytest.raises(ConnectionLost):
        c.send(chat("c-peer"))


def test_connect_failures_have_a_kind(harness: Harness, server: RunningServer) -> None:
    nobody = WsClient(harness.env, harness.agg, server.ws_url, user_id="anon", cookie=None)
    with pytest.raises(ConnectFailed) as info:
        nobody.connect()
    assert info.value.code == "http_401"
    closed_port = WsClient(harness.env, harness.agg, "ws://127.0.0.1:9/ws", user_id="x", connect_timeout=2)
    with pytest.raises(ConnectFailed) as info:
        closed_port.connect()
    assert info.value.code == "refused"
    c = harness.totals().counters
    assert c["errors.connect.http_401"] == 1 and c["errors.connect.refused"] == 1
    assert [e["exception"] is not None for e in harness.env.named("connect")] == [True, True]


def test_close_is_quiet_and_drains(harness: Harness) -> None:
    c = harness.client("c-close")
    c.connect()
    c.send(chat("c-peer"))
    c.close(drain=2.0)
    assert not c.connected and harness.closed == []
    [ack] = harness.env.named("ack:chat_message")
    assert ack["exception"] is None


# -- a misbehaving server: bad frames are counted, never fatal ---------------------------------------------

M, U, L = "errors.frame.malformed_frame", "errors.frame.unexpected_frame", "errors.frame.late_reply"
BAD_FRAMES: list[tuple[str | bytes, str | None]] = [
    ("not json", M),
    ("[1, 2]", M),
    ('"just a string"', M),
    ('{"no": "type"}', M),
    ('{"type": 5}', M),
    ("[" * 5000 + "]" * 5000, M),  # deeper than the JSON codec allows
    ('{"type": "surprise"}', U),
    ('{"type": "ack"}', M),
    ('{"type": "ack", "requestId": 999999}', "errors.frame.unmatched_reply"),  # a requestId never sent
    ('{"type": "ack", "requestId": [1]}', M),
    ('{"type": "error"}', M),
    ('{"type": "error", "code": 7}', M),
    ('{"type": "pong", "ts": {"a": 1}}', M),
    ('{"type": "new_message", "data": 3}', M),
    ('{"type": "new_message"}', M),
    ('{"type": "progress_sync", "data": {"subject": "x"}}', M),
    ('{"type": "progress_sync", "data": {"subject": [], "topic": "t", "completion": 1}}', M),
    # well-formed, just not ours to time: counted as received, no latency, no error
    ('{"type": "new_message", "data": {"timestamp": "yesterday"}}', None),
    ('{"type": "notification_update", "data": {"body": "sent_at=oops"}}', None),
]


@pytest.fixture
def rogue_server() -> Iterator[str]:
    """An aiohttp server in a thread that sends every bad frame, then answers pings properly."""
    loop = asyncio.new_event_loop()
    started = threading.Event()
    box: dict[str, Any] = {}

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        for frame, _ in BAD_FRAMES:
            await ws.send_str(frame) if isinstance(frame, str) else await ws.send_bytes(frame)
        await ws.send_bytes(b"\x00\x01binary")
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                obj = json.loads(msg.data)
                if obj.get("type") == "ping":
                    await ws.send_str(json.dumps({"type": "pong", "ts": obj["ts"]}))
        return ws

    async def start() -> None:
        app = web.Application()
        app.router.add_get("/ws", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        box["runner"] = runner
        box["port"] = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        started.set()

    thread = threading.Thread(target=lambda: (loop.run_until_complete(start()), loop.run_forever()))
    thread.start()
    assert started.wait(10)
    try:
        yield f"ws://127.0.0.1:{box['port']}/ws"
    finally:
        asyncio.run_coroutine_threadsafe(box["runner"].cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def test_bad_frames_are_counted_never_fatal(rogue_server: str) -> None:
    h = Harness(rogue_server, lambda _: None)
    try:
        c = h.client("c-rogue")
        c.connect()
        c.ping()
        wait_for(lambda: h.env.named("pong"))
        assert c.connected
        counters = h.totals().counters
        errors = {k: v for k, v in counters.items() if k.startswith("errors.")}
        expected: dict[str, int] = {U: 1}  # the binary frame
        for _, counter in BAD_FRAMES:
            if counter is not None:
                expected[counter] = expected.get(counter, 0) + 1
        assert errors == expected
        assert h.env.named("delivery:chat") == [] and h.env.named("push:notification") == []
    finally:
        h.close()


def test_on_frame_survives_garbage_directly(harness: Harness) -> None:
    c = harness.client("c-direct")
    for frame, _ in BAD_FRAMES:
        c.on_frame(frame)
    c.on_frame(b"\xff\xfe not utf-8")
    counters = harness.totals().counters
    errors = sum(v for k, v in counters.items() if k.startswith("errors.frame."))
    assert errors == sum(1 for _, counter in BAD_FRAMES if counter is not None) + 1


# -- pure helpers ------------------------------------------------------------------------------------------


def test_timestamps_round_trip_to_the_microsecond() -> None:
    now = 1764108766.123456
    text = format_timestamp(now)
    assert text == "2025-11-25T22:12:46.123456Z"
    assert parse_timestamp(text) == pytest.approx(now, abs=1e-6)
    assert parse_timestamp(1764108766123) == pytest.approx(1764108766.123)  # JS Date.now()
    assert parse_timestamp("2025-11-25T22:12:46.123Z") == pytest.approx(1764108766.123)  # toISOString()
    assert parse_timestamp(None) is None and parse_timestamp("soon") is None


def test_cached_timestamp_formatting_matches_datetime() -> None:
    rng = random.Random(3)
    for _ in range(20_000):
        t = 1764108766 + rng.random() * 200_000
        expected = datetime.fromtimestamp(t, UTC).isoformat(timespec="microseconds")[:-6] + "Z"
        assert format_timestamp(t) == expected
    assert (
        format_timestamp(1764108766.9999996) == "2025-11-25T22:12:47.000000Z"
    )  # rounds into the next second


def test_notification_body_carries_the_send_time() -> None:
    body = notification_body("Your assignment was graded.", 1764108766.5)
    assert sent_at_of_body(body) == pytest.approx(1764108766.5)
    assert sent_at_of_body("no time here") is None and sent_at_of_body(None) is None


# -- a hand-written server: what arrives in one TCP segment ----------------------------------------------


@dataclass
class _Peer:
    conn: Any
    upgrade: bytes = b""
    control: list[bytes] = field(default_factory=list)

    def sendall(self, data: bytes) -> None:
        self.conn.sendall(data)


def _raw_server(
    script: Callable[[_Peer, Callable[[], dict[str, Any]]], None],
) -> tuple[str, threading.Thread]:
    """A one-connection WebSocket server on a plain socket thread, writing exactly the bytes ``script`` sends.

    ``script(conn, read)``: ``read()`` returns the next client text frame, parsed (unmasked with
    websocket-client's own ``ABNF.mask``); the 101 response is sent before ``script`` runs, by ``script``.
    """
    import socket as pysocket

    from websocket import ABNF

    from loadtest._wire import accept_key

    listener = pysocket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def recv_exact(conn: Any, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = conn.recv(n - len(data))
            if not chunk:
                raise EOFError
            data += chunk
        return data

    def serve() -> None:
        conn, _ = listener.accept()
        listener.close()
        head = b""
        while b"\r\n\r\n" not in head:
            head += conn.recv(4096)
        key = next(
            line.split(":", 1)[1].strip()
            for line in head.decode().split("\r\n")
            if line.lower().startswith("sec-websocket-key:")
        )
        peer = _Peer(conn)
        peer.upgrade = (
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Accept: {accept_key(key)}\r\n\r\n"
        ).encode()

        def read() -> dict[str, Any]:
            while True:
                b0, b1 = recv_exact(conn, 2)
                n = b1 & 0x7F
                if n == 126:
                    n = int.from_bytes(recv_exact(conn, 2), "big")
                mask = recv_exact(conn, 4)
                payload = ABNF.mask(mask, recv_exact(conn, n))
                if b0 & 0x0F == 0x1:
                    return json.loads(payload)
                peer.control.append(payload)  # a pong (or close) from the client

        try:
            script(peer, read)
        except (EOFError, OSError):
            pass
        finally:
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return f"ws://127.0.0.1:{port}/ws", thread


def _text(obj: dict[str, Any]) -> bytes:
    payload = json.dumps(obj).encode()
    return bytes((0x81, len(payload))) + payload


def test_frames_of_one_read_share_its_receive_time() -> None:
    seen: dict[str, Any] = {}

    def script(conn: _Peer, read: Callable[[], dict[str, Any]]) -> None:
        # A push right behind the 101 in the same segment, then a WebSocket ping, then a fragmented pong.
        early = {"type": "new_message", "data": {"timestamp": format_timestamp(time.time())}}
        conn.sendall(conn.upgrade + _text(early) + bytes((0x89, 2)) + b"hi")
        update = read()
        key = update["progress"]
        sync = {"type": "progress_sync", "data": key}
        # the ack and the sync in one write: one segment on loopback, one read on the client
        conn.sendall(_text({"type": "ack", "requestId": update["requestId"]}) + _text(sync))
        ping = read()
        body = json.dumps({"type": "pong", "ts": ping["ts"]}).encode()
        conn.sendall(bytes((0x01, 5)) + body[:5] + bytes((0x80, len(body) - 5)) + body[5:])
        seen["control"] = conn.control
        read()  # until the client closes

    url, thread = _raw_server(script)
    h = Harness(url, lambda _: None)
    try:
        c = h.client("c-raw")
        c.connect()
        c.send(progress(42.0))
        wait_for(lambda: h.env.named("sync:progress"))
        c.ping()
        wait_for(lambda: h.env.named("pong"))
        assert c.connected
    finally:
        h.close()
    thread.join(5)
    assert seen.get("control", [b""])[0] == b"hi"  # the WebSocket ping was answered with its payload
    ack, sync = h.env.named("ack:progress_update"), h.env.named("sync:progress")
    assert len(ack) == len(sync) == 1
    assert ack[0]["response_time"] == sync[0]["response_time"]
    totals = h.totals()
    assert totals.counters.get("recv.new_message") == 1 and h.env.named("delivery:chat")
    hists = totals.latency
    assert hists["ack:progress_update"].get_max_value() == hists["sync:progress"].get_max_value()
    assert not any(k.startswith("errors.") for k in totals.counters)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="kernel receive timestamps: Linux")
def test_a_stall_of_the_generator_is_not_the_targets_latency(harness: Harness) -> None:
    c = harness.client("c-stalled")
    c.connect()
    c.ping()
    time.sleep(1.0)  # blocks the whole hub: the pong waits in the socket buffer, stamped on arrival
    wait_for(lambda: harness.env.named("pong"))
    (pong,) = harness.env.named("pong")
    assert pong["response_time"] < 500.0  # ms: the round trip, not the round trip plus the 1 s stall
    assert harness.totals().latency["pong"].get_max_value() < 500_000
