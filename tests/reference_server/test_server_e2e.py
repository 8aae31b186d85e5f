"""End to end: the real server subprocess, driven with websocket-client over 127.0.0.1."""

from __future__ import annotations

import json
import re
import socket
import time

import pytest
import websocket

import nextauth_tokens as nextauth
from tests.conftest import RunningServer

from .helpers import chat, drain, expect_close, expect_silence, recv_json, uid

pytestmark = pytest.mark.timeout(60)

SEED_MESSAGE_KEYS = {"id", "senderId", "receiverId", "content", "timestamp", "createdAt"}
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest.fixture(scope="module")
def server(module_reference_server_factory) -> RunningServer:
    return module_reference_server_factory("--max-message-size", "65536", "--confirm-interval", "0.05")


# -- chat ---------------------------------------------------------------------------------------


def test_chat_message_is_routed_exactly_as_the_seed_says(server):
    alice, bob = uid("alice"), uid("bob")
    a, b = server.connect(alice), server.connect(bob)
    a.send(chat(bob, "Hello!"))
    frame = recv_json(b)
    assert set(frame) == {"type", "data"}
    assert frame["type"] == "new_message"
    data = frame["data"]
    assert set(data) == SEED_MESSAGE_KEYS
    assert data["senderId"] == alice and data["receiverId"] == bob
    assert data["content"] == "Hello!"
    assert data["timestamp"] == "2026-11-25T12:00:00.000Z"  # the client's, echoed unchanged
    assert ISO.match(data["createdAt"])
    expect_silence(a)  # no requestId: the sender gets nothing, exactly like the seed


def test_ack_carries_the_stored_message_and_matches_the_push(server):
    alice, bob = uid(), uid()
    a, b = server.connect(alice), server.connect(bob)
    a.send(chat(bob, "with ack", requestId="r-1"))
    ack = recv_json(a)
    pushed = recv_json(b)
    assert ack == {"type": "ack", "requestId": "r-1", "data": pushed["data"]}
    a.send(chat(bob, "int id", requestId=42))
    assert recv_json(a)["requestId"] == 42


def test_numeric_timestamp_is_echoed_and_missing_timestamp_defaults_to_created_at(server):
    alice, bob = uid(), uid()
    a, b = server.connect(alice), server.connect(bob)
    a.send(
        json.dumps(
            {
                "type": "chat_message",
                "receiverId": bob,
                "message": {"content": "x", "timestamp": 1764072000123.5},
            }
        )
    )
    assert recv_json(b)["data"]["timestamp"] == 1764072000123.5
    a.send(json.dumps({"type": "chat_message", "receiverId": bob, "message": {"content": "y"}}))
    data = recv_json(b)["data"]
    assert data["timestamp"] == data["createdAt"]


def test_sender_is_always_the_authenticated_user(server):
    alice, bob = uid(), uid()
    a, b = server.connect(alice), server.connect(bob)
    a.send(chat(bob, "spoof", senderId="mallory", userId="mallory"))
    assert recv_json(b)["data"]["senderId"] == alice


def test_every_connection_of_the_receiver_gets_the_message(server):
    alice, bob = uid(), uid()
    a = server.connect(alice)
    tabs = [server.connect(bob) for _ in range(3)]
    a.send(chat(bob, "to all tabs"))
    ids = {recv_json(t)["data"]["id"] for t in tabs}
    assert len(ids) == 1


def test_self_message_reaches_own_connections(server):
    alice = uid()
    a1, a2 = server.connect(alice), server.connect(alice)
    a1.send(chat(alice, "note to self"))
    assert recv_json(a1)["type"] == "new_message"
    assert recv_json(a2)["type"] == "new_message"


def test_offline_receiver_gets_everything_in_order_on_first_connect(server):
    alice, carol = uid(), uid("never-connected")
    a = server.connect(alice)
    for i in range(20):
        a.send(chat(carol, f"m{i}", requestId=i))
    acks = [recv_json(a) for _ in range(20)]
    assert [f["requestId"] for f in acks] == list(range(20))
    c = server.connect(carol)
    got = [recv_json(c)["data"]["content"] for _ in range(20)]
    assert got == [f"m{i}" for i in range(20)]
    drain(c, 0.3)  # answer the confirmation ping
    c.close()
    c2 = server.connect(carol)
    expect_silence(c2, 0.3)  # delivered and confirmed: not again


def test_unconfirmed_delivery_is_repeated_with_the_same_ids(server):
    alice, dave = uid(), uid()
    a = server.connect(alice)
    a.send(chat(dave, "once", requestId="x"))
    recv_json(a)
    d = server.connect(dave)
    first = recv_json(d)["data"]["id"]
    d.sock.shutdown(socket.SHUT_RDWR)  # vanish before the confirmation ping is answered
    d.sock.close()
    time.sleep(0.1)
    d2 = server.connect(dave)
    assert recv_json(d2)["data"]["id"] == first  # at-least-once, stable id


def test_live_messages_after_backlog_keep_order(server):
    alice, erin = uid(), uid()
    a = server.connect(alice)
    for i in range(50):
        a.send(chat(erin, f"b{i}"))
    e = server.connect(erin)
    for i in range(50, 80):
        a.send(chat(erin, f"b{i}"))
    got = [recv_json(e)["data"]["content"] for _ in range(80)]
    assert got == [f"b{i}" for i in range(80)]
    expect_silence(e, 0.2)


# -- notifications ------------------------------------------------------------------------------


def test_notification_post_pushes_and_read_syncs_all_tabs(server):
    user = uid()
    t1, t2 = server.connect(user), server.connect(user)
    status, body = server.post_notification(user, "Welcome", "Hi there", type="info", link="/x")
    assert status == 201
    assert body["userId"] == user and body["read"] is False and body["title"] == "Welcome"
    assert body["type"] == "info" and body["link"] == "/x" and ISO.match(body["createdAt"])
    for t in (t1, t2):
        frame = recv_json(t)
        assert frame == {"type": "notification_update", "data": body}
    t1.send(json.dumps({"type": "notification_read", "id": body["id"], "requestId": "n1"}))
    update1 = recv_json(t1)
    assert update1["type"] == "notification_update" and update1["data"]["read"] is True
    ack = recv_json(t1)
    assert ack == {"type": "ack", "requestId": "n1", "data": update1["data"]}
    assert recv_json(t2) == update1  # the other tab stays in sync
    t2.send(json.dumps({"type": "notification_read", "id": body["id"]}))  # idempotent
    assert recv_json(t2)["data"]["read"] is True


def test_notification_created_while_offline_is_delivered_on_connect(server):
    user = uid()
    _, body = server.post_notification(user, "While away", "...")
    ws = server.connect(user)
    assert recv_json(ws) == {"type": "notification_update", "data": body}


def test_foreign_notification_is_not_found(server):
    owner, other = uid(), uid()
    _, body = server.post_notification(owner)
    ws = server.connect(other)
    ws.send(json.dumps({"type": "notification_read", "id": body["id"], "requestId": 9}))
    err = recv_json(ws)
    assert err["type"] == "error" and err["code"] == "not_found" and err["requestId"] == 9
    o = server.connect(owner)
    assert recv_json(o)["data"]["read"] is False  # untouched


def test_post_notification_rejects_bad_requests(server):
    ok = {"Authorization": f"Bearer {server.admin_token}"}
    assert server.http("POST", "/api/notifications", {"userId": "u", "title": "t", "body": "b"})[0] == 401
    bad_token = {"Authorization": "Bearer nope"}
    status, body = server.http("POST", "/api/notifications", {"userId": "u"}, headers=bad_token)
    assert status == 401 and body["error"] == "unauthorized"
    for payload in (
        {"title": "t", "body": "b"},
        {"userId": "", "title": "t", "body": "b"},
        {"userId": 5, "title": "t", "body": "b"},
        {"userId": "u", "body": "b"},
        {"userId": "u", "title": "t", "body": 3},
        {"userId": "u", "title": "t", "body": "b", "data": "not-an-object"},
        [1, 2],
    ):
        status, body = server.http("POST", "/api/notifications", payload, headers=ok)
        assert status == 400 and body["error"] == "bad_request", payload
    status, body = server.http("POST", "/api/notifications", raw=b"{nope", headers=ok)
    assert status == 400


# -- progress -----------------------------------------------------------------------------------


def test_progress_update_syncs_all_of_the_users_connections(server):
    user = uid()
    t1, t2 = server.connect(user), server.connect(user)
    t1.send(
        json.dumps(
            {"type": "progress_update", "progress": {"subject": "Math", "topic": "Algebra", "completion": 75}}
        )
    )
    for t in (t1, t2):
        frame = recv_json(t)
        assert frame["type"] == "progress_sync"
        assert set(frame["data"]) == {"userId", "subject", "topic", "completion", "updatedAt"}
        assert frame["data"]["userId"] == user and frame["data"]["completion"] == 75
    expect_silence(t1, 0.2)  # no requestId: exactly one frame


@pytest.mark.parametrize("completion", [101, -1, "75", True, None])
def test_progress_completion_must_be_a_number_from_0_to_100(server, completion):
    ws = server.connect(uid())
    ws.send(
        json.dumps(
            {
                "type": "progress_update",
                "requestId": "p",
                "progress": {"subject": "S", "topic": "T", "completion": completion},
            }
        )
    )
    err = recv_json(ws)
    assert err["type"] == "error" and err["code"] == "invalid_field" and err["requestId"] == "p"


# -- batch and ping -----------------------------------------------------------------------------


def test_batch_handles_each_message_in_order_as_if_sent_alone(server):
    alice, bob = uid(), uid()
    a, b = server.connect(alice), server.connect(bob)
    a.send(
        json.dumps(
            {
                "type": "batch",
                "requestId": "B",
                "messages": [
                    json.loads(chat(bob, "one", requestId="1")),
                    {"type": "bogus", "requestId": "2"},
                    {"type": "ping", "ts": 7},
                    json.loads(chat(bob, "two")),
                    {"type": "batch", "messages": []},
                ],
            }
        )
    )
    replies = [recv_json(a) for _ in range(5)]
    assert [r["type"] for r in replies] == ["ack", "error", "pong", "error", "ack"]
    assert replies[0]["requestId"] == "1"
    assert replies[1] == {
        "type": "error",
        "requestId": "2",
        "code": "unknown_type",
        "message": "unknown message type 'bogus'",
    }
    assert replies[2] == {"type": "pong", "ts": 7}
    assert replies[3]["code"] == "invalid_batch"
    assert replies[4] == {"type": "ack", "requestId": "B", "data": {"count": 5}}
    assert [recv_json(b)["data"]["content"] for _ in range(2)] == ["one", "two"]


def test_batch_over_the_limit_is_refused_whole(server):
    alice, bob = uid(), uid()
    a, b = server.connect(alice), server.connect(bob)
    a.send(json.dumps({"type": "batch", "requestId": "big", "messages": [json.loads(chat(bob))] * 101}))
    err = recv_json(a)
    assert err["code"] == "batch_too_large" and err["requestId"] == "big"
    expect_silence(b, 0.2)


def test_ping_is_answered_with_pong(server):
    ws = server.connect(uid())
    ws.send(json.dumps({"type": "ping", "ts": 1732550000000}))
    assert recv_json(ws) == {"type": "pong", "ts": 1732550000000}
    ws.send(json.dumps({"type": "ping", "ts": 5, "requestId": "p"}))
    assert recv_json(ws) == {"type": "pong", "ts": 5, "requestId": "p"}


# -- bad input ----------------------------------------------------------------------------------

LONG = "x" * 300


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("{not json", "invalid_json"),
        ("[1,2]", "invalid_message"),
        ('{"no":"type"}', "invalid_message"),
        ('{"type":7}', "invalid_message"),
        ('{"type":"teleport","requestId":"q"}', "unknown_type"),
        ('{"type":"chat_message","receiverId":"b","requestId":"q"}', "invalid_field"),
        (
            '{"type":"chat_message","receiverId":"b","message":{"content":5},"requestId":"q"}',
            "invalid_field",
        ),
        (
            '{"type":"chat_message","receiverId":"b","message":{"content":""},"requestId":"q"}',
            "invalid_field",
        ),
        (
            '{"type":"chat_message","receiverId":5,"message":{"content":"x"},"requestId":"q"}',
            "invalid_receiver",
        ),
        (
            '{"type":"chat_message","receiverId":"","message":{"content":"x"},"requestId":"q"}',
            "invalid_receiver",
        ),
        (
            f'{{"type":"chat_message","receiverId":"{LONG}","message":{{"content":"x"}},"requestId":"q"}}',
            "invalid_receiver",
        ),
        (
            '{"type":"chat_message","receiverId":"b","message":{"content":"'
            + "y" * 10_001
            + '"},"requestId":"q"}',
            "content_too_long",
        ),
        ('{"type":"notification_read","requestId":"q"}', "invalid_field"),
        ('{"type":"notification_read","id":42,"requestId":"q"}', "invalid_field"),
        ('{"type":"progress_update","progress":"all","requestId":"q"}', "invalid_field"),
        ('{"type":"batch","messages":{},"requestId":"q"}', "invalid_batch"),
        ('{"type":"ping","requestId":{"a":1}}', "invalid_field"),
    ],
)
def test_bad_frames_get_a_stable_error_code_and_the_connection_stays_up(server, frame, code):
    ws = server.connect(uid())
    ws.send(frame)
    err = recv_json(ws)
    assert err["type"] == "error" and err["code"] == code
    assert isinstance(err["message"], str) and err["message"]
    if '"requestId":"q"' in frame:
        assert err["requestId"] == "q"
    else:
        assert "requestId" not in err
    ws.send('{"type":"ping","ts":1}')
    assert recv_json(ws) == {"type": "pong", "ts": 1}


def test_binary_frame_closes_with_1003(server):
    ws = server.connect(uid())
    ws.send_binary(b"\x00\x01")
    assert expect_close(ws)[0] == 1003


def test_frame_over_the_size_limit_closes_with_1009(server):
    ws = server.connect(uid())
    ws.send(json.dumps({"type": "ping", "ts": "z" * 70_000}))
    assert expect_close(ws)[0] == 1009


def test_invalid_utf8_text_closes_with_1007(server):
    ws = server.connect(uid())
    ws.send(b'{"type":"ping","ts":"\xff"}', opcode=websocket.ABNF.OPCODE_TEXT)
    assert expect_close(ws)[0] == 1007


# -- auth ---------------------------------------------------------------------------------------


def _open(server: RunningServer, headers: list[str]) -> websocket.WebSocket:
    return websocket.create_connection(server.ws_url, header=headers, timeout=5)


def _refused(server: RunningServer, headers: list[str]) -> None:
    with pytest.raises(websocket.WebSocketBadStatusException) as info:
        _open(server, headers)
    assert info.value.status_code == 401


def _whoami(ws: websocket.WebSocket, server: RunningServer) -> str:
    probe = uid("probe")
    ws.send(chat(probe, "who", requestId="w"))
    return recv_json(ws)["data"]["senderId"]


@pytest.mark.parametrize(
    ("version", "cookie_name"),
    [
        (4, nextauth.V4_COOKIE),
        (4, nextauth.V4_SECURE_COOKIE),
        (5, nextauth.V5_COOKIE),
        (5, nextauth.V5_SECURE_COOKIE),
    ],
)
def test_all_four_session_cookie_names_authenticate(server, version, cookie_name):
    user = uid()
    if version == 4:
        token = nextauth.mint_v4(server.secret, {"sub": user})
    else:
        token = nextauth.mint_v5(server.secret, {"sub": user}, cookie_name=cookie_name)
    ws = _open(server, [f"Cookie: theme=dark; {nextauth.cookie_header(token, cookie_name)}"])
    assert _whoami(ws, server) == user


def test_chunked_cookie_authenticates(server):
    user = uid()
    token = nextauth.mint_v5(server.secret, {"sub": user, "blob": "x" * 6000})
    header = nextauth.cookie_header(token, nextauth.V5_COOKIE)
    assert ".0=" in header and ".1=" in header
    assert _whoami(_open(server, [f"Cookie: {header}"]), server) == user


def test_bearer_token_authenticates(server):
    user = uid()
    token = nextauth.mint_v5(server.secret, {"sub": user})
    assert _whoami(_open(server, [f"Authorization: Bearer {token}"]), server) == user


def test_refused_upgrades_get_401_and_no_websocket(server):
    user = uid()
    good_v5 = nextauth.mint_v5(server.secret, {"sub": user})
    tampered = good_v5[:-6] + ("AAAAAA" if not good_v5.endswith("AAAAAA") else "BBBBBB")
    cases = {
        "missing": [],
        "expired": [f"Cookie: {server.cookie(user, max_age=-3600)}"],
        "tampered": [f"Cookie: {nextauth.cookie_header(tampered, nextauth.V5_COOKIE)}"],
        "wrong secret": [f"Cookie: {nextauth.cookie_header(nextauth.mint_v4('other', {'sub': user}))}"],
        "wrong salt": [  # a token for the __Secure- cookie sent under the plain name
            "Cookie: "
            + nextauth.cookie_header(
                nextauth.mint_v5(server.secret, {"sub": user}, cookie_name=nextauth.V5_SECURE_COOKIE),
                nextauth.V5_COOKIE,
            )
        ],
        "v4 token in a v5 cookie": [
            "Cookie: "
            + nextauth.cookie_header(nextauth.mint_v4(server.secret, {"sub": user}), nextauth.V5_COOKIE)
        ],
        "garbage bearer": ["Authorization: Bearer not-a-jwe"],
    }
    for name, headers in cases.items():
        try:
            _refused(server, headers)
        except AssertionError as exc:  # pragma: no cover - names the failing case
            raise AssertionError(name) from exc
    status, body = server.http("GET", "/ws", headers={"Connection": "Upgrade"})
    assert status == 401 and body["error"] == "unauthorized"
    assert 'wsgauge_auth_failures_total{reason="expired"}' in server.metrics()


def test_connection_closes_with_4001_when_the_session_expires(server):
    user = uid()
    # exp is 13 s ago: accepted within the 15 s clock tolerance, expires ~2 s from now.
    ws = _open(server, [f"Cookie: {server.cookie(user, max_age=-13)}"])
    started = time.monotonic()
    code, reason = expect_close(ws, timeout=6)
    assert code == 4001 and "expired" in reason
    assert 0.5 < time.monotonic() - started < 5


# -- health and metrics -------------------------------------------------------------------------


def test_healthz_and_metrics(server):
    ws = server.connect(uid())
    health = server.healthz()
    assert health["status"] == "ok" and health["connections"] >= 1
    assert health["uptime_s"] > 0 and isinstance(health["version"], str)
    ws.send('{"type":"ping","ts":1}')
    recv_json(ws)
    text = server.metrics()
    for name in (
        "wsgauge_connections_open",
        'wsgauge_frames_in_total{type="ping"}',
        'wsgauge_frames_out_total{type="pong"}',
        "wsgauge_errors_total",
        "wsgauge_handling_seconds_bucket",
        "wsgauge_outbound_buffer_bytes",
        "wsgauge_event_loop_lag_seconds",
        "wsgauge_db_commit_seconds_bucket",
    ):
        assert name in text, name
