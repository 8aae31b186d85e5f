"""The JSON-RPC example server: its sans-I/O core directly, then the real server over real sockets."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator

import pytest
import websocket

from examples.jsonrpc.server import (
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    UNKNOWN_SYMBOL,
    Call,
    RpcError,
    execute,
    parse_message,
    service_time,
)
from tests.examples.servers import example_server

# -- core -----------------------------------------------------------------------------------------


def test_a_call_and_a_notification_are_told_apart() -> None:
    (call,), batch = parse_message('{"jsonrpc":"2.0","method":"echo","params":[1],"id":"a"}')
    assert call == Call("echo", [1], "a") and not batch
    (note,), _ = parse_message('{"jsonrpc":"2.0","method":"echo","params":[1]}')
    assert isinstance(note, Call) and note.is_notification
    (null_id,), _ = parse_message('{"jsonrpc":"2.0","method":"echo","id":null}')
    assert isinstance(null_id, Call) and not null_id.is_notification


@pytest.mark.parametrize(
    ("text", "code", "id"),
    [
        ("{not json", PARSE_ERROR, None),
        ("[]", INVALID_REQUEST, None),
        ("1", INVALID_REQUEST, None),
        ('{"jsonrpc":"1.0","method":"echo","id":3}', INVALID_REQUEST, 3),
        ('{"jsonrpc":"2.0","method":7,"id":3}', INVALID_REQUEST, 3),
        ('{"jsonrpc":"2.0","method":"echo","params":"x","id":3}', INVALID_REQUEST, 3),
        ('{"jsonrpc":"2.0","method":"echo","id":{"a":1}}', INVALID_REQUEST, None),
        ('{"jsonrpc":"2.0","method":"echo","id":true}', INVALID_REQUEST, None),
    ],
)
def test_bad_requests_get_the_specs_error_objects(text: str, code: int, id: object) -> None:
    (response,), _ = parse_message(text)
    assert isinstance(response, dict)
    assert response["jsonrpc"] == "2.0" and response["error"]["code"] == code and response["id"] == id
    assert isinstance(response["error"]["message"], str)


def test_a_batch_keeps_its_order_and_its_bad_items() -> None:
    items, batch = parse_message('[{"jsonrpc":"2.0","method":"sum","params":[1,2],"id":1}, 5]')
    assert batch and isinstance(items[0], Call) and items[1]["error"]["code"] == INVALID_REQUEST


def test_methods() -> None:
    assert execute(Call("echo", ["hi", 2], 1), 0.0) == ["hi", 2]
    assert execute(Call("sum", [1, 2, 3.5], 1), 0.0) == 6.5
    assert execute(Call("sum", [[1, 2]], 1), 0.0) == 3
    quote = execute(Call("get_quote", {"symbol": "ACME"}, 1), 1000.0)
    assert quote["symbol"] == "ACME" and quote["ts"] == 1000.0 and quote["price"] > 0


@pytest.mark.parametrize(
    ("call", "code"),
    [
        (Call("sum", ["a"], 1), INVALID_PARAMS),
        (Call("sum", [True], 1), INVALID_PARAMS),
        (Call("get_quote", ["ACME"], 1), INVALID_PARAMS),
        (Call("get_quote", {"symbol": "NOPE"}, 1), UNKNOWN_SYMBOL),
        (Call("transfer", None, 1), METHOD_NOT_FOUND),
    ],
)
def test_method_errors(call: Call, code: int) -> None:
    with pytest.raises(RpcError) as exc:
        execute(call, 0.0)
    assert exc.value.code == code


def test_service_times_are_seeded_and_scaled() -> None:
    a = [service_time("get_quote", random.Random(3), 1.0) for _ in range(3)]
    assert a == [service_time("get_quote", random.Random(3), 1.0) for _ in range(3)]
    assert all(0 < t <= 0.05 for t in a)
    assert service_time("get_quote", random.Random(3), 0.0) == 0.0
    assert service_time("unknown", random.Random(3), 1.0) == 0.0


# -- the real server ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rpc_url() -> Iterator[str]:
    with example_server("jsonrpc") as url:
        yield url


def _connect(url: str) -> websocket.WebSocket:
    return websocket.create_connection(url, timeout=5)


def _call(ws: websocket.WebSocket, method: str, params: object, id: object) -> dict:
    ws.send(json.dumps({"jsonrpc": "2.0", "method": method, "params": params, "id": id}))
    return json.loads(ws.recv())


def test_calls_over_a_socket(rpc_url: str) -> None:
    ws = _connect(rpc_url)
    try:
        assert _call(ws, "sum", [1, 2], 7) == {"jsonrpc": "2.0", "result": 3, "id": 7}
        assert _call(ws, "get_quote", {"symbol": "NOPE"}, "q")["error"]["code"] == UNKNOWN_SYMBOL
        ws.send("{oops")
        assert json.loads(ws.recv())["error"]["code"] == PARSE_ERROR
        ws.send_binary(b"\x00")
        assert json.loads(ws.recv())["error"]["code"] == INVALID_REQUEST
    finally:
        ws.close()


def test_replies_come_out_of_order_and_match_by_id(rpc_url: str) -> None:
    ws = _connect(rpc_url)
    try:
        ws.send(
            json.dumps({"jsonrpc": "2.0", "method": "get_quote", "params": {"symbol": "ACME"}, "id": "slow"})
        )
        ws.send(json.dumps({"jsonrpc": "2.0", "method": "echo", "params": ["fast"], "id": "fast"}))
        replies = [json.loads(ws.recv()) for _ in range(2)]
        assert [r["id"] for r in replies] == ["fast", "slow"]
    finally:
        ws.close()


def test_a_batch_is_answered_in_one_array_without_its_notifications(rpc_url: str) -> None:
    ws = _connect(rpc_url)
    try:
        ws.send(
            json.dumps(
                [
                    {"jsonrpc": "2.0", "method": "sum", "params": [1, 1], "id": 1},
                    {"jsonrpc": "2.0", "method": "echo", "params": ["n"]},
                    {"jsonrpc": "2.0", "method": "nope", "id": 2},
                ]
            )
        )
        reply = json.loads(ws.recv())
        assert [r.get("result") for r in reply] == [2, None] and reply[1]["error"]["code"] == METHOD_NOT_FOUND
    finally:
        ws.close()


def test_ticker_notifications_carry_their_send_time(rpc_url: str) -> None:
    ws = _connect(rpc_url)
    try:
        reply = _call(ws, "subscribe", {"channel": "ticker", "symbol": "GLOBEX", "interval_ms": 20}, 1)
        sub = reply["result"]
        for _ in range(3):
            note = json.loads(ws.recv())
            assert "id" not in note and note["method"] == "ticker"
            assert note["params"]["subscription"] == sub and note["params"]["symbol"] == "GLOBEX"
            assert abs(time.time() - note["params"]["ts"]) < 5
        ws.send(json.dumps({"jsonrpc": "2.0", "method": "unsubscribe", "params": [sub], "id": 2}))
        while (msg := json.loads(ws.recv())).get("id") != 2:
            assert msg["method"] == "ticker"  # sent before the unsubscribe arrived
        assert msg["result"] is True
        assert _call(ws, "unsubscribe", [sub], 3)["result"] is False
        bad = _call(ws, "subscribe", {"channel": "ticker", "symbol": "ACME", "interval_ms": 1}, 4)
        assert bad["error"]["code"] == INVALID_PARAMS
    finally:
        ws.close()


def test_misbehaving_on_purpose() -> None:
    with example_server(
        "jsonrpc", "--misbehave", "non_json,binary,unmatched", "--misbehave-every", "2"
    ) as url:
        ws = _connect(url)
        try:
            assert _call(ws, "echo", [1], 1)["result"] == [1]
            ws.send(json.dumps({"jsonrpc": "2.0", "method": "echo", "params": [2], "id": 2}))
            assert ws.recv() == "<html>502 Bad Gateway</html>"
            assert isinstance(ws.recv(), bytes)
            assert json.loads(ws.recv())["id"] == "nobody-2"
            assert json.loads(ws.recv())["id"] == 2
        finally:
            ws.close()
    with example_server("jsonrpc", "--misbehave", "error", "--misbehave-every", "2") as url:
        ws = _connect(url)
        try:
            assert _call(ws, "echo", [1], 1)["result"] == [1]
            assert _call(ws, "echo", [2], 2) == {
                "jsonrpc": "2.0",
                "error": {"code": -32603, "message": "Internal error", "data": "misbehaving on purpose"},
                "id": 2,
            }
        finally:
            ws.close()
    with example_server("jsonrpc", "--misbehave", "close", "--misbehave-every", "1") as url:
        ws = _connect(url)
        try:
            ws.send(json.dumps({"jsonrpc": "2.0", "method": "echo", "params": [2], "id": 2}))
            opcode, data = ws.recv_data(control_frame=True)
            assert opcode == websocket.ABNF.OPCODE_CLOSE and int.from_bytes(data[:2]) == 1011
        finally:
            ws.close()


def test_bad_options_are_refused_by_name() -> None:
    import subprocess
    import sys

    from tests.examples.servers import EXAMPLES

    out = subprocess.run(
        [sys.executable, str(EXAMPLES / "jsonrpc" / "server.py"), "--misbehave", "explode"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert out.returncode == 2 and "--misbehave: unknown explode" in out.stderr


def test_stats_count_calls_received_and_notifications_sent() -> None:
    import urllib.request

    with example_server("jsonrpc", "--latency-scale", "0") as url:
        ws = _connect(url)
        try:
            _call(ws, "echo", [], 1)
            _call(ws, "echo", [], 2)
            _call(ws, "subscribe", {"channel": "ticker", "symbol": "ACME", "interval_ms": 10}, 3)
            got = [json.loads(ws.recv()) for _ in range(2)]
        finally:
            ws.close()
        http = url.replace("ws://", "http://").rstrip("/")
        with urllib.request.urlopen(f"{http}/stats", timeout=5) as response:
            stats = json.load(response)
    assert stats["calls"] == {"echo": 2, "subscribe": 1}
    assert stats["notifications"] >= len(got) == 2
