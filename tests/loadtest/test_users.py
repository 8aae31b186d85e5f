"""Users end to end: reconnect, offline cache, strategies, personas and the open model, on real sockets.

Each scenario runs in a child process (``_user_scenarios.py``) because importing Locust monkeypatches the
process; the reference server is a real subprocess too.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import REPO_ROOT, RunningServer

pytestmark = pytest.mark.timeout(90)


def run_scenario(name: str, server: RunningServer, **extra: Any) -> dict[str, Any]:
    config = {
        "ws_url": server.ws_url,
        "http_url": server.http_url,
        "secret": server.secret,
        "admin_token": server.admin_token,
        "tag": name,
        **extra,
    }
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, "-m", "tests.loadtest._user_scenarios", name, json.dumps(config)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def server(module_reference_server_factory: Callable[..., RunningServer]) -> RunningServer:
    return module_reference_server_factory()


def test_offline_cache_delivers_everything_in_order_after_a_reconnect(server: RunningServer) -> None:
    r = run_scenario("offline_cache", server)
    assert r["state_while_away"] == "reconnecting"
    assert r["queued"] == 20
    assert r["received"] == [f"m{i}" for i in range(20)]
    assert r["queue_after"] == 0 and r["state_after"] == "connected"
    assert r["counters"]["sent.chat_message"] == 20
    kinds = [kind for user, kind, _ in r["events"] if user.endswith("-0")]
    assert kinds[:4] == ["connected", "disconnected", "reconnecting", "connected"]
    assert kinds[-1] == "disconnected"


def test_unreachable_target_backs_off_then_gives_up(server: RunningServer) -> None:
    r = run_scenario("gave_up", server)
    assert r["state"] == "disconnected"
    kinds = [kind for _, kind, _ in r["events"]]
    # The first failure moves the user from disconnected to reconnecting (TRANSITIONS); then 3 retries.
    assert kinds == ["connect_failed"] * 4 + ["gave_up"]
    assert r["counters"]["errors.connect.refused"] == 4
    assert r["elapsed"] < 1.0  # 10 + 20 + 40 ms ceilings, jittered
    assert r["queue"] == 1  # a message written after giving up is still kept (offline cache)


def test_debounce_and_batching(server: RunningServer) -> None:
    r = run_scenario("strategies", server)
    assert r["queued_progress"] == 1  # four updates of one topic: the latest waits
    assert r["syncs"] == [40]  # ... and is the one sent
    assert r["received"] == [f"b{i}" for i in range(12)]  # batched, nothing lost, in order
    c = r["counters"]
    assert c["sent.progress_update"] == 1
    assert c["sent.chat_message"] == 12
    # 5 + 5 by size, the last 2 by age; the progress update leaves the debouncer later, in an envelope of its
    # own (the seed's batcher wraps even one message: the switch measures the seed's strategy as it is)
    assert c["sent.batch"] == 4
    assert r["latency"]["ack:batch"] == 4


def test_personas_measure_every_message_type(server: RunningServer) -> None:
    r = run_scenario("personas", server)
    assert r["reads"] == 3
    assert r["failures"] == []
    latency = r["latency"]
    for metric in (
        "connect",
        "http:notification_create",
        "push:notification",
        "ack:notification_read",
        "ack:chat_message",
        "ack:progress_update",
        "sync:progress",
        "pong",
    ):
        assert latency.get(metric), metric
    c = r["counters"]
    assert c["missed.new_message"] == 1  # sent while the churning user was away
    assert (
        c["sent.notification_create"] == 3 and c["recv.notification_update"] >= 6
    )  # 3 new + 3 read (+ redelivery)
    churn_events = [kind for user, kind, detail in r["events"] if user.endswith("-1")]
    assert churn_events[:3] == ["connected", "disconnected", "connected"]


def test_open_model_measures_from_the_schedule_through_stalls(
    reference_server_factory: Callable[..., RunningServer],
) -> None:
    server = reference_server_factory()
    try:
        r = run_scenario("open_model", server, rate=50.0, stall=0.4, server_pid=server.proc.pid)
    finally:
        os.kill(server.proc.pid, signal.SIGCONT)  # never leave the server frozen
    acks = r["acks_ms"]  # both users send on the schedule
    assert len(acks) >= 0.9 * r["scheduled"]
    # Server stall: every message scheduled during the 0.4 s freeze waited for it. A closed-model user
    # would have recorded one slow request; from the schedule about 0.4 s * 50/s = 20 are slow.
    slow = [a for a in acks if a > 150.0]
    assert len(slow) >= 12, sorted(acks)[-25:]
    assert max(acks) > 300.0
    # Generator stall: the sends due during the 0.4 s block went out late; the lag records it.
    assert r["max_us"]["send_lag"] > 300_000
    assert r["scheduled"] - 2 <= r["latency"]["send_lag"] <= r["scheduled"]  # one per send (not the last)


def test_compression_switch_offers_deflate_and_the_users_chat_through_it(
    module_reference_server_factory: Callable[..., RunningServer],
) -> None:
    compressing = module_reference_server_factory("--compress")
    r = run_scenario("compression", compressing)
    assert r["compressed"] == [True, True]
    assert r["received"] == [f"z{i}" for i in range(10)]
    assert r["latency"]["ack:chat_message"] == 10 and r["latency"]["delivery:chat"] == 10
    assert r["failures"] == []
