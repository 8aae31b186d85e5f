"""Benchmark users for ``bench/loadtest_worker.py`` (not a persona: a fixed-rate pinger).

``RatePinger``: each user opens one measured :class:`~loadtest._client.WsClient` and sends application
``ping``s on a fixed schedule of ``WSGAUGE_BENCH_RATE`` per second (open model: the ``pong`` round trip is
measured from the scheduled time, and the send lag of every ping is recorded as ``send_lag``). Everything a
real run does is on: the per-second HdrHistograms, Locust's ``request`` events, the 1 Hz sampler, the run
store. So the rate it sustains is the measured generator's, not a bare loop's.
"""

import loadtest._integration  # noqa: F401  (registers the run lifecycle once, with the monitor and report)

# isort: split
import os
import random
import time

from locust import User, task

from loadtest._client import ConnectionLost, WsClient
from loadtest._clock import sleep_until
from loadtest._process_state import runtime
from runstore.names import METRIC_SEND_LAG

RATE = float(os.environ.get("WSGAUGE_BENCH_RATE", "100"))


class RatePinger(User):
    """One connection, ``RATE`` pings per second on a fixed schedule."""

    def __init__(self, environment):
        super().__init__(environment)
        self.connection_state = "disconnected"
        self.queue_size = 0
        self.client = None

    def on_start(self):
        state = runtime(self.environment)
        state.users.add(self)
        identity = state.identities.allocate("bench")
        self.aggregator = state.aggregator
        self.client = WsClient(
            self.environment, state.aggregator, state.ws_url, user_id=identity.user_id, cookie=identity.cookie
        )
        self.client.connect()
        self.connection_state = "connected"

    def on_stop(self):
        if self.client is not None:
            self.client.close()
        self.connection_state = "disconnected"

    @task
    def pings(self):
        interval = 1.0 / RATE
        at = time.time() + random.random() * interval
        send = self.client.send
        record = self.aggregator.record_latency
        while True:
            sleep_until(at)
            now = time.time()
            record(METRIC_SEND_LAG, (now - at) * 1e6, at=now)
            try:
                send({"type": "ping", "ts": None}, scheduled=at)
            except ConnectionLost:
                return
            at += interval
