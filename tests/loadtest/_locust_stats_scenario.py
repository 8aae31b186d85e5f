"""``python -m tests.loadtest._locust_stats_scenario CONFIG_JSON``: batched Locust stats, in a child process.

Importing Locust monkeypatches the process, so ``test_locust_stats.py`` runs this apart. It prints one JSON
line: Locust's stats after real round trips through a batching ``WsClient`` and the same stats fed one event
per request, plus what the aggregator measured.
"""

from __future__ import annotations

import json
import random
import sys
import time

import gevent
from locust import User
from locust.env import Environment

import nextauth_tokens as nextauth
from loadtest._client import REQUEST_TYPE, WsClient
from loadtest._locust_stats import stats_batch
from runstore.samples import SampleAggregator


class Nobody(User):
    abstract = True


def entry_state(env: Environment, name: str) -> dict[str, object]:
    e = env.stats.get(name, REQUEST_TYPE)
    return {
        "num_requests": e.num_requests,
        "num_failures": e.num_failures,
        "total_response_time": round(e.total_response_time, 6),
        "min": e.min_response_time,
        "max": e.max_response_time,
        "response_times": sorted(e.response_times.items()),
        "per_second_total": sum(e.num_reqs_per_sec.values()),
        "content_length": e.total_content_length,
    }


def main() -> None:
    config = json.loads(sys.argv[1])
    # 1. Direct: the same (name, ms, bytes) through a batch and as events, compared entry by entry.
    rng = random.Random(5)
    values = [("pong", rng.lognormvariate(0, 1.5), rng.randrange(20, 60)) for _ in range(3000)]
    values += [("ack:chat_message", rng.lognormvariate(1, 1), 40) for _ in range(500)]
    batched, fired = Environment(user_classes=[Nobody]), Environment(user_classes=[Nobody])
    batched.create_local_runner()
    fired.create_local_runner()
    batch = stats_batch(batched, REQUEST_TYPE)
    assert batch is not None and batch.active
    for name, ms, length in values:
        batch.log(name, ms, length)
        fired.events.request.fire(
            request_type=REQUEST_TYPE, name=name, response_time=ms, response_length=length, exception=None
        )
    pending_before_flush = batched.stats.total.num_requests
    batch.flush()
    direct = {
        name: [entry_state(batched, name), entry_state(fired, name)] for name in ("pong", "ack:chat_message")
    }
    totals = [
        {
            "num_requests": e.stats.total.num_requests,
            "total": round(e.stats.total.total_response_time, 6),
            "response_times": sorted(e.stats.total.response_times.items()),
            "content_length": e.stats.total.total_content_length,
        }
        for e in (batched, fired)
    ]

    # 2. End to end: real pings through a WsClient; Locust's count equals the aggregator's.
    env = Environment(user_classes=[Nobody])
    env.create_local_runner()
    agg = SampleAggregator()
    token = nextauth.mint_v4(config["secret"], {"sub": "stats-1"}, max_age=3600)
    client = WsClient(env, agg, config["ws_url"], user_id="stats-1", cookie=nextauth.cookie_header(token))
    client.connect()
    for _ in range(200):
        client.ping()
        gevent.sleep(0.001)
    deadline = time.monotonic() + 10
    while client.pending and time.monotonic() < deadline:
        gevent.sleep(0.01)
    env.events.test_stop.fire(environment=env)  # the end of a test flushes
    client.close()
    samples, _ = agg.drain()
    measured = sum(s.latency["pong"].get_total_count() for s in samples if "pong" in s.latency)
    locust_pongs = env.stats.get("pong", REQUEST_TYPE).num_requests

    # 3. Anyone else listening: every event fires again (after the next flush's re-check).
    seen: list[str] = []
    env.events.request.add_listener(lambda **kw: seen.append(kw["name"]))
    batch2 = stats_batch(env, REQUEST_TYPE)
    assert batch2 is not None
    batch2.flush()
    client.connect()
    client.ping()
    deadline = time.monotonic() + 10
    while client.pending and time.monotonic() < deadline:
        gevent.sleep(0.01)
    client.close()
    print(
        json.dumps(
            {
                "pending_before_flush": pending_before_flush,
                "direct": direct,
                "totals": totals,
                "measured": measured,
                "locust_pongs": locust_pongs,
                "active_with_listener": batch2.active,
                "seen": seen,
            }
        )
    )


if __name__ == "__main__":
    main()
