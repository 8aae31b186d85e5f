"""The server process under stress: rate limits, slow consumers, SIGTERM, SIGKILL, test delay."""

from __future__ import annotations

import json
import socket
import sqlite3
import subprocess
import sys
import threading
import time

import pytest
import websocket

import nextauth_tokens as nextauth
from tests.conftest import REPO_ROOT

from .helpers import chat, drain, expect_close, recv_json, uid

pytestmark = pytest.mark.timeout(90)


def test_help_documents_every_option():
    out = subprocess.run(
        [sys.executable, "-m", "reference_server", "--help"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for option in (
        "--host", "--port", "--db", "--secret", "--admin-token", "--max-message-size",
        "--max-content-length", "--max-batch", "--rate-limit", "--rate-burst", "--outbound-limit",
        "--heartbeat", "--sync", "--test-delay-ms", "TEST ONLY", "NEXTAUTH_SECRET", "AUTH_SECRET",
    ):  # fmt: skip
        assert option in out, option


def test_without_a_secret_it_starts_with_a_random_one_and_says_so():
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "reference_server", "--port", "0", "--db", ":memory:"],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None and proc.stderr is not None
        line = proc.stdout.readline()
        assert line.startswith("wsgauge reference server listening on ws://127.0.0.1:")
        warning = proc.stderr.readline()
        secret = warning.rsplit(": ", 1)[1].strip()
        assert "no NextAuth secret" in warning and len(secret) >= 32
        url = line.rsplit(" ", 1)[1].strip()
        cookie = nextauth.cookie_header(nextauth.mint_v4(secret, {"sub": "dev"}))
        ws = websocket.create_connection(url, header=[f"Cookie: {cookie}"], timeout=5)
        ws.send(json.dumps({"type": "ping", "ts": 1}))
        assert recv_json(ws) == {"type": "pong", "ts": 1}
        ws.close()
    finally:
        proc.terminate()
        assert proc.wait(15) == 0


def test_rate_limit_answers_rate_limited_and_the_connection_survives(reference_server_factory):
    server = reference_server_factory("--rate-limit", "5", "--rate-burst", "5")
    alice, bob = uid(), uid()
    a = server.connect(alice)
    for i in range(20):
        a.send(chat(bob, f"r{i}", requestId=i))
    replies = [recv_json(a) for _ in range(20)]
    kinds = [r["type"] if r["type"] == "ack" else r["code"] for r in replies]
    assert kinds.count("ack") >= 5 and kinds.count("rate_limited") >= 10
    assert [r["requestId"] for r in replies] == list(range(20))  # in order
    time.sleep(0.5)  # refill
    a.send(json.dumps({"type": "ping", "ts": 1}))
    assert recv_json(a) == {"type": "pong", "ts": 1}
    assert server.healthz()["status"] == "ok"


def test_slow_consumer_is_closed_with_4002_and_gets_its_messages_after_reconnect(
    reference_server_factory,
):
    server = reference_server_factory("--outbound-limit", "65536", "--rate-limit", "0")
    alice, slow = uid(), uid("slow")
    # A tiny receive buffer so that the server's buffer fills quickly.
    s = server.connect(slow, sockopt=((socket.SOL_SOCKET, socket.SO_RCVBUF, 4096),))
    a = server.connect(alice)
    content = "z" * 2000
    sent = 0
    closed_at = None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for _ in range(100):
            a.send(chat(slow, content, requestId=sent))
            sent += 1
        for _ in range(100):
            assert recv_json(a)["type"] == "ack"
        if 'wsgauge_errors_total{code="slow_consumer"}' in server.metrics():
            closed_at = sent
            break
    assert closed_at is not None, "slow consumer never detected"
    # Server memory is bounded: it still answers, and the slow socket is closed with 4002.
    assert server.healthz()["status"] == "ok"
    before: list[dict] = []
    code, reason = expect_close(s, timeout=10, frames=before)
    assert code == 4002 and "not reading" in reason
    assert 0 < len(before) <= sent  # it got what was buffered, then the close
    # What it did not confirm (pong) is delivered after reconnecting: nothing is lost.
    s2 = server.connect(slow)
    got: list[str] = []
    while True:
        frames = drain(s2, 0.5)
        if not frames:
            break
        got.extend(f["data"]["id"] for f in frames)
    assert len(got) == len(set(got)) and got == sorted(got, key=lambda i: int(i[1:]))
    assert {f["data"]["id"] for f in before} | set(got) == {f"m{i}" for i in range(1, sent + 1)}


def test_sigterm_closes_sockets_with_1001_flushes_and_exits_0(reference_server_factory):
    server = reference_server_factory()
    alice, bob = uid(), uid()
    a = server.connect(alice)
    for i in range(50):
        a.send(chat(bob, f"t{i}", requestId=i))
    acks = [recv_json(a) for _ in range(50)]
    assert all(f["type"] == "ack" for f in acks)
    server.proc.send_signal(15)
    code, reason = expect_close(a, timeout=10)
    assert code == 1001 and reason == "server shutdown"
    assert server.proc.wait(15) == 0
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.port), timeout=1).close()
    db = sqlite3.connect(server.db_path)
    assert db.execute("SELECT count(*) FROM messages WHERE receiver_id = ?", (bob,)).fetchone()[0] == 50


def test_sigkill_under_load_loses_nothing_acked(reference_server_factory):
    """Kill -9 mid-load, restart on the same file: every ack is stored, every read persists,
    and undelivered messages arrive after reconnect."""
    server = reference_server_factory("--rate-limit", "0")
    receivers = [uid("rx") for _ in range(3)]
    note_user = uid("reader")
    notes = [server.post_notification(note_user, f"n{i}")[1]["id"] for i in range(20)]
    acked: dict[str, list[str]] = {r: [] for r in receivers}  # receiver -> acked ids, in order
    read_acked: list[str] = []
    stop = threading.Event()
    lock = threading.Lock()

    def sender(n: int) -> None:
        ws = server.connect(uid(f"tx{n}"))
        try:
            i = 0
            while not stop.is_set():
                rx = receivers[i % len(receivers)]
                ws.send(chat(rx, f"{n}-{i}", requestId=i))
                frame = recv_json(ws)
                assert frame["type"] == "ack"
                with lock:
                    acked[rx].append(frame["data"]["id"])
                i += 1
        except (websocket.WebSocketException, OSError):
            pass  # the server died

    def reader() -> None:
        ws = server.connect(note_user)
        drain(ws, 0.2)
        try:
            for nid in notes:
                ws.send(json.dumps({"type": "notification_read", "id": nid, "requestId": nid}))
                while True:
                    frame = recv_json(ws)
                    if frame["type"] == "ack":
                        read_acked.append(frame["requestId"])
                        break
                if stop.is_set():
                    return
        except (websocket.WebSocketException, OSError):
            pass

    threads = [threading.Thread(target=sender, args=(n,)) for n in range(4)]
    threads.append(threading.Thread(target=reader))
    for t in threads:
        t.start()
    time.sleep(1.0)
    server.kill()
    stop.set()
    for t in threads:
        t.join(10)
    assert sum(len(v) for v in acked.values()) > 50 and read_acked

    again = reference_server_factory("--rate-limit", "0", db_path=server.db_path)
    for rx in receivers:
        ws = again.connect(rx)
        got: list[str] = []
        while True:
            frames = drain(ws, 0.5)
            if not frames:
                break
            got.extend(f["data"]["id"] for f in frames)
        assert set(acked[rx]) <= set(got), f"lost {len(set(acked[rx]) - set(got))} acked messages"
        assert got == sorted(got, key=lambda i: int(i[1:]))
    db = sqlite3.connect(again.db_path)
    for nid in read_acked:
        assert db.execute("SELECT read FROM notifications WHERE id = ?", (nid,)).fetchone() == (1,)


def test_test_delay_ms_delays_each_connection_without_blocking_others(reference_server_factory):
    server = reference_server_factory("--test-delay-ms", "300")
    socks = [server.connect(uid()) for _ in range(3)]
    started = time.monotonic()
    for ws in socks:
        for i in range(3):
            ws.send(json.dumps({"type": "ping", "ts": i}))
    for ws in socks:
        assert [recv_json(ws)["ts"] for _ in range(3)] == [0, 1, 2]  # in order
    elapsed = time.monotonic() - started
    # Delayed, but pipelined: one delay in all, not 3 per connection (0.9 s) or 9 in all (2.7 s).
    assert 0.3 <= elapsed < 0.8
    alice, bob = uid(), uid()
    a, b = server.connect(alice), server.connect(bob)
    t0 = time.monotonic()
    a.send(chat(bob, "late", requestId="d"))
    assert recv_json(b)["data"]["content"] == "late"
    assert time.monotonic() - t0 >= 0.3
    assert recv_json(a)["type"] == "ack"
