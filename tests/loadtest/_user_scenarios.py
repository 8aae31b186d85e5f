"""User scenarios run in a child process (Locust monkeypatches the process it is imported in).

``python -m tests.loadtest._user_scenarios NAME CONFIG_JSON`` drives real users (``WsUser`` subclasses)
against the server named in the config, step by step rather than through Locust's task loop, and prints one
JSON object with what happened. ``test_users.py`` starts the server, runs a scenario and checks the result.
"""

from __future__ import annotations

import locust  # noqa: F401  (monkeypatches first, as `locust -f` does)

# isort: split
import json
import os
import random
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import gevent
import gevent.monkey
from locust.env import Environment

from loadtest._backend import NotificationBackend
from loadtest._process_state import Credentials, IdentityAllocator, Runtime, install
from loadtest._settings import LoadSettings
from loadtest._users import WsUser

BASE = LoadSettings(
    host=None,
    http_base=None,
    auth="v4",
    secret=None,
    cookie_name=None,
    cookies_file=None,
    admin_token=None,
    results=Path("unused.sqlite3"),
    run_name=None,
    report=False,
    scrape_metrics=False,
    seed=1,
    think_scale=0.0,
    peers=1,
    request_timeout=5.0,
    use_acks=True,
    notification_rate=0.0,
    churn_away_s=0.5,
    debounce_ms=0.0,
    batch_size=0,
    batch_ms=100.0,
    offline_cache=True,
    reconnect_base_ms=20.0,
    reconnect_max_ms=200.0,
    reconnect_retries=20,
    open_rate=0.0,
    server_test_delay_ms=0.0,
)


class Student(WsUser):
    pass


class Ceiling(random.Random):
    """Backoff without jitter: every delay is its ceiling."""

    def uniform(self, a: float, b: float) -> float:
        return b


def setup(config: dict[str, Any], **overrides: Any) -> tuple[Environment, Runtime, list[dict[str, Any]]]:
    settings = replace(BASE, secret=config["secret"], admin_token=config["admin_token"], **overrides)
    env = Environment(user_classes=[Student])
    calls: list[dict[str, Any]] = []
    env.events.request.add_listener(lambda **kw: calls.append(kw))
    tag = config.get("tag", "t0")  # distinct per scenario: user ids (and their inboxes) are not shared
    identities = IdentityAllocator(Credentials(settings, config["secret"]), tag, settings.peers + 1)
    rt = Runtime(settings, config["ws_url"], config["http_url"], config["admin_token"], identities)
    install(env, rt)
    return env, rt, calls


def totals(rt: Runtime) -> tuple[dict[str, int], dict[str, int], list[list[Any]]]:
    """Counters, latency counts and events; also the max of each latency metric in ``rt.extra``."""
    samples, events = rt.aggregator.drain()
    counters: dict[str, int] = {}
    latency: dict[str, int] = {}
    maxima: dict[str, int] = rt.extra.setdefault("max_us", {})
    for sample in samples:
        for name, value in sample.counters.items():
            counters[name] = counters.get(name, 0) + value
        for name, hist in sample.latency.items():
            latency[name] = latency.get(name, 0) + hist.get_total_count()
            maxima[name] = max(maxima.get(name, 0), hist.get_max_value())
    return counters, latency, [[e.user, e.kind, e.detail] for e in events]


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        gevent.sleep(0.01)
    return True


def offline_cache(config: dict[str, Any]) -> dict[str, Any]:
    """A lost connection: messages sent meanwhile are cached, then all delivered, in order."""
    env, rt, _ = setup(config, reconnect_base_ms=300.0, reconnect_max_ms=300.0)
    alice, bob = Student(env), Student(env)
    received: list[str] = []
    bob.client.on_push = lambda kind, data: (
        received.append(data["content"]) if kind == "new_message" else None
    )
    alice.on_start()
    bob.on_start()
    alice.backoff._rng = Ceiling()  # no jitter here: stay away long enough to queue
    alice.client.abort()  # the network drops
    wait_for(lambda: alice.connection_state != "connected", 2)
    state_while_away = alice.connection_state
    for i in range(20):
        alice.send({"type": "chat_message", "receiverId": bob.user_id, "message": {"content": f"m{i}"}})
    queued = alice.queue_size
    wait_for(lambda: len(received) >= 20, 5)
    result = {
        "state_while_away": state_while_away,
        "queued": queued,
        "received": received,
        "queue_after": alice.queue_size,
        "state_after": alice.connection_state,
    }
    alice.on_stop()
    bob.on_stop()
    counters, _, events = totals(rt)
    result.update(counters=counters, events=events)
    return result


def gave_up(config: dict[str, Any]) -> dict[str, Any]:
    """An unreachable target: backoff with jitter, then give up after the retry limit."""
    config = {**config, "ws_url": "ws://127.0.0.1:9/ws"}
    env, rt, _ = setup(config, reconnect_retries=3, reconnect_base_ms=10.0, reconnect_max_ms=40.0)
    user = Student(env)
    started = time.monotonic()
    user.on_start()
    wait_for(lambda: user.connection_state == "disconnected", 3)
    elapsed = time.monotonic() - started
    user.chat()
    result = {"state": user.connection_state, "elapsed": elapsed, "queue": user.queue_size}
    user.on_stop()
    counters, _, events = totals(rt)
    result.update(counters=counters, events=events)
    return result


def strategies(config: dict[str, Any]) -> dict[str, Any]:
    """Debounced progress and batched messages: fewer frames, the latest update wins, nothing lost."""
    env, rt, _ = setup(config, debounce_ms=200.0, batch_size=5, batch_ms=50.0)
    alice, bob = Student(env), Student(env)
    received: list[str] = []
    syncs: list[float] = []

    def bob_push(kind: str, data: dict[str, Any]) -> None:
        if kind == "new_message":
            received.append(data["content"])

    def alice_push(kind: str, data: dict[str, Any]) -> None:
        if kind == "progress_sync":
            syncs.append(data["completion"])

    bob.client.on_push = bob_push
    alice.client.on_push = alice_push
    alice.on_start()
    bob.on_start()
    for completion in (10, 20, 30, 40):
        alice.send(
            {
                "type": "progress_update",
                "progress": {"subject": "Math", "topic": "Algebra", "completion": completion},
            }
        )
    queued_progress = alice.queue_size
    for i in range(12):
        alice.send({"type": "chat_message", "receiverId": bob.user_id, "message": {"content": f"b{i}"}})
    wait_for(lambda: len(received) >= 12 and syncs, 5)
    result = {"queued_progress": queued_progress, "received": received, "syncs": syncs}
    alice.on_stop()
    bob.on_stop()
    counters, latency, _ = totals(rt)
    result.update(counters=counters, latency=latency)
    return result


def personas(config: dict[str, Any]) -> dict[str, Any]:
    """Back end -> student notification, read by id; churn: away, back, what was missed is counted."""
    env, rt, calls = setup(config, notification_rate=50.0)
    student, churner = Student(env), Student(env)
    backend = NotificationBackend(env, rt)  # not started: posts when told to, for a live student
    student.on_start()
    churner.on_start()
    for _ in range(3):
        backend.create_notification()
    wait_for(lambda: len(student._unread) + len(churner._unread) >= 3, 5)
    reads = 0
    for user in (student, churner):
        while user._read_due_notifications():
            reads += 1
    # churn: the student sends while its peer is away; the peer comes back to it
    away = gevent.spawn(churner.go_away, 0.3)
    gevent.sleep(0.1)
    student.send(
        {"type": "chat_message", "receiverId": churner.user_id, "message": {"content": "missed me?"}}
    )
    away.join(5)
    wait_for(lambda: any(c["name"] == "missed:chat" for c in calls), 5)
    for _ in range(3):
        student.report_progress()
    student.ping()
    wait_for(lambda: student.client.pending == 0 and churner.client.pending == 0, 5)
    result = {"reads": reads, "churner_state": churner.connection_state}
    for user in (student, churner):
        user.on_stop()
    backend.stop()
    counters, latency, events = totals(rt)
    result.update(counters=counters, latency=latency, events=events)
    result["failures"] = [c["name"] for c in calls if c["exception"] is not None]
    return result


def open_model(config: dict[str, Any]) -> dict[str, Any]:
    """The open model through a server stall and a generator stall.

    The server is frozen (SIGSTOP) for ``stall`` seconds mid-run: the schedule keeps sending, and every
    message scheduled during the stall is measured from its scheduled time -- no coordinated omission.
    Then the generator itself is blocked (a CPU-bound pause of the whole process): the sends it owed go out
    late, and the send lag shows it.
    """
    env, rt, calls = setup(config, open_rate=float(config["rate"]))
    alice, bob = Student(env), Student(env)
    bob.on_start()
    alice.on_start()
    stall = float(config["stall"])
    pid = int(config["server_pid"])
    gevent.sleep(0.3)
    os.kill(pid, signal.SIGSTOP)
    try:
        gevent.sleep(stall)
    finally:
        os.kill(pid, signal.SIGCONT)
    gevent.sleep(0.3)
    blocking_sleep = gevent.monkey.get_original("time", "sleep")
    blocking_sleep(stall)  # the generator saturates: nothing in this process runs
    gevent.sleep(0.3)
    alice._running = bob._running = False  # stop the schedules; outstanding acks still arrive
    wait_for(lambda: alice.client.pending == 0 and bob.client.pending == 0, 10)
    acks = [c["response_time"] for c in calls if c["name"] == "ack:chat_message" and c["exception"] is None]
    alice._running = bob._running = True
    alice.on_stop()
    bob.on_stop()
    counters, latency, _ = totals(rt)
    return {
        "acks_ms": acks,
        "scheduled": sum(u.schedule.count for u in (alice, bob) if u.schedule is not None),
        "counters": counters,
        "latency": latency,
        "max_us": rt.extra["max_us"],
    }


def compression(config: dict[str, Any]) -> dict[str, Any]:
    """``--compression``: the seed's users offer permessage-deflate and chat through it."""
    env, rt, calls = setup(config, compression=True)
    alice, bob = Student(env), Student(env)
    received: list[str] = []
    bob.client.on_push = lambda kind, data: (
        received.append(data["content"]) if kind == "new_message" else None
    )
    alice.on_start()
    bob.on_start()
    compressed = [alice.client.compressed, bob.client.compressed]
    for i in range(10):
        alice.send({"type": "chat_message", "receiverId": bob.user_id, "message": {"content": f"z{i}"}})
    wait_for(lambda: len(received) >= 10 and alice.client.pending == 0, 5)
    alice.on_stop()
    bob.on_stop()
    _, latency, _ = totals(rt)
    failures = [c["name"] for c in calls if c["exception"] is not None]
    return {"compressed": compressed, "received": received, "latency": latency, "failures": failures}


SCENARIOS = {f.__name__: f for f in (offline_cache, gave_up, strategies, personas, open_model, compression)}


def main() -> None:
    name, config = sys.argv[1], json.loads(sys.argv[2])
    result = SCENARIOS[name](config)
    print(json.dumps(result))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
