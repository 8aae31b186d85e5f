"""The public user API (``loadtest.user_api``) against a server that is not the seed's, on real sockets.

A JSON-RPC 2.0 server (``tests/loadtest/foreign_server.py``) in a thread; the reference server for
permessage-deflate. The connection runs on gevent sockets without monkeypatching; Locust's ``Environment`` is
replaced by a recorder of ``request`` events. ``test_a_locustfile_of_its_own_protocol_is_stored`` runs Locust
for real, in a subprocess.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from loadtest._deflate import BROWSER_OFFER, negotiate
from loadtest._wire import OP_TEXT, RSV1, FrameDecoder, HandshakeFailed, ProtocolError
from loadtest.user_api import (
    ConnectFailed,
    Connection,
    ConnectionLost,
    ConnectOptions,
    JsonProtocol,
    Push,
    RequestTimeout,
    ServerError,
    field_getter,
    parse_timestamp,
)
from runstore.names import request_type
from runstore.samples import SampleAggregator, SecondSample, merge_samples
from tests.conftest import RunningServer
from tests.loadtest.foreign_server import ForeignServer, self_signed
from tests.loadtest.locust_runs import REPO_ROOT, locust_env
from tests.loadtest.test_client import Recorder, wait_for

pytestmark = pytest.mark.timeout(60)

RPC = JsonProtocol(kind="method", request_id="id", error="error.code")


@pytest.fixture(scope="module")
def foreign() -> Iterator[ForeignServer]:
    server = ForeignServer()
    yield server
    server.stop()


class Rig:
    """Connections to one server, their events and their samples."""

    def __init__(self) -> None:
        self.env = Recorder()
        self.agg = SampleAggregator()
        self.connections: list[Connection] = []

    def connect(self, url: str, protocol: Any = RPC, **options: Any) -> Connection:
        timeout = options.pop("request_timeout", 5.0)
        c = Connection(
            self.env,
            self.agg,
            url,
            protocol=protocol,
            options=ConnectOptions(**options),
            request_timeout=timeout,
        )
        self.connections.append(c)
        c.connect()
        return c

    def totals(self) -> SecondSample:
        samples, _ = self.agg.drain()
        merged = SecondSample(0)
        for s in merge_samples(samples):
            s.second = 0
            merged.merge(s)
        return merged

    def close(self) -> None:
        for c in self.connections:
            c.close()


@pytest.fixture
def rig() -> Iterator[Rig]:
    r = Rig()
    yield r
    r.close()


def call(method: str, *params: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "method": method, "params": list(params)}


# -- requests, errors, timeouts ----------------------------------------------------------------------------


def test_requests_are_matched_by_id_and_measured_once(rig: Rig, foreign: ForeignServer) -> None:
    c = rig.connect(foreign.url(), subprotocols=("jsonrpc",))
    assert c.subprotocol == "jsonrpc"
    for i in range(20):
        c.request(call("add", i, 1), "rpc:add")
    assert c.call(call("add", 2, 3), "rpc:add")["result"] == 5
    wait_for(lambda: c.pending == 0)
    adds = rig.env.named("rpc:add")
    assert len(adds) == 21 and all(e["exception"] is None and e["request_type"] == "WS" for e in adds)
    totals = rig.totals()
    assert totals.latency["rpc:add"].get_total_count() == 21
    assert totals.counters["sent.rpc:add"] == 21 and totals.counters["recv.rpc:add"] == 21
    assert not any(k.startswith("errors.") for k in totals.counters)
    assert request_type("rpc:add") == "rpc:add"  # the report and the gate find its error rate


def test_an_error_reply_fails_its_request_with_the_servers_code(rig: Rig, foreign: ForeignServer) -> None:
    c = rig.connect(foreign.url(), subprotocols=("jsonrpc",))
    with pytest.raises(ServerError) as failure:
        c.call(call("fail"), "rpc:fail")
    assert failure.value.code == "-32000" and failure.value.reply["error"]["message"] == "it failed"
    [event] = rig.env.named("rpc:fail")
    assert isinstance(event["exception"], ServerError)
    totals = rig.totals()
    assert totals.counters["errors.rpc:fail.-32000"] == 1 and "rpc:fail" not in totals.latency


def test_a_timeout_is_an_error_and_its_late_reply_is_named(rig: Rig, foreign: ForeignServer) -> None:
    c = rig.connect(foreign.url(), subprotocols=("jsonrpc",), request_timeout=0.3)
    with pytest.raises(RequestTimeout):
        c.call({"jsonrpc": "2.0", "method": "late", "params": {"delay": 0.8}}, "rpc:late")
    wait_for(lambda: rig.totals().counters.get("errors.frame.late_reply") == 1 or False, 3)
    assert c.connected


def test_the_request_id_may_live_in_a_nested_field(rig: Rig, foreign: ForeignServer) -> None:
    nested = JsonProtocol(kind="method", request_id="params.id", reply_id="result.ref", ids="str")
    c = rig.connect(foreign.url(), protocol=nested, subprotocols=("jsonrpc",))
    reply = c.call({"jsonrpc": "2.0", "method": "nested"}, "rpc:nested")
    assert reply == {"jsonrpc": "2.0", "result": {"ref": "1"}}
    assert rig.totals().latency["rpc:nested"].get_total_count() == 1


def test_pushes_are_timed_from_their_payload_or_counted_by_name(rig: Rig, foreign: ForeignServer) -> None:
    seen: list[dict[str, Any]] = []
    c = Connection(
        rig.env, rig.agg, foreign.url(), protocol=RPC, options=ConnectOptions(subprotocols=("jsonrpc",))
    )
    rig.connections.append(c)
    c.add_push(Push("tick", "push:tick", "params.sent_at"), seen.append)
    c.add_push(Push("hello"))
    c.connect()
    for _ in range(3):
        c.call(call("notify"), "rpc:notify")
    wait_for(lambda: len(rig.env.named("push:tick")) == 3)
    assert [m["method"] for m in seen] == ["tick"] * 3
    totals = rig.totals()
    assert totals.latency["push:tick"].get_total_count() == 3
    assert totals.latency["push:tick"].get_max_value() < 1_000_000  # µs: one machine's clock
    assert totals.counters["recv.hello"] == 3 and totals.counters["recv.tick"] == 3
    assert not any(k.startswith("errors.") for k in totals.counters)
    assert request_type("push:tick") is None  # a push answers no request of its own
    with pytest.raises(ValueError, match="push:"):
        c.add_push(Push("tick", "tick_latency", "params.sent_at"))


def test_bad_input_is_counted_by_name_and_never_kills_the_connection(
    rig: Rig, foreign: ForeignServer
) -> None:
    c = rig.connect(foreign.url(), subprotocols=("jsonrpc",))
    assert c.call(call("garbage"), "rpc:garbage")["result"] == "ok"
    assert c.call(call("add", 1, 1), "rpc:add")["result"] == 2  # still connected, still measuring
    c.on_frame('{"jsonrpc": "2.0", "method": "surprise"}')  # a kind nobody handles
    c.on_frame('{"jsonrpc": "2.0", "id": {"not": "an id"}}')
    counters = rig.totals().counters
    errors = {k: v for k, v in counters.items() if k.startswith("errors.")}
    assert errors == {
        "errors.frame.malformed_frame": 2,  # not JSON; an id that is an object
        "errors.frame.unexpected_frame": 2,  # the binary frame; the unknown notification
        "errors.frame.unmatched_reply": 1,  # a reply to an id never sent
    }


def test_a_close_mid_request_fails_what_is_pending(rig: Rig, foreign: ForeignServer) -> None:
    closed: list[str] = []
    c = Connection(
        rig.env,
        rig.agg,
        foreign.url(),
        protocol=RPC,
        options=ConnectOptions(subprotocols=("jsonrpc",)),
        on_close=closed.append,
    )
    rig.connections.append(c)
    c.connect()
    c.request(call("slow"), "rpc:slow")
    c.request(call("close"), "rpc:close")
    wait_for(lambda: not c.connected)
    assert closed and closed[0].startswith("closed by server")
    counters = rig.totals().counters
    assert (
        counters["errors.rpc:slow.connection_lost"] == 1 and counters["errors.rpc:close.connection_lost"] == 1
    )
    with pytest.raises(ConnectionLost):
        c.request(call("add", 1, 2), "rpc:add")


def test_names_that_would_break_the_counters_are_refused(rig: Rig, foreign: ForeignServer) -> None:
    c = rig.connect(foreign.url(), subprotocols=("jsonrpc",))
    with pytest.raises(ValueError, match=r"without '\.'"):
        c.request(call("add", 1, 2), "rpc.add")
    assert c.pending == 0


# -- the handshake: headers, cookies, subprotocols, TLS ----------------------------------------------------


def test_headers_cookies_and_the_subprotocol_reach_the_server(rig: Rig, foreign: ForeignServer) -> None:
    rig.connect(
        foreign.url(),
        headers=(("Authorization", "Bearer t0ken"), ("Origin", "http://app.test")),
        cookie="session=abc",
        cookies={"theme": "dark"},
        subprotocols=("graphql-ws", "jsonrpc"),
    )
    shake = foreign.handshakes[-1]
    headers = shake["headers"]
    assert headers["Authorization"] == "Bearer t0ken" and headers["Origin"] == "http://app.test"
    assert headers["Cookie"] == "session=abc; theme=dark"
    assert headers["Sec-WebSocket-Protocol"] == "graphql-ws, jsonrpc" and shake["protocol"] == "jsonrpc"
    assert "Sec-WebSocket-Extensions" not in headers  # compression off: nothing offered


def test_a_server_that_picks_no_subprotocol_fails_the_connect(rig: Rig, foreign: ForeignServer) -> None:
    with pytest.raises(ConnectFailed) as failure:
        rig.connect(foreign.url("/plain"), subprotocols=("jsonrpc",))
    assert failure.value.code == "handshake"
    assert rig.totals().counters["errors.connect.handshake"] == 1
    c = rig.connect(foreign.url("/plain"), subprotocols=("jsonrpc",), require_subprotocol=False)
    assert c.connected and c.subprotocol is None


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ForeignServer, Path]]:
    cert, key = self_signed(tmp_path_factory.mktemp("tls"))
    server = ForeignServer(tls=(cert, key))
    yield server, cert
    server.stop()


def test_wss_with_a_ca_file_an_explicit_insecure_flag_or_neither(
    rig: Rig, tls_server: tuple[ForeignServer, Path]
) -> None:
    server, cert = tls_server
    with pytest.raises(ConnectFailed) as failure:  # a self-signed certificate is not trusted by default
        rig.connect(server.url(), subprotocols=("jsonrpc",))
    assert failure.value.code == "tls"
    trusted = rig.connect(server.url(), subprotocols=("jsonrpc",), ca_file=str(cert))
    assert trusted.call(call("add", 40, 2), "rpc:add")["result"] == 42
    insecure = rig.connect(server.url(), subprotocols=("jsonrpc",), insecure=True)
    assert insecure.call(call("add", 1, 2), "rpc:add")["result"] == 3
    assert rig.totals().counters["errors.connect.tls"] == 1


# -- permessage-deflate ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compressing(module_reference_server_factory: Callable[..., RunningServer]) -> RunningServer:
    return module_reference_server_factory("--compress")


def test_deflate_is_offered_as_browsers_do_and_every_frame_kind_arrives(compressing: RunningServer) -> None:
    from loadtest._client import WsClient

    assert BROWSER_OFFER == "permessage-deflate; client_max_window_bits"
    env, agg = Recorder(), SampleAggregator()
    pushes: list[tuple[str, dict[str, Any]]] = []

    def client(user: str) -> WsClient:
        options = ConnectOptions(cookie=compressing.cookie(user), compression=True)
        c = WsClient(env, agg, compressing.ws_url, user_id=user, options=options)
        c.on_push = lambda kind, data: pushes.append((kind, data))
        c.connect()
        return c

    alice, bob = client("z-alice"), client("z-bob")
    try:
        assert alice.compressed and bob.compressed
        long_text = "é" * 9_000  # 18 KB of UTF-8 each way (the server allows 10,000 characters)
        alice.send({"type": "chat_message", "receiverId": "z-bob", "message": {"content": long_text}})
        for i in range(20):
            alice.send({"type": "chat_message", "receiverId": "z-bob", "message": {"content": f"m{i}"}})
        alice.ping()
        wait_for(lambda: len(env.named("delivery:chat")) == 21 and alice.pending == 0)
        contents = [data["content"] for kind, data in pushes if kind == "new_message"]
        assert contents == [long_text] + [f"m{i}" for i in range(20)]
        assert len(env.named("ack:chat_message")) == 21 and env.named("pong")
        assert all(e["exception"] is None for e in env.calls)
    finally:
        alice.close()
        bob.close()


def test_without_the_servers_consent_nothing_is_compressed(
    module_reference_server_factory: Callable[..., RunningServer],
) -> None:
    from loadtest._client import WsClient

    plain = module_reference_server_factory()
    env, agg = Recorder(), SampleAggregator()
    c = WsClient(
        env,
        agg,
        plain.ws_url,
        user_id="z-plain",
        options=ConnectOptions(cookie=plain.cookie("z-plain"), compression=True),
    )
    c.connect()
    try:
        assert c.connected and not c.compressed
        c.ping()
        wait_for(lambda: bool(env.named("pong")))
    finally:
        c.close()


def test_negotiation_refuses_what_was_not_offered() -> None:
    assert negotiate(None, 1 << 20) is None
    deflate = negotiate("permessage-deflate; client_max_window_bits=12", 1 << 20)
    assert deflate is not None and deflate.extension.local_max_window_bits == 12
    for answer in (
        "x-webkit-deflate-frame",
        "permessage-deflate; server_max_window_bits=99",
        "permessage-deflate, x",
    ):
        with pytest.raises(HandshakeFailed):
            negotiate(answer, 1 << 20)


def test_compressed_frames_through_the_decoder_and_back() -> None:
    from websockets.extensions.permessage_deflate import PerMessageDeflate
    from websockets.frames import Frame, Opcode

    server = PerMessageDeflate(False, False, 15, 15)  # the server side of the same negotiated extension
    client = negotiate("permessage-deflate", 1 << 20)
    assert client is not None
    decoder = FrameDecoder(rsv1=True)
    for text in (b'{"type": "ack", "requestId": 1}', b'{"type": "ack", "requestId": 2}', b"x" * 70_000):
        data = server.encode(Frame(Opcode.TEXT, text)).data
        header = bytes((0x80 | RSV1 | OP_TEXT, len(data))) if len(data) < 126 else None
        if header is None:
            header = bytes((0x80 | RSV1 | OP_TEXT, 126)) + len(data).to_bytes(2, "big")
        [(opcode, payload)] = decoder.feed(header + data)
        assert opcode == OP_TEXT | RSV1 and client.inflate(OP_TEXT, payload) == text
        # and the client's direction: what it compresses, the server inflates
        sent = client.compress(OP_TEXT, text)
        assert server.decode(Frame(Opcode.TEXT, sent, rsv1=True)).data == text
    with pytest.raises(ProtocolError):
        FrameDecoder().feed(bytes((0x80 | RSV1 | OP_TEXT, 1)) + b"x")  # RSV1 without the extension
    with pytest.raises(ProtocolError, match="inflates beyond"):
        small = negotiate("permessage-deflate", 1000)
        assert small is not None
        small.inflate(OP_TEXT, server.encode(Frame(Opcode.TEXT, b"y" * 5000)).data)


# -- pure helpers ------------------------------------------------------------------------------------------


def test_field_paths_and_timestamps() -> None:
    get = field_getter("payload.data.0.at")
    assert get({"payload": {"data": [{"at": 5}]}}) == 5
    assert get({"payload": {"data": []}}) is None and get("text") is None
    with pytest.raises(ValueError):
        field_getter("a..b")
    now = time.time()
    for value in (now, now * 1e3, now * 1e6, now * 1e9):
        assert parse_timestamp(value) == pytest.approx(now, abs=1e-3)
    assert parse_timestamp("2026-12-03T13:41:11.5Z") == pytest.approx(1796305271.5)
    assert parse_timestamp("never") is None and parse_timestamp(None) is None


# -- a locustfile of its own protocol, for real --------------------------------------------------------------

LOCUSTFILE = """
from locust import task
from loadtest.user_api import JsonProtocol, ProtocolUser, install_lifecycle, push_handler

install_lifecycle()


class RpcUser(ProtocolUser):
    protocol = JsonProtocol(kind="method", error="error.code")
    subprotocols = ("jsonrpc",)
    path = "/drop"
    think_median_s = 0.02

    def on_start(self):
        super().on_start()
        if self.open_rate > 0:
            self.run_on_schedule(self.open_rate, self.scheduled)

    def scheduled(self, at):
        self.request({"jsonrpc": "2.0", "method": "notify", "params": []}, "rpc:notify", scheduled=at)

    @task
    def add(self):
        self.request({"jsonrpc": "2.0", "method": "add", "params": [1, 2]}, "rpc:add")
        self.request({"jsonrpc": "2.0", "method": "fail", "params": []}, "rpc:fail")

    @push_handler("tick", metric="push:tick", sent_at="params.sent_at")
    def on_tick(self, message):
        pass
"""


def test_a_locustfile_of_its_own_protocol_is_stored(tmp_path: Path, foreign: ForeignServer) -> None:
    """Round trips, error replies, pushes, reconnects (the server drops every connection) and the open model,
    all in the run store, the way the monitor, the report and the gate read it."""
    import subprocess
    import sys

    from runstore.store import RunStore

    locustfile = tmp_path / "locustfile.py"
    locustfile.write_text(LOCUSTFILE)
    store_path = tmp_path / "store.sqlite3"
    host = foreign.url("/")
    args = "--headless -u 3 -r 3 -t 4s --auth none --scrape-metrics false --report false --open-rate 5"
    args += " --reconnect-base-ms 20 --reconnect-max-ms 100 --exit-code-on-error 0"
    command = [sys.executable, "-m", "locust", "-f", str(locustfile), *args.split()]
    command += ["--host", host, "--results", str(store_path)]
    proc = subprocess.run(
        command,
        cwd=REPO_ROOT,
        env=locust_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    with RunStore.open(store_path, readonly=True) as store:
        run_id = store.latest_run_id()
        assert run_id is not None
        assert store.get_run(run_id).status == "completed"
        metrics = set(store.latency_metrics(run_id))
        assert {"connect", "rpc:add", "rpc:notify", "push:tick", "send_lag"} <= metrics
        counters = store.counters(run_id).groupby("name")["value"].sum()
        assert counters["errors.rpc:fail.-32000"] > 0 and counters["sent.rpc:add"] > 0
        kinds = set(store.events(run_id)["kind"])
        assert {"connected", "disconnected", "reconnecting"} <= kinds  # /drop closes after 3 requests
        gauges = store.gauges(run_id) if hasattr(store, "gauges") else None
        if gauges is not None:
            assert "users.connected" in set(gauges["name"])
