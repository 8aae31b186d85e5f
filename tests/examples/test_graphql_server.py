"""The GraphQL example server: the ``graphql-transport-ws`` session directly, then the real server."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
import websocket

from examples.graphql.server import (
    CLOSE_BAD_MESSAGE,
    CLOSE_DUPLICATE_ID,
    CLOSE_INIT_TIMEOUT,
    CLOSE_SUBPROTOCOL,
    CLOSE_TOO_MANY_INITS,
    CLOSE_UNAUTHORIZED,
    SUBPROTOCOL,
    Close,
    Send,
    Session,
    Start,
    Stop,
)
from tests.examples.servers import example_server

QUOTE = {
    "query": "query Q($s: String!) { quote(symbol: $s) { symbol price ts } }",
    "variables": {"s": "ACME"},
}
TICKS = {"query": 'subscription { ticks(symbol: "ACME", intervalMs: 20, count: 3) { seq sentAt } }'}


def _msg(**fields: object) -> str:
    return json.dumps(fields)


def _ready() -> Session:
    session = Session()
    assert session.receive(_msg(type="connection_init")) == [Send({"type": "connection_ack"})]
    return session


# -- the session ----------------------------------------------------------------------------------


def test_init_ping_subscribe_complete() -> None:
    session = _ready()
    assert session.receive(_msg(type="ping", payload={"a": 1})) == [
        Send({"type": "pong", "payload": {"a": 1}})
    ]
    assert session.receive(_msg(type="pong")) == []
    (start,) = session.receive(_msg(type="subscribe", id="1", payload=QUOTE))
    assert isinstance(start, Start) and start.id == "1" and start.operation.kind == "query"
    assert session.complete("1") == [Send({"id": "1", "type": "complete"})]
    assert session.complete("1") == []


def test_the_client_completing_stops_without_a_complete_back() -> None:
    session = _ready()
    session.receive(_msg(type="subscribe", id="s", payload=TICKS))
    assert session.receive(_msg(type="complete", id="s")) == [Stop("s")]
    assert session.complete("s") == [] and session.receive(_msg(type="complete", id="s")) == []


def test_a_bad_document_is_an_error_message_not_a_close() -> None:
    session = _ready()
    (reply,) = session.receive(_msg(type="subscribe", id="x", payload={"query": "{ nope }"}))
    assert reply == Send(
        {"id": "x", "type": "error", "payload": [{"message": 'Cannot query field "nope" on type "Query"'}]}
    )
    assert not session.closed and "x" not in session.active


@pytest.mark.parametrize(
    ("frames", "code"),
    [
        (["not json"], CLOSE_BAD_MESSAGE),
        (["[1]"], CLOSE_BAD_MESSAGE),
        ([_msg(type="next", id="1")], CLOSE_BAD_MESSAGE),
        ([_msg(type="subscribe", id="1", payload=QUOTE)], CLOSE_UNAUTHORIZED),
        ([_msg(type="connection_init"), _msg(type="connection_init")], CLOSE_TOO_MANY_INITS),
        ([_msg(type="connection_init"), _msg(type="subscribe", id=1, payload=QUOTE)], CLOSE_BAD_MESSAGE),
        ([_msg(type="connection_init"), _msg(type="subscribe", id="1")], CLOSE_BAD_MESSAGE),
        ([_msg(type="connection_init"), _msg(type="complete")], CLOSE_BAD_MESSAGE),
        (
            [
                _msg(type="connection_init"),
                _msg(type="subscribe", id="1", payload=TICKS),
                _msg(type="subscribe", id="1", payload=TICKS),
            ],
            CLOSE_DUPLICATE_ID,
        ),
    ],
)
def test_protocol_violations_close_with_the_specs_codes(frames: list[str], code: int) -> None:
    session = Session()
    actions = [a for frame in frames for a in session.receive(frame)]
    assert isinstance(actions[-1], Close) and actions[-1].code == code
    assert session.closed and session.receive(_msg(type="ping")) == []


def test_a_binary_frame_closes_with_4400() -> None:
    assert _ready().binary() == [Close(CLOSE_BAD_MESSAGE, "Invalid message received: binary")]


# -- the real server ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gql_url() -> Iterator[str]:
    with example_server("graphql", "--init-timeout", "0.5") as url:
        yield url


def _connect(url: str, subprotocols: list[str] | None = None) -> websocket.WebSocket:
    return websocket.create_connection(
        url, timeout=5, subprotocols=[SUBPROTOCOL] if subprotocols is None else subprotocols
    )


def _recv(ws: websocket.WebSocket) -> dict:
    return json.loads(ws.recv())


def _close_code(ws: websocket.WebSocket) -> int:
    opcode, data = ws.recv_data(control_frame=True)
    assert opcode == websocket.ABNF.OPCODE_CLOSE
    return int.from_bytes(data[:2])


def test_a_query_and_a_subscription_over_a_socket(gql_url: str) -> None:
    ws = _connect(gql_url)
    try:
        assert ws.getsubprotocol() == SUBPROTOCOL
        ws.send(_msg(type="connection_init", payload={}))
        assert _recv(ws) == {"type": "connection_ack"}
        ws.send(_msg(type="subscribe", id="q1", payload=QUOTE))
        reply = _recv(ws)
        assert (
            reply["id"] == "q1"
            and reply["type"] == "next"
            and reply["payload"]["data"]["quote"]["symbol"] == "ACME"
        )
        assert _recv(ws) == {"id": "q1", "type": "complete"}
        ws.send(_msg(type="subscribe", id="s1", payload=TICKS))
        ticks = [_recv(ws) for _ in range(3)]
        assert [t["payload"]["data"]["ticks"]["seq"] for t in ticks] == [1, 2, 3]
        assert all(abs(time.time() - t["payload"]["data"]["ticks"]["sentAt"]) < 5 for t in ticks)
        assert _recv(ws) == {"id": "s1", "type": "complete"}
        ws.send(_msg(type="ping"))
        assert _recv(ws) == {"type": "pong"}
    finally:
        ws.close()


def test_without_the_subprotocol_the_socket_is_refused(gql_url: str) -> None:
    ws = _connect(gql_url, subprotocols=[])
    try:
        assert _close_code(ws) == CLOSE_SUBPROTOCOL
    finally:
        ws.close()


def test_no_connection_init_in_time_closes_with_4408(gql_url: str) -> None:
    ws = _connect(gql_url)
    try:
        assert _close_code(ws) == CLOSE_INIT_TIMEOUT
    finally:
        ws.close()


def test_misbehaving_on_purpose() -> None:
    with example_server(
        "graphql", "--misbehave", "non_json,binary,unmatched", "--misbehave-every", "1"
    ) as url:
        ws = _connect(url)
        try:
            ws.send(_msg(type="connection_init"))
            _recv(ws)
            ws.send(_msg(type="subscribe", id="q", payload=QUOTE))
            assert ws.recv() == "<html>502 Bad Gateway</html>"
            assert isinstance(ws.recv(), bytes)
            assert _recv(ws)["id"] == "nobody-1"
            assert _recv(ws)["id"] == "q"
        finally:
            ws.close()
    with example_server("graphql", "--misbehave", "error", "--misbehave-every", "1") as url:
        ws = _connect(url)
        try:
            ws.send(_msg(type="connection_init"))
            _recv(ws)
            ws.send(_msg(type="subscribe", id="q", payload=QUOTE))
            assert _recv(ws) == {
                "id": "q",
                "type": "error",
                "payload": [{"message": "misbehaving on purpose"}],
            }
            ws.send(_msg(type="subscribe", id="q", payload=QUOTE))  # the id is free again
            assert _recv(ws)["type"] == "error"
        finally:
            ws.close()
    with example_server("graphql", "--misbehave", "close", "--misbehave-every", "1") as url:
        ws = _connect(url)
        try:
            ws.send(_msg(type="connection_init"))
            _recv(ws)
            ws.send(_msg(type="subscribe", id="q", payload=QUOTE))
            assert _close_code(ws) == 1011
        finally:
            ws.close()


def test_stats_count_operations_and_next_messages() -> None:
    import urllib.request

    with example_server("graphql", "--latency-scale", "0") as url:
        ws = _connect(url)
        try:
            ws.send(_msg(type="connection_init"))
            _recv(ws)
            ws.send(_msg(type="subscribe", id="q", payload=QUOTE))
            ws.send(_msg(type="subscribe", id="s", payload=TICKS))
            kinds = [_recv(ws)["type"] for _ in range(6)]  # q: next, complete; s: 3 next, complete
        finally:
            ws.close()
        http = url.replace("ws://", "http://").removesuffix("/graphql")
        with urllib.request.urlopen(f"{http}/stats", timeout=5) as response:
            stats = json.load(response)
    assert sorted(kinds) == ["complete", "complete", "next", "next", "next", "next"]
    assert stats == {"operations": {"quote": 1, "ticks": 1}, "next": 4}
