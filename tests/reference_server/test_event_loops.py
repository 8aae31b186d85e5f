"""The server on uvloop (``--loop uvloop``): the same guarantees as on the standard loop."""

from __future__ import annotations

import subprocess
import sys

import pytest

from .helpers import chat, drain, expect_close, expect_silence, recv_json, uid

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def uvloop_server(module_reference_server_factory):
    return module_reference_server_factory("--loop", "uvloop", "--confirm-interval", "0.05")


def test_the_server_runs_on_the_loop_it_was_told(uvloop_server, module_reference_server_factory):
    assert uvloop_server.healthz()["event_loop"] == "uvloop"
    assert module_reference_server_factory().healthz()["event_loop"] == "asyncio"


def test_acks_pushes_and_replies_keep_their_order_on_uvloop(uvloop_server):
    alice, bob = uid(), uid()
    a, b = uvloop_server.connect(alice), uvloop_server.connect(bob)
    a.send(chat(bob, "one", requestId=1))
    a.send("{")
    a.send('{"type":"ping","ts":2,"requestId":3}')
    replies = [recv_json(a) for _ in range(3)]
    assert [r["type"] for r in replies] == ["ack", "error", "pong"]
    assert recv_json(b) == {"type": "new_message", "data": replies[0]["data"]}


def test_backlog_is_delivered_and_confirmed_on_uvloop(uvloop_server):
    alice, carol = uid(), uid()
    a = uvloop_server.connect(alice)
    for i in range(20):
        a.send(chat(carol, f"m{i}", requestId=i))
    assert [recv_json(a)["requestId"] for _ in range(20)] == list(range(20))
    c = uvloop_server.connect(carol)
    assert [f["data"]["content"] for f in drain(c, 0.5)] == [f"m{i}" for i in range(20)]
    c.close()
    expect_silence(uvloop_server.connect(carol), 0.3)  # confirmed by the pong: not again


def test_sigterm_on_uvloop_closes_with_1001_and_exits_0(reference_server_factory):
    server = reference_server_factory("--loop", "uvloop", "--compress")
    ws = server.connect(uid())
    server.proc.send_signal(15)
    assert expect_close(ws)[0] == 1001
    assert server.proc.wait(15) == 0


def test_an_unknown_event_loop_is_refused_with_exit_2():
    cmd = [sys.executable, "-m", "reference_server", "--loop", "trio"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and "--loop" in proc.stderr
