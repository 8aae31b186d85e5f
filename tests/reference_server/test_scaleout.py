"""Scale-out end to end: several server processes on one PostgreSQL database and one Redis.

Real servers (``python -m reference_server``), real sockets on 127.0.0.1, real PostgreSQL and
Redis (each test its own database and channel prefix; a test that kills Redis starts its own).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any

import pytest

from tests.conftest import REPO_ROOT, RunningServer

from .conftest import REDIS_URL
from .helpers import chat, drain, recv_json, recv_until, uid

pytestmark = pytest.mark.timeout(120)


def _deployment(
    factory: Any, pg_url: str, prefix: str, n: int = 2, redis_url: str = REDIS_URL
) -> list[RunningServer]:
    """``n`` single-process servers (different ports) forming one deployment."""
    first = factory(
        "--redis", redis_url, "--redis-prefix", prefix, "--confirm-interval", "0.05", db_path=pg_url
    )
    rest = [
        factory(
            "--redis",
            redis_url,
            "--redis-prefix",
            prefix,
            "--confirm-interval",
            "0.05",
            db_path=pg_url,
            secret=first.secret,
            admin_token=first.admin_token,
        )
        for _ in range(n - 1)
    ]
    return [first, *rest]


def _ids(frames: list[dict[str, Any]]) -> list[str]:
    return [f["data"]["id"] for f in frames if f.get("type") == "new_message"]


def test_chat_notifications_and_progress_cross_processes(reference_server_factory, pg_url, redis_prefix):
    a, b = _deployment(reference_server_factory, pg_url, redis_prefix)
    alice, bob = uid("alice"), uid("bob")
    alice_a, alice_b, bob_b = a.connect(alice), b.connect(alice), b.connect(bob)

    alice_a.send(chat(bob, "across", requestId="r1"))
    ack = recv_json(alice_a)
    pushed = recv_json(bob_b)
    assert ack["type"] == "ack" and pushed["type"] == "new_message"
    assert pushed["data"] == ack["data"] and pushed["data"]["content"] == "across"

    status, note = b.post_notification(alice, "hi", "there")
    assert status == 201
    for ws in (alice_a, alice_b):  # both tabs, on both processes
        frame = recv_until(ws, lambda f: f["type"] == "notification_update")
        assert frame["data"]["id"] == note["id"] and frame["data"]["read"] is False

    alice_b.send(json.dumps({"type": "notification_read", "id": note["id"], "requestId": "n1"}))
    for ws in (alice_a, alice_b):
        frame = recv_until(ws, lambda f: f["type"] == "notification_update")
        assert frame["data"]["read"] is True
    assert recv_until(alice_b, lambda f: f["type"] == "ack")["requestId"] == "n1"

    progress = {"subject": "Math", "topic": "Algebra", "completion": 75}
    alice_a.send(json.dumps({"type": "progress_update", "progress": progress}))
    synced = recv_until(alice_b, lambda f: f["type"] == "progress_sync")
    assert synced["data"]["completion"] == 75.0 and synced["data"]["userId"] == alice
    assert b.healthz()["redis"] is True


def test_offline_backlog_written_on_one_process_arrives_in_order_on_another(
    reference_server_factory, pg_url, redis_prefix
):
    a, b = _deployment(reference_server_factory, pg_url, redis_prefix)
    alice, bob, carol = uid(), uid(), uid()
    sa, sb = a.connect(alice), b.connect(bob)
    for i in range(30):  # two senders on two processes, interleaved, to one offline user
        (sa if i % 2 else sb).send(chat(carol, f"m{i}", requestId=i))
    acked = [
        recv_until(ws, lambda f: f["type"] == "ack", 10)["data"]["id"] for ws in (sa, sb) for _ in range(15)
    ]
    carol_ws = a.connect(carol)
    got = _ids(drain(carol_ws, 1.0))
    assert sorted(got) == sorted(acked) and len(got) == 30
    per_sender_a = [int(c[1:]) for c in _contents(got, a, carol) if int(c[1:]) % 2]
    assert per_sender_a == sorted(per_sender_a)  # one sender's messages in the order sent
    carol_ws.close()
    again = a.connect(carol)  # confirmed by pongs: nothing again
    assert _ids(drain(again, 0.5)) == []


def _contents(ids: list[str], server: RunningServer, user: str) -> list[str]:
    """The contents of ``ids`` as stored (the backlog's order is the inbox's ``seq`` order)."""
    import psycopg

    with psycopg.connect(server.db_path) as conn:
        rows = conn.execute(
            "SELECT id, content FROM messages WHERE receiver_id = %s ORDER BY seq", (user,)
        ).fetchall()
    order = {mid: json.loads(content) for mid, content in rows}  # stored JSON-encoded
    assert list(order) == ids, "backlog not in seq order"
    return [order[i] for i in ids]


def test_workers_share_one_port_restart_a_killed_one_and_stop_on_sigterm(
    reference_server_factory, pg_url, redis_prefix
):
    srv = reference_server_factory(
        "--workers", "2", "--redis", REDIS_URL, "--redis-prefix", redis_prefix, db_path=pg_url
    )
    pids = _worker_pids(srv, 2)
    victim = sorted(pids)[0]
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        now = _worker_pids(srv, 2, timeout=20)
        if victim not in now and len(now) == 2:
            break
    else:
        raise AssertionError("the killed worker was not replaced")
    assert "restarting" in srv.stderr()
    assert srv.terminate(timeout=30) == 0
    for pid in now:  # every worker is gone with the supervisor
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def _worker_pids(srv: RunningServer, n: int, timeout: float = 30) -> set[int]:
    """The pids answering ``/healthz`` on the port, until ``n`` distinct ones are seen."""
    seen: set[int] = set()
    deadline = time.monotonic() + timeout
    while len(seen) < n and time.monotonic() < deadline:
        try:
            seen.add(srv.healthz()["pid"])
        except OSError:
            time.sleep(0.05)
    assert len(seen) >= n, f"only {seen} answered"
    return seen


def test_sigkill_of_a_worker_mid_traffic_loses_no_acked_message(
    reference_server_factory, pg_url, redis_prefix
):
    srv = reference_server_factory(
        "--workers", "2", "--redis", REDIS_URL, "--redis-prefix", redis_prefix,
        "--confirm-interval", "0.05", "--rate-limit", "0", db_path=pg_url,
    )  # fmt: skip
    _worker_pids(srv, 2)
    receivers = [uid("rcv") for _ in range(6)]
    senders = [uid("snd") for _ in range(6)]
    acked: set[str] = set()
    lock = threading.Lock()
    stop = threading.Event()

    def send_loop(user: str) -> None:
        n = 0
        while not stop.is_set():
            try:
                ws = srv.connect(user)
            except Exception:
                time.sleep(0.05)
                continue
            try:
                while not stop.is_set() and n < 2000:
                    ws.send(chat(receivers[n % len(receivers)], f"{user}:{n}", requestId=n))
                    n += 1
                    frame = recv_json(ws, 5)
                    if frame["type"] == "ack":
                        with lock:
                            acked.add(frame["data"]["id"])
            except Exception:
                pass  # the worker died under us: reconnect (maybe to the other one)
            finally:
                ws.close()

    threads = [threading.Thread(target=send_loop, args=(s,), daemon=True) for s in senders]
    for t in threads:
        t.start()
    time.sleep(1.5)
    victim = sorted(_worker_pids(srv, 2))[0]
    os.kill(victim, signal.SIGKILL)
    time.sleep(1.5)
    stop.set()
    for t in threads:
        t.join(20)
    assert len(acked) > 50, "too little traffic to test anything"
    got: set[str] = set()
    for user in receivers:  # offline until now: everything acked is in their backlog
        ws = srv.connect(user, timeout=10)
        got |= set(_ids(drain(ws, 1.5)))
        ws.close()
    assert acked <= got, f"{len(acked - got)} acked messages lost"


def test_live_connection_catches_up_after_a_redis_outage(
    reference_server_factory, pg_url, redis_prefix, own_redis
):
    a, b = _deployment(reference_server_factory, pg_url, redis_prefix, redis_url=own_redis.url)
    alice, bob, carol = uid(), uid(), uid()
    sa, rb = a.connect(alice), b.connect(bob)
    sa.send(chat(bob, "before", requestId=0))
    assert recv_json(rb)["data"]["content"] == "before"
    recv_json(sa)

    own_redis.kill()
    to_bob, to_carol = [], []
    for i in range(1, 6):  # the store still acks: Redis only carries the push
        for user, acked in ((bob, to_bob), (carol, to_carol)):
            sa.send(chat(user, f"during-{i}", requestId=f"{user}{i}"))
            acked.append(recv_until(sa, lambda f: f["type"] == "ack", 10)["data"]["id"])
    late = b.connect(carol)  # a connection opened meanwhile gets its backlog from the store
    assert _ids(drain(late, 0.7)) == to_carol
    assert _ids(drain(rb, 0.3)) == []  # bob's live connection has heard nothing yet

    own_redis.start()  # same port: the servers reconnect and resync their live connections
    live = _ids(drain(rb, 3.0))
    assert live == to_bob, "the live connection did not catch up from the store, in order"
    sa.send(chat(bob, "after", requestId=99))
    assert recv_until(rb, lambda f: f["type"] == "new_message", 10)["data"]["content"] == "after"
    assert "wsgauge_bus_connected 1.0" in b.metrics()
    assert 'wsgauge_inbox_rereads_total{reason="resync"}' in b.metrics()


def _refused(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = dict(os.environ)
    full["PYTHONPATH"] = str(REPO_ROOT)
    full.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "reference_server", "--port", "0", "--secret=x", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=full,
        cwd=REPO_ROOT,
    )


def test_workers_with_a_sqlite_db_are_refused(tmp_path):
    done = _refused("--workers", "2", "--db", str(tmp_path / "x.db"), "--redis", REDIS_URL)
    assert done.returncode == 2
    assert "--workers 2 needs a database all processes share" in done.stderr
    assert "postgresql://" in done.stderr
    assert not (tmp_path / "x.db").exists()


def test_postgres_without_redis_is_refused_unless_said_to_be_alone(pg_url):
    done = _refused("--db", pg_url)
    assert done.returncode == 2 and "need --redis redis://HOST:PORT" in done.stderr
    done = _refused("--db", pg_url, "--workers", "2", "--redis", "none")
    assert done.returncode == 2 and "--workers 2 needs --redis" in done.stderr
    done = _refused("--db", pg_url, "--redis", "localhost:6379")
    assert done.returncode == 2 and "--redis must be a redis://HOST:PORT URL" in done.stderr


def test_unreachable_services_are_named(pg_url, tmp_path):
    from .conftest import free_port

    port = free_port()
    done = _refused("--db", f"postgresql://postgres@127.0.0.1:{port}/nope", "--redis", REDIS_URL)
    assert done.returncode == 1 and f"{port}" in done.stderr and "Traceback" not in done.stderr
    done = _refused("--db", pg_url, "--redis", f"redis://127.0.0.1:{port}")
    assert done.returncode == 1 and f"Redis at redis://127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr


def test_single_postgres_server_without_redis_serves_alone(reference_server_factory, pg_url):
    srv = reference_server_factory("--redis", "none", db_path=pg_url)
    alice, bob = uid(), uid()
    a, b = srv.connect(alice), srv.connect(bob)
    a.send(chat(bob, "solo", requestId="s"))
    assert recv_json(b)["data"]["content"] == "solo"
    assert recv_json(a)["type"] == "ack"
    assert srv.healthz()["redis"] is None


def test_locust_embedded_server_scaled_out(pg_url):
    """``locust -f loadtest --embedded-workers 2 --embedded-db … --embedded-redis …``'s server."""
    import nextauth_tokens as nextauth
    from loadtest._embedded import EmbeddedServer, EmbeddedServerError

    with pytest.raises(EmbeddedServerError, match="need a PostgreSQL db and a Redis"):
        EmbeddedServer(workers=2)
    server = EmbeddedServer(workers=2, db=pg_url, redis=REDIS_URL)
    handle = server.start()
    try:
        alice, bob = uid(), uid()

        def connect(user: str) -> Any:
            import websocket

            cookie = nextauth.cookie_header(nextauth.mint_v4(handle.secret, {"sub": user}, max_age=600))
            return websocket.create_connection(handle.ws_url, header=[f"Cookie: {cookie}"], timeout=5)

        a, b = connect(alice), connect(bob)
        a.send(chat(bob, "embedded", requestId=1))
        assert recv_json(b)["data"]["content"] == "embedded"
        assert recv_json(a)["type"] == "ack"
        assert handle.db == pg_url
    finally:
        assert server.stop() == 0


def test_locust_embedded_scale_out_options_are_checked_together():
    import argparse

    from loadtest._settings import SettingsError, _embedded_scale_out

    def check(**kw: Any) -> dict[str, Any]:
        return _embedded_scale_out(argparse.Namespace(**kw))

    assert check() == {"embedded_workers": 1, "embedded_db": None, "embedded_redis": None}
    with pytest.raises(SettingsError, match="--embedded-workers 2 needs --embedded-db postgresql://"):
        check(embedded_workers=2)
    with pytest.raises(SettingsError, match="--embedded-workers 2 needs"):
        check(embedded_workers=2, embedded_db="x.db", embedded_redis=REDIS_URL)
    with pytest.raises(SettingsError, match="--embedded-db needs --embedded-redis"):
        check(embedded_db="postgresql://u@h/d")
    ok = check(embedded_workers=3, embedded_db="postgresql://u@h/d", embedded_redis=REDIS_URL)
    assert ok == {"embedded_workers": 3, "embedded_db": "postgresql://u@h/d", "embedded_redis": REDIS_URL}
